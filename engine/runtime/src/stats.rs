//! Counters a worker keeps about what it decided; merged across partitions for summaries.

use std::collections::BTreeMap;

use compact_str::CompactString;
use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::ids::Channel;
use serde::Serialize;

/// What one partition worker (or several, merged) has done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Input records handled (applied, rejected or dead-lettered).
    pub records: u64,
    /// Events applied, by kind.
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Events refused by the engine.
    pub rejected: u64,
    /// Records skipped after a restore because the debtor's stored state already reflected them.
    pub skipped: u64,
    /// Timer wake-ups processed.
    pub wakes: u64,
    /// Clock records applied (time passing as data).
    pub clock_records: u64,
    /// Actions emitted, by channel.
    pub actions_by_channel: BTreeMap<Channel, u64>,
    /// Deferrals and drops by the compliance guard, by reason.
    pub blocked_by_reason: BTreeMap<CompactString, u64>,
    /// Audit records by decision kind.
    pub decisions: BTreeMap<&'static str, u64>,
    /// Champion/challenger: per strategy, per arm, what was decided.
    pub arms: BTreeMap<CompactString, BTreeMap<CompactString, ArmStats>>,
}

/// What one arm of a strategy decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArmStats {
    /// Actions emitted.
    pub actions: u64,
    /// Audit records by decision kind (promises kept and broken, deferrals, drops...).
    pub decisions: BTreeMap<&'static str, u64>,
}

impl ArmStats {
    fn merge(&mut self, other: &ArmStats) {
        self.actions += other.actions;
        for (k, v) in &other.decisions {
            *self.decisions.entry(k).or_default() += v;
        }
    }
}

impl WorkerStats {
    pub(crate) fn count_action(&mut self, a: &Action) {
        *self.actions_by_channel.entry(a.channel).or_default() += 1;
        self.arm(&a.reason.strategy, &a.arm).actions += 1;
    }

    fn arm(&mut self, strategy: &str, arm: &str) -> &mut ArmStats {
        // Looked up by reference first: no allocation per record once an arm is known.
        if !self.arms.get(strategy).is_some_and(|m| m.contains_key(arm)) {
            self.arms
                .entry(strategy.into())
                .or_default()
                .insert(arm.into(), ArmStats::default());
        }
        self.arms
            .get_mut(strategy)
            .and_then(|m| m.get_mut(arm))
            .expect("inserted above")
    }

    pub(crate) fn count_audit(&mut self, r: &AuditRecord) {
        *self.decisions.entry(r.kind.as_str()).or_default() += 1;
        if let (Some(s), Some(a)) = (&r.strategy, &r.arm) {
            *self.arm(s, a).decisions.entry(r.kind.as_str()).or_default() += 1;
        }
        if matches!(r.kind, DecisionKind::Deferred | DecisionKind::Dropped) {
            *self.blocked_by_reason.entry(r.reason.clone()).or_default() += 1;
        }
    }

    /// Total actions emitted.
    pub fn actions(&self) -> u64 {
        self.actions_by_channel.values().sum()
    }

    /// Total events applied.
    pub fn events(&self) -> u64 {
        self.events_by_kind.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &WorkerStats) {
        self.records += other.records;
        self.decode_errors += other.decode_errors;
        self.rejected += other.rejected;
        self.skipped += other.skipped;
        self.wakes += other.wakes;
        self.clock_records += other.clock_records;
        for (k, v) in &other.events_by_kind {
            *self.events_by_kind.entry(k).or_default() += v;
        }
        for (k, v) in &other.actions_by_channel {
            *self.actions_by_channel.entry(*k).or_default() += v;
        }
        for (k, v) in &other.blocked_by_reason {
            *self.blocked_by_reason.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.decisions {
            *self.decisions.entry(k).or_default() += v;
        }
        for (s, arms) in &other.arms {
            for (a, st) in arms {
                self.arm(s, a).merge(st);
            }
        }
    }
}
