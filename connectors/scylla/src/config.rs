//! The `[state]` section of `mora.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where and how the engine keeps its durable state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace (created by `mora migrate`).
    #[serde(default = "default_keyspace")]
    pub keyspace: String,
    /// Replication of the keyspace, used when `mora migrate` creates it.
    #[serde(default)]
    pub replication: Replication,
    /// Consistency of reads and writes: `local_quorum` in production, `one` on a single node.
    #[serde(default)]
    pub consistency: ConsistencyLevel,
    /// How often changed debtors are written (one write per changed debtor per flush).
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Statements in flight at once per flush or restore.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// CQL partitions per Kafka partition for debtor rows (fixed when the keyspace is created; later values are
    /// ignored in favour of the stored one).
    #[serde(default = "default_shards")]
    pub shards: u16,
    /// If the oldest unwritten change is older than this (the database is down or slow), input is paused until
    /// the database catches up: memory stays bounded and nothing is dropped.
    #[serde(default = "default_max_lag", with = "humantime_serde")]
    pub max_lag: Duration,
    /// Whether every audit record is also stored in the `ledger` table. The audit topic always has them;
    /// storing them too is most of the database's write volume (about one audit record per event).
    #[serde(default = "default_true")]
    pub audit_ledger: bool,
    /// Whether each change of a debtor's segment or work queues is also written to the `view_members` table, for
    /// readers of the database outside mora (mora itself answers segments and queues from memory and the partition
    /// summaries). Off by default: it costs a statement per change, about a third of one per event in the
    /// end-to-end run, more than everything else the store writes. Turned on later, the table follows the changes
    /// from then on; it is not filled with the members of the moment.
    #[serde(default)]
    pub membership_views: bool,
    /// How often each partition's owner publishes its summary (portfolio, KPI populations, work queue heads) for
    /// the other instances' queries. Each one walks the partition's debtors once while the engine thread waits, so
    /// a flush takes one partition's, the one published longest ago: an instance owning P partitions publishes
    /// each at most every `max(summary_interval, P × flush_interval)`.
    #[serde(default = "default_summary_interval", with = "humantime_serde")]
    pub summary_interval: Duration,
    /// Entries per work queue and partition in a summary: other instances page through a queue exactly up to this
    /// depth per partition, and say where a page stops short.
    #[serde(default = "default_summary_queue_depth")]
    pub summary_queue_depth: usize,
    /// Upper bound, in bytes, of one chunk of debtor states in the debtor log, and of one batch of ledger entries or
    /// membership changes. A flush groups what it writes by CQL partition and sends each group as chunks or UNLOGGED
    /// batches of at most this size: the database's cost is per request and row far more than per byte. Keep it under the database's warning threshold: ScyllaDB warns at 128 KiB and fails at 1 MiB
    /// (`batch_size_warn_threshold_in_kb` / `batch_size_fail_threshold_in_kb`); Cassandra's defaults are 5 KiB and
    /// 50 KiB (`batch_size_warn_threshold` / `batch_size_fail_threshold`), so raise them to ScyllaDB's, as the test
    /// services do.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// Rows per page when a restore reads a shard's debtor rows written by versions before the debtor log (each
    /// shard is read as a stream of pages, the shards in parallel): larger pages mean fewer round trips and more
    /// memory per shard in flight. The log itself is read 64 chunks a page.
    #[serde(default = "default_restore_page_rows")]
    pub restore_page_rows: u32,
    /// Optional credentials.
    pub username: Option<String>,
    /// Optional credentials.
    pub password: Option<String>,
}

// Half of ScyllaDB's warning threshold (128 KiB): room for the statements' other columns and the protocol framing.
fn default_batch_bytes() -> usize {
    64 * 1024
}

fn default_restore_page_rows() -> u32 {
    2000
}

fn default_keyspace() -> String {
    "mora".into()
}

// A second: far fewer writes than events for active debtors, and a short replay after a crash.
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_true() -> bool {
    true
}

fn default_concurrency() -> usize {
    64
}

// 64 shards keep a CQL partition near 16 000 rows for a Kafka partition of a million debtors.
fn default_shards() -> u16 {
    64
}

fn default_summary_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_summary_queue_depth() -> usize {
    1000
}

fn default_max_lag() -> Duration {
    Duration::from_secs(30)
}

impl StateConfig {
    /// Settings for `nodes`, defaults elsewhere.
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            keyspace: default_keyspace(),
            replication: Replication::default(),
            consistency: ConsistencyLevel::default(),
            flush_interval: default_flush_interval(),
            concurrency: default_concurrency(),
            shards: default_shards(),
            max_lag: default_max_lag(),
            audit_ledger: true,
            membership_views: false,
            summary_interval: default_summary_interval(),
            summary_queue_depth: default_summary_queue_depth(),
            batch_bytes: default_batch_bytes(),
            restore_page_rows: default_restore_page_rows(),
            username: None,
            password: None,
        }
    }

    /// Checks values a database would refuse late or that make no sense, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("state.nodes: at least one contact point is required".into());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if self.keyspace.is_empty()
            || self.keyspace.len() > 48
            || !self.keyspace.chars().all(ok)
            || self.keyspace.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!(
                "state.keyspace: `{}` is not a valid keyspace name (letters, digits and _, at most 48, not starting with a digit)",
                self.keyspace
            ));
        }
        if self.concurrency == 0 {
            return Err("state.concurrency: must be at least 1".into());
        }
        if self.shards == 0 {
            return Err("state.shards: must be at least 1".into());
        }
        if self.flush_interval.is_zero() {
            return Err("state.flush_interval: must be positive".into());
        }
        if self.summary_interval.is_zero() {
            return Err("state.summary_interval: must be positive".into());
        }
        if !(1..=100_000).contains(&self.summary_queue_depth) {
            return Err("state.summary_queue_depth: must be between 1 and 100000".into());
        }
        if !(1024..=1024 * 1024).contains(&self.batch_bytes) {
            return Err(
                "state.batch_bytes: must be between 1024 and 1048576 (1 KiB to 1 MiB)".into(),
            );
        }
        if !(100..=100_000).contains(&self.restore_page_rows) {
            return Err("state.restore_page_rows: must be between 100 and 100000".into());
        }
        if self.max_lag < self.flush_interval {
            return Err("state.max_lag: must be at least state.flush_interval".into());
        }
        self.replication.validate()
    }
}

/// Keyspace replication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case", deny_unknown_fields)]
pub enum Replication {
    /// One factor for the whole cluster (development, single data centre).
    Simple {
        /// Copies of each row.
        factor: u8,
    },
    /// Per data centre factors (production).
    NetworkTopology {
        /// Copies per data centre.
        datacenters: BTreeMap<String, u8>,
    },
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple { factor: 1 }
    }
}

impl Replication {
    fn validate(&self) -> Result<(), String> {
        match self {
            Replication::Simple { factor: 0 } => {
                Err("state.replication.factor: must be at least 1".into())
            }
            Replication::NetworkTopology { datacenters } if datacenters.is_empty() => {
                Err("state.replication.datacenters: name at least one data centre".into())
            }
            _ => Ok(()),
        }
    }

    /// The CQL map literal.
    pub fn cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology { datacenters } => {
                let dcs: Vec<String> = datacenters
                    .iter()
                    .map(|(dc, n)| format!("'{}': {n}", dc.replace('\'', "''")))
                    .collect();
                format!("{{'class': 'NetworkTopologyStrategy', {}}}", dcs.join(", "))
            }
        }
    }
}

/// Consistency level of the engine's statements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    /// One replica (a single node).
    One,
    /// A quorum in the local data centre (production default).
    #[default]
    LocalQuorum,
    /// A quorum of all replicas.
    Quorum,
    /// Every replica.
    All,
}

impl ConsistencyLevel {
    pub(crate) fn driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            ConsistencyLevel::One => C::One,
            ConsistencyLevel::LocalQuorum => C::LocalQuorum,
            ConsistencyLevel::Quorum => C::Quorum,
            ConsistencyLevel::All => C::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_literals() {
        assert_eq!(
            Replication::default().cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        let nts = Replication::NetworkTopology {
            datacenters: [("dc1".to_string(), 3), ("dc2".to_string(), 2)].into(),
        };
        assert_eq!(
            nts.cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut c = StateConfig::new(vec!["127.0.0.1:9042".into()]);
        assert!(c.validate().is_ok());
        c.keyspace = "mora-prod".into();
        assert!(c.validate().unwrap_err().starts_with("state.keyspace"));
        c.keyspace = "mora".into();
        c.max_lag = Duration::from_millis(10);
        assert!(c.validate().unwrap_err().starts_with("state.max_lag"));
        c.max_lag = Duration::from_secs(30);
        c.nodes.clear();
        assert!(c.validate().unwrap_err().starts_with("state.nodes"));
    }
}
