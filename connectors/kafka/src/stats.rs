//! The counters an instance reports (`mora run`'s status, the API's `/status`, the tests).

use mora_runtime::StoreStats;
use serde::Serialize;

/// What an instance has done so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Input records handled (replayed ones included).
    pub records: u64,
    /// Records replayed only to rebuild state.
    pub restored: u64,
    /// Actions written.
    pub actions: u64,
    /// Audit records written.
    pub audits: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Outputs suppressed while rebuilding state.
    pub suppressed: u64,
    /// Commits (transactions in exactly-once mode).
    pub commits: u64,
    /// Aborted transactions.
    pub aborts: u64,
    /// Times the transactional producer was fenced (or failed fatally) and replaced by a new one.
    pub producer_replacements: u64,
    /// Times a full producer queue paused consumption.
    pub backpressure_waits: u64,
    /// Partitions currently owned.
    pub assigned: Vec<i32>,
    /// Partitions of the input topics (all instances together).
    pub partitions_total: i32,
    /// Debtors in memory.
    pub debtors: u64,
    /// Records received and waiting to be applied in timestamp order.
    pub buffered: u64,
    /// Records applied with a timestamp earlier than one already applied in their partition (cross-topic order
    /// could not be kept, e.g. a topic's records arrived after `max_idle`).
    pub out_of_order: u64,
    /// The first few of them, for diagnosis.
    pub out_of_order_examples: Vec<String>,
    /// Clock records this instance wrote (wall-clock mode).
    pub clock_records_written: u64,
    /// Records skipped after a restore because their debtor's stored state already reflected them.
    pub skipped: u64,
    /// The state store's counters, when one is configured.
    pub state: Option<StoreStats>,
    /// Times input was paused because the state store was behind.
    pub state_pauses: u64,
    /// Milliseconds since the last flush landed.
    pub state_lag_ms: u64,
    /// Times input was paused because the schema registry could not be reached for a new schema id.
    pub registry_waits: u64,
    /// Why the loop stopped, when it stopped on an error.
    pub error: Option<String>,
}

/// Out-of-order examples kept when the threads' counters are merged.
const EXAMPLES: usize = 10;

impl RunStats {
    /// The counters of an instance's engine threads taken together: sums, the union of the partitions owned, the
    /// largest lag, the first error.
    pub fn merge<'a>(threads: impl IntoIterator<Item = &'a RunStats>) -> RunStats {
        let mut all = RunStats::default();
        for t in threads {
            all.records += t.records;
            all.restored += t.restored;
            all.actions += t.actions;
            all.audits += t.audits;
            all.dead_letters += t.dead_letters;
            all.suppressed += t.suppressed;
            all.commits += t.commits;
            all.aborts += t.aborts;
            all.producer_replacements += t.producer_replacements;
            all.backpressure_waits += t.backpressure_waits;
            all.registry_waits += t.registry_waits;
            all.assigned.extend(&t.assigned);
            all.partitions_total = all.partitions_total.max(t.partitions_total);
            all.debtors += t.debtors;
            all.buffered += t.buffered;
            all.out_of_order += t.out_of_order;
            let room = EXAMPLES.saturating_sub(all.out_of_order_examples.len());
            all.out_of_order_examples
                .extend(t.out_of_order_examples.iter().take(room).cloned());
            all.clock_records_written += t.clock_records_written;
            all.skipped += t.skipped;
            if let Some(s) = &t.state {
                all.state.get_or_insert_with(StoreStats::default).add(s);
            }
            all.state_pauses += t.state_pauses;
            all.state_lag_ms = all.state_lag_ms.max(t.state_lag_ms);
            if all.error.is_none() {
                all.error.clone_from(&t.error);
            }
        }
        all.assigned.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_counters_add_up_and_partitions_are_the_union_in_order() {
        let a = RunStats {
            records: 10,
            actions: 2,
            assigned: vec![2, 0],
            partitions_total: 4,
            state_lag_ms: 30,
            state: Some(StoreStats {
                rows: 5,
                last_flush_ms: 7,
                ..StoreStats::default()
            }),
            ..RunStats::default()
        };
        let b = RunStats {
            records: 5,
            actions: 1,
            assigned: vec![1, 3],
            partitions_total: 4,
            state_lag_ms: 10,
            state: Some(StoreStats {
                rows: 6,
                last_flush_ms: 9,
                ..StoreStats::default()
            }),
            error: Some("broker gone".into()),
            ..RunStats::default()
        };
        let m = RunStats::merge([&a, &b]);
        assert_eq!((m.records, m.actions), (15, 3));
        assert_eq!(m.assigned, vec![0, 1, 2, 3]);
        assert_eq!((m.partitions_total, m.state_lag_ms), (4, 30));
        let s = m.state.unwrap();
        assert_eq!((s.rows, s.last_flush_ms), (11, 9));
        assert_eq!(m.error.as_deref(), Some("broker gone"));
    }
}
