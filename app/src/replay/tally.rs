//! What one configuration decided over a replay window, counted as it happens and from state snapshots.

use std::collections::BTreeMap;

use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use serde::Serialize;

/// Counters of one side (configuration) of a replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Actions emitted.
    pub actions: u64,
    /// Actions per channel, then per `strategy/step`.
    pub actions_by_channel_step: BTreeMap<String, BTreeMap<String, u64>>,
    /// Actions deferred and dropped by the compliance guard, per kind then reason.
    pub blocked: BTreeMap<String, BTreeMap<String, u64>>,
    /// Records this side could not use (written to its `dead_letters.jsonl`), per error kind.
    pub dead_letters: BTreeMap<String, u64>,
    /// Promises kept within the window.
    pub promises_kept: u64,
    /// Promises broken within the window.
    pub promises_broken: u64,
    /// Debtors cured within the window (back to no days past due).
    pub cures: u64,
    /// Of them, cured without any contact in their delinquency episode.
    pub self_cures: u64,
    /// Debtors whose segment changed between the window's start and end, per `from -> to`.
    pub segment_migrations: BTreeMap<String, u64>,
    /// Per `strategy/arm`: actions, promises kept and broken.
    pub arms: BTreeMap<String, ArmTally>,
    /// Actions per debtor (internal; summarised in the report).
    #[serde(skip)]
    pub contacts: BTreeMap<String, u32>,
}

/// One strategy arm's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArmTally {
    /// Actions emitted.
    pub actions: u64,
    /// Promises kept.
    pub promises_kept: u64,
    /// Promises broken.
    pub promises_broken: u64,
}

/// A debtor's figures at one instant (segment name, cures, self-cures).
pub(super) type Snapshot = BTreeMap<String, (String, u32, u32)>;

impl Tally {
    /// Counts an action sent.
    pub fn action(&mut self, a: &Action) {
        self.actions += 1;
        *self
            .actions_by_channel_step
            .entry(a.channel.as_str().to_string())
            .or_default()
            .entry(format!("{}/{}", a.reason.strategy, a.reason.step))
            .or_default() += 1;
        *self.contacts.entry(a.debtor_id.to_string()).or_default() += 1;
        self.arm(&a.reason.strategy, &a.arm).actions += 1;
    }

    /// Counts a record this side dead-lettered.
    pub fn dead_letter(&mut self, error_kind: &str) {
        *self.dead_letters.entry(error_kind.to_string()).or_default() += 1;
    }

    /// Counts an audit record: what was blocked and why, promises, cures.
    pub fn audit(&mut self, r: &AuditRecord) {
        match r.kind {
            DecisionKind::Deferred | DecisionKind::Dropped => {
                *self
                    .blocked
                    .entry(r.kind.as_str().to_string())
                    .or_default()
                    .entry(r.reason.to_string())
                    .or_default() += 1;
            }
            DecisionKind::PromiseKept | DecisionKind::PromiseBroken => {
                let kept = r.kind == DecisionKind::PromiseKept;
                if kept {
                    self.promises_kept += 1;
                } else {
                    self.promises_broken += 1;
                }
                if let (Some(s), Some(a)) = (&r.strategy, &r.arm) {
                    let t = self.arm(s, a);
                    if kept {
                        t.promises_kept += 1;
                    } else {
                        t.promises_broken += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn arm(&mut self, strategy: &str, arm: &str) -> &mut ArmTally {
        self.arms.entry(format!("{strategy}/{arm}")).or_default()
    }

    /// Adds the differences between two snapshots of the same debtors: migrations and cures.
    pub fn compare(&mut self, start: &Snapshot, end: &Snapshot) {
        for (id, (seg, cures, self_cures)) in end {
            let (from, c0, s0) = start
                .get(id)
                .map_or(("(new)", 0, 0), |(s, c, sc)| (s.as_str(), *c, *sc));
            self.cures += u64::from(cures.saturating_sub(c0));
            self.self_cures += u64::from(self_cures.saturating_sub(s0));
            if from != seg {
                *self
                    .segment_migrations
                    .entry(format!("{from} -> {seg}"))
                    .or_default() += 1;
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Tally) {
        self.actions += other.actions;
        for (k, n) in other.dead_letters {
            *self.dead_letters.entry(k).or_default() += n;
        }
        for (c, steps) in other.actions_by_channel_step {
            let mine = self.actions_by_channel_step.entry(c).or_default();
            for (s, n) in steps {
                *mine.entry(s).or_default() += n;
            }
        }
        for (k, reasons) in other.blocked {
            let mine = self.blocked.entry(k).or_default();
            for (r, n) in reasons {
                *mine.entry(r).or_default() += n;
            }
        }
        self.promises_kept += other.promises_kept;
        self.promises_broken += other.promises_broken;
        self.cures += other.cures;
        self.self_cures += other.self_cures;
        for (k, n) in other.segment_migrations {
            *self.segment_migrations.entry(k).or_default() += n;
        }
        for (k, t) in other.arms {
            let mine = self.arms.entry(k).or_default();
            mine.actions += t.actions;
            mine.promises_kept += t.promises_kept;
            mine.promises_broken += t.promises_broken;
        }
        for (k, n) in other.contacts {
            *self.contacts.entry(k).or_default() += n;
        }
    }
}

/// Every debtor's segment and cure counters.
pub(super) fn snapshot<'a>(engine: &Engine, debtors: impl Iterator<Item = &'a Debtor>) -> Snapshot {
    debtors
        .map(|d| {
            (
                d.id.to_string(),
                (
                    engine.segmentation.names()[d.derived.segment as usize].to_string(),
                    u32::from(d.history.cures),
                    u32::from(d.history.self_cures),
                ),
            )
        })
        .collect()
}
