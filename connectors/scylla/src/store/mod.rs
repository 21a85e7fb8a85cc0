//! The database side: schema migration, flush writes, checkpoint and restore reads. Prepared statements only, so
//! the driver routes each to a replica owning its partition key (token-aware); statements in flight are bounded by
//! `concurrency`.

mod read;
mod schema;
mod write;

use mora_domain::time::Ts;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::config::StateConfig;
use crate::error::StateError;
use schema::{session, stored_shards};

pub use read::StoredDecision;
pub use schema::{SCHEMA, migrate, schema_statements};
pub use write::Written;

/// A connected store.
#[derive(Debug)]
pub struct Store {
    session: Session,
    shards: u16,
    concurrency: usize,
    batch_bytes: usize,
    put_state: PreparedStatement,
    put_action: PreparedStatement,
    put_audit: PreparedStatement,
    join_segment: PreparedStatement,
    leave_segment: PreparedStatement,
    join_queue: PreparedStatement,
    leave_queue: PreparedStatement,
    put_checkpoint: PreparedStatement,
    get_checkpoint: PreparedStatement,
    scan_shard: PreparedStatement,
    get_debtor: PreparedStatement,
    put_kpi_day: PreparedStatement,
    get_kpi_days: PreparedStatement,
    put_summary: PreparedStatement,
    get_summary: PreparedStatement,
    get_audits: PreparedStatement,
}

/// The CQL partition (within its Kafka partition) a debtor's row lives in.
pub fn shard_of(debtor: &str, shards: u16) -> i16 {
    (xxhash_rust::xxh3::xxh3_64(debtor.as_bytes()) % u64::from(shards.max(1))) as i16
}

pub(crate) fn month(t: Ts) -> i32 {
    use chrono::Datelike;
    t.to_utc().map_or(0, |d| d.year() * 100 + d.month() as i32)
}

/// Adds a debtor to a membership view (`segment_members`, `queue_members`) keyed by `key`.
fn join_view(ks: &str, table: &str, key: &str) -> String {
    format!(
        "INSERT INTO {ks}.{table} ({key}, kafka_partition, shard, debtor_id) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
    )
}

/// Removes a debtor from a membership view.
fn leave_view(ks: &str, table: &str, key: &str) -> String {
    format!(
        "DELETE FROM {ks}.{table} USING TIMESTAMP ? WHERE {key} = ? AND kafka_partition = ? AND shard = ? \
         AND debtor_id = ?"
    )
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
            "SELECT debtor_id, format, state, applied FROM {ks}.debtor_state WHERE kafka_partition = ? AND shard = ?"
        ))
        .await?;
        scan_shard.set_page_size(2000);
        Ok(Self {
            shards,
            concurrency: cfg.concurrency,
            batch_bytes: cfg.batch_bytes,
            put_state: prep(format!(
                "INSERT INTO {ks}.debtor_state (kafka_partition, shard, debtor_id, format, state, bucket, stage, segment, \
                 outstanding_base, overdue_base, dpd, priority, applied, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            put_action: prep(format!(
                "INSERT INTO {ks}.actions_by_debtor (debtor_id, month, created_at, action_id, channel, strategy, step, \
                 not_before, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            put_audit: prep(format!(
                "INSERT INTO {ks}.audit_by_debtor (debtor_id, month, at, fingerprint, kind, rule, reason, action_id, \
                 channel, until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            join_segment: prep(join_view(ks, "segment_members", "segment")).await?,
            leave_segment: prep(leave_view(ks, "segment_members", "segment")).await?,
            join_queue: prep(join_view(ks, "queue_members", "queue")).await?,
            leave_queue: prep(leave_view(ks, "queue_members", "queue")).await?,
            put_checkpoint: prep(format!(
                "INSERT INTO {ks}.partition_checkpoint (kafka_partition, topic, next_offset, clock, updated_at) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            get_checkpoint: prep(format!(
                "SELECT topic, next_offset, clock FROM {ks}.partition_checkpoint WHERE kafka_partition = ?"
            ))
            .await?,
            get_debtor: prep(format!(
                "SELECT format, state FROM {ks}.debtor_state WHERE kafka_partition = ? AND shard = ? AND debtor_id = ?"
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
            get_audits: prep(format!(
                "SELECT at, kind, rule, reason, action_id, channel, until FROM {ks}.audit_by_debtor \
                 WHERE debtor_id = ? AND month = ? LIMIT ?"
            ))
            .await?,
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
