//! The database side: schema migration, flush writes, checkpoint and restore reads. Prepared statements only, so
//! the driver routes each to a replica owning its partition key (token-aware); statements in flight are bounded by
//! `concurrency`.

mod batches;
mod chunk;
mod history;
mod ledger;
mod log;
mod packed;
mod read;
mod schema;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::config::StateConfig;
use crate::error::StateError;
use schema::{session, stored_shards};

pub use history::LedgerRecord;
pub use ledger::LedgerChunkError;
pub use log::ChunkError;
pub use schema::{SCHEMA, migrate, schema_statements};
pub use write::Written;

/// A connected store.
#[derive(Debug)]
pub struct Store {
    session: Session,
    shards: u16,
    concurrency: usize,
    batch_bytes: usize,
    /// Whether membership changes are written (`membership_views`).
    views: bool,
    /// The write time of the flush each running sweep started in, by Kafka partition and sweep.
    sweeps: Mutex<HashMap<(i32, u64), i64>>,
    /// Kafka partitions whose rows of earlier versions (`debtor_state`) a sweep of this process deleted: nothing
    /// writes them any more, so later sweeps leave that table alone.
    rows_dropped: Mutex<HashSet<i32>>,
    put_log: PreparedStatement,
    drop_log: PreparedStatement,
    drop_rows: PreparedStatement,
    scan_log: PreparedStatement,
    put_ledger_log: PreparedStatement,
    join_view: PreparedStatement,
    leave_view: PreparedStatement,
    put_checkpoint: PreparedStatement,
    get_checkpoint: PreparedStatement,
    scan_shard: PreparedStatement,
    put_kpi_day: PreparedStatement,
    get_kpi_days: PreparedStatement,
    put_summary: PreparedStatement,
    get_summary: PreparedStatement,
    get_ledger: PreparedStatement,
    scan_ledger: PreparedStatement,
    get_ledger_log: PreparedStatement,
}

/// Chunks per page of a read of the debtor log or the ledger (a chunk is up to `batch_bytes`, 64 KiB by default).
const LOG_PAGE_CHUNKS: i32 = 64;

/// The CQL partition (within its Kafka partition) a debtor's row lives in.
pub fn shard_of(debtor: &str, shards: u16) -> i16 {
    (xxhash_rust::xxh3::xxh3_64(debtor.as_bytes()) % u64::from(shards.max(1))) as i16
}

impl Store {
    /// Connects to a migrated keyspace and prepares the statements.
    pub async fn connect(cfg: &StateConfig) -> Result<Self, StateError> {
        cfg.validate().map_err(StateError::Config)?;
        let s = session(cfg).await?;
        let ks = &cfg.keyspace;
        let shards = stored_shards(&s, ks)
            .await?
            .ok_or_else(|| StateError::NotMigrated(ks.clone()))?;
        let prep = |q: String| {
            let s = &s;
            async move {
                let mut p = s
                    .prepare(q.clone())
                    .await
                    .map_err(|e| StateError::statement(&q, e))?;
                p.set_is_idempotent(true);
                Ok::<_, StateError>(p)
            }
        };
        let mut scan_shard = prep(format!(
            "SELECT debtor_id, format, state, applied, WRITETIME(state) FROM {ks}.debtor_state \
             WHERE kafka_partition = ? AND shard = ?"
        ))
        .await?;
        scan_shard.set_page_size(i32::try_from(cfg.restore_page_rows).unwrap_or(i32::MAX));
        let mut scan_log = prep(format!(
            "SELECT written, format, states, applied FROM {ks}.debtor_log WHERE kafka_partition = ? AND shard = ?"
        ))
        .await?;
        scan_log.set_page_size(LOG_PAGE_CHUNKS);
        let mut get_ledger_log = prep(format!(
            "SELECT day, records FROM {ks}.ledger_log WHERE kafka_partition = ? AND shard = ? AND day IN ?"
        ))
        .await?;
        get_ledger_log.set_page_size(LOG_PAGE_CHUNKS);
        Ok(Self {
            shards,
            concurrency: cfg.concurrency,
            batch_bytes: cfg.batch_bytes,
            views: cfg.membership_views,
            sweeps: Mutex::new(HashMap::new()),
            rows_dropped: Mutex::new(HashSet::new()),
            put_log: prep(format!(
                "INSERT INTO {ks}.debtor_log (kafka_partition, shard, written, chunk, format, states, applied) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            drop_log: prep(format!(
                "DELETE FROM {ks}.debtor_log USING TIMESTAMP ? WHERE kafka_partition = ? AND shard = ? \
                 AND written < ?"
            ))
            .await?,
            drop_rows: prep(format!(
                "DELETE FROM {ks}.debtor_state USING TIMESTAMP ? WHERE kafka_partition = ? AND shard = ?"
            ))
            .await?,
            scan_log,
            put_ledger_log: prep(format!(
                "INSERT INTO {ks}.ledger_log (kafka_partition, shard, day, written, chunk, records) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            join_view: prep(format!(
                "INSERT INTO {ks}.view_members (view_name, kafka_partition, debtor_id) VALUES (?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            leave_view: prep(format!(
                "DELETE FROM {ks}.view_members USING TIMESTAMP ? WHERE view_name = ? AND kafka_partition = ? \
                 AND debtor_id = ?"
            ))
            .await?,
            put_checkpoint: prep(format!(
                "INSERT INTO {ks}.partition_checkpoint (kafka_partition, topic, next_offset, clock, updated_at) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            get_checkpoint: prep(format!(
                "SELECT topic, next_offset, clock FROM {ks}.partition_checkpoint WHERE kafka_partition = ?"
            ))
            .await?,
            put_kpi_day: prep(format!(
                "INSERT INTO {ks}.partition_kpis (kafka_partition, day, format, counters, updated_at) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            get_kpi_days: prep(format!(
                "SELECT day, format, counters FROM {ks}.partition_kpis WHERE kafka_partition = ? AND day >= ?"
            ))
            .await?,
            put_summary: prep(format!(
                "INSERT INTO {ks}.partition_summary (kafka_partition, format, summary, clock, updated_at) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            get_summary: prep(format!(
                "SELECT format, summary FROM {ks}.partition_summary WHERE kafka_partition = ?"
            ))
            .await?,
            get_ledger: prep(format!(
                "SELECT debtor_id, at, entry, kind, record FROM {ks}.ledger WHERE kafka_partition = ? AND shard = ? \
                 AND day IN ? AND debtor_id = ?"
            ))
            .await?,
            scan_ledger: prep(format!(
                "SELECT debtor_id, at, entry, kind, record FROM {ks}.ledger WHERE kafka_partition = ? AND shard = ? \
                 AND day IN ?"
            ))
            .await?,
            get_ledger_log,
            scan_shard,
            session: s,
        })
    }

    /// CQL partitions per Kafka partition.
    pub fn shards(&self) -> u16 {
        self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("D00000001", 64), shard_of("D00000001", 64));
        let used: std::collections::BTreeSet<i16> = (0..1000)
            .map(|i| shard_of(&format!("D{i:08}"), 64))
            .collect();
        assert_eq!(used.len(), 64);
    }
}
