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
    /// Why the loop stopped, when it stopped on an error.
    pub error: Option<String>,
}
