//! Counters a worker keeps about what it decided; merged across partitions for summaries.
//!
//! A worker counts every action and audit record it sends, several per input record, so the counters by channel and
//! by decision kind are arrays indexed by the enum, and the per-arm counters a short list searched from the arm
//! counted last (a debtor's records come together and share it). The ordered maps summaries print are built when
//! asked for.

use std::collections::BTreeMap;

use compact_str::CompactString;
use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::ids::Channel;
use serde::Serialize;

const KINDS: usize = DecisionKind::ALL.len();

/// What one partition worker (or several, merged) has done.
#[derive(Clone, Debug, Default)]
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
    /// Deferrals and drops by the compliance guard, by reason.
    pub blocked_by_reason: BTreeMap<CompactString, u64>,
    /// Actions emitted, by [`Channel::ALL`] place.
    by_channel: [u64; Channel::ALL.len()],
    /// Audit records, by [`DecisionKind::ALL`] place.
    by_kind: [u64; KINDS],
    /// Champion/challenger counters, in the order arms were first seen.
    arms: Vec<ArmRow>,
    /// Where in `arms` the last count went.
    last_arm: usize,
}

/// One arm's counters while counting.
#[derive(Clone, Debug)]
struct ArmRow {
    strategy: CompactString,
    arm: CompactString,
    actions: u64,
    by_kind: [u64; KINDS],
}

/// What one arm of a strategy decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArmStats {
    /// Actions emitted.
    pub actions: u64,
    /// Audit records by decision kind (promises kept and broken, deferrals, drops...).
    pub decisions: BTreeMap<&'static str, u64>,
}

/// The kinds counted at least once, by name.
fn by_name(counts: &[u64; KINDS]) -> BTreeMap<&'static str, u64> {
    DecisionKind::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.as_str(), *n))
        .collect()
}

impl WorkerStats {
    pub(crate) fn count_action(&mut self, a: &Action) {
        self.by_channel[a.channel as usize] += 1;
        self.arm(&a.reason.strategy, &a.arm).actions += 1;
    }

    fn arm(&mut self, strategy: &str, arm: &str) -> &mut ArmRow {
        let is = |r: &ArmRow| r.arm == arm && r.strategy == strategy;
        let at = match self.arms.get(self.last_arm) {
            Some(r) if is(r) => self.last_arm,
            _ => match self.arms.iter().position(is) {
                Some(i) => i,
                None => {
                    self.arms.push(ArmRow {
                        strategy: strategy.into(),
                        arm: arm.into(),
                        actions: 0,
                        by_kind: [0; KINDS],
                    });
                    self.arms.len() - 1
                }
            },
        };
        self.last_arm = at;
        &mut self.arms[at]
    }

    pub(crate) fn count_audit(&mut self, r: &AuditRecord) {
        self.by_kind[r.kind as usize] += 1;
        if let (Some(s), Some(a)) = (&r.strategy, &r.arm) {
            self.arm(s, a).by_kind[r.kind as usize] += 1;
        }
        if matches!(r.kind, DecisionKind::Deferred | DecisionKind::Dropped) {
            match self.blocked_by_reason.get_mut(&r.reason) {
                Some(n) => *n += 1,
                None => {
                    self.blocked_by_reason.insert(r.reason.clone(), 1);
                }
            }
        }
    }

    /// Actions emitted, by channel (channels with none left out).
    pub fn actions_by_channel(&self) -> BTreeMap<Channel, u64> {
        Channel::ALL
            .into_iter()
            .zip(self.by_channel)
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Audit records by decision kind (kinds with none left out).
    pub fn decisions(&self) -> BTreeMap<&'static str, u64> {
        by_name(&self.by_kind)
    }

    /// Champion/challenger: per strategy, per arm, what was decided.
    pub fn arms(&self) -> BTreeMap<CompactString, BTreeMap<CompactString, ArmStats>> {
        let mut out: BTreeMap<CompactString, BTreeMap<CompactString, ArmStats>> = BTreeMap::new();
        for r in &self.arms {
            out.entry(r.strategy.clone()).or_default().insert(
                r.arm.clone(),
                ArmStats {
                    actions: r.actions,
                    decisions: by_name(&r.by_kind),
                },
            );
        }
        out
    }

    /// Total actions emitted.
    pub fn actions(&self) -> u64 {
        self.by_channel.iter().sum()
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
        for (k, v) in &other.blocked_by_reason {
            *self.blocked_by_reason.entry(k.clone()).or_default() += v;
        }
        add(&mut self.by_channel, &other.by_channel);
        add(&mut self.by_kind, &other.by_kind);
        for r in &other.arms {
            let mine = self.arm(&r.strategy, &r.arm);
            mine.actions += r.actions;
            add(&mut mine.by_kind, &r.by_kind);
        }
    }
}

fn add<const N: usize>(into: &mut [u64; N], from: &[u64; N]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mora_domain::testkit;

    #[test]
    fn enums_sit_at_their_place_in_all() {
        for (i, c) in Channel::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
        }
        for (i, k) in DecisionKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i);
        }
    }

    fn record(kind: DecisionKind, arm: Option<(&str, &str)>, reason: &str) -> AuditRecord {
        AuditRecord {
            debtor_id: "D-1".into(),
            at: testkit::ts("2026-03-02T14:00:00Z"),
            kind,
            action_id: None,
            channel: None,
            rule: "policy/co".into(),
            reason: reason.into(),
            until: None,
            strategy: arm.map(|(s, _)| s.into()),
            arm: arm.map(|(_, a)| a.into()),
            subject: None,
            previous: None,
            debtor: None,
        }
    }

    #[test]
    fn counts_read_as_maps_of_what_was_seen_and_merge_by_key() {
        let (champion, challenger) = (Some(("early", "champion")), Some(("early", "challenger")));
        let mut a = WorkerStats::default();
        a.count_audit(&record(DecisionKind::Deferred, champion, "min_gap"));
        a.count_audit(&record(DecisionKind::Deferred, challenger, "min_gap"));
        a.count_audit(&record(DecisionKind::Dropped, champion, "hold_deceased"));
        a.count_audit(&record(
            DecisionKind::Reclassified,
            None,
            "stage:administrative",
        ));
        let mut b = WorkerStats::default();
        b.count_audit(&record(DecisionKind::Deferred, challenger, "min_gap"));
        b.count_audit(&record(
            DecisionKind::PromiseKept,
            Some(("late", "champion")),
            "",
        ));
        a.merge(&b);

        let names = |m: BTreeMap<&'static str, u64>| m.into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(a.decisions()),
            [
                ("deferred", 3),
                ("dropped", 1),
                ("promise_kept", 1),
                ("reclassified", 1)
            ]
        );
        let blocked: Vec<_> = a
            .blocked_by_reason
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(blocked, [("hold_deceased", 1), ("min_gap", 3)]);
        let arms = a.arms();
        let arm = |s: &str, x: &str| names(arms[s][x].decisions.clone());
        assert_eq!(arm("early", "champion"), [("deferred", 1), ("dropped", 1)]);
        assert_eq!(arm("early", "challenger"), [("deferred", 2)]);
        assert_eq!(arm("late", "champion"), [("promise_kept", 1)]);
        assert_eq!(arms.keys().collect::<Vec<_>>(), ["early", "late"]);
        assert!(a.actions_by_channel().is_empty());
        assert_eq!(a.actions(), 0);
    }
}
