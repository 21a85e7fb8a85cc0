//! The database side: schema migration, flush writes, checkpoint and restore reads. Prepared statements only, so
//! the driver routes each to a replica owning its partition key (token-aware); statements in flight are bounded by
//! `concurrency`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, FuturesUnordered};
use futures::{StreamExt, TryStreamExt};
use mora_domain::action::{Action, AuditRecord};
use mora_domain::debtor::Debtor;
use mora_domain::time::Ts;
use mora_runtime::durable::codec;
use mora_runtime::{
    Checkpoint, DebtorRow, LabelledDay, Offsets, PartitionFlush, PartitionSummary, Restored,
    ViewChange,
};
use mora_schemas::{Wire, encode_action};
use rust_decimal::Decimal;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDecimal, CqlTimestamp};
use tracing::info;

use crate::config::StateConfig;
use crate::error::StateError;

/// The schema, with `{keyspace}` and `{replication}` placeholders.
pub const SCHEMA: &str = include_str!("../cql/001_state.cql");

/// Encoded KPI days above this size are written before the checkpoint's batch rather than in it (the database
/// refuses batches past 50 KiB by default). Only a backfill spanning many days gets there.
const KPI_BATCH_BYTES: usize = 32 * 1024;

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Debtor rows.
    pub rows: u64,
    /// Every statement (rows, views, ledger, checkpoints).
    pub statements: u64,
}

/// A connected store.
#[derive(Debug)]
pub struct Store {
    session: Session,
    shards: u16,
    concurrency: usize,
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

/// A decision as the audit ledger stores it (`audit_by_debtor`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredDecision {
    /// When.
    pub at: Ts,
    /// Kind of decision.
    pub kind: String,
    /// Rule.
    pub rule: String,
    /// Reason code.
    pub reason: String,
    /// The action concerned, if any.
    pub action_id: Option<String>,
    /// Its channel, if any.
    pub channel: Option<String>,
    /// For deferrals: when the guard will be asked again.
    pub until: Option<Ts>,
}

async fn session(cfg: &StateConfig) -> Result<Session, StateError> {
    let profile = ExecutionProfile::builder()
        .consistency(cfg.consistency.driver())
        .request_timeout(Some(Duration::from_secs(10)))
        .build()
        .into_handle();
    let mut b = SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .default_execution_profile_handle(profile)
        .connection_timeout(Duration::from_secs(5));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        b = b.user(u, p);
    }
    b.build().await.map_err(|e| StateError::Connect {
        nodes: cfg.nodes.clone(),
        source: Box::new(e),
    })
}

/// The schema's statements for `cfg`, comments removed.
pub fn schema_statements(cfg: &StateConfig) -> Vec<String> {
    let text: String = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", &cfg.keyspace)
                .replace("{replication}", &cfg.replication.cql())
        })
        .collect()
}

/// Creates the keyspace and tables if missing and records the shard count (kept if already recorded). Returns
/// the shard count in force.
pub async fn migrate(cfg: &StateConfig) -> Result<u16, StateError> {
    cfg.validate().map_err(StateError::Config)?;
    let s = session(cfg).await?;
    for stmt in schema_statements(cfg) {
        s.query_unpaged(stmt.clone(), &[])
            .await
            .map_err(|e| StateError::statement(&stmt, e))?;
    }
    s.await_schema_agreement().await.map_err(StateError::db)?;
    let ks = &cfg.keyspace;
    match stored_shards(&s, ks).await? {
        Some(n) => Ok(n),
        None => {
            s.query_unpaged(
                format!("INSERT INTO {ks}.meta (name, value) VALUES ('shards', ?) IF NOT EXISTS"),
                (cfg.shards.to_string(),),
            )
            .await
            .map_err(StateError::db)?;
            stored_shards(&s, ks)
                .await?
                .ok_or_else(|| StateError::NotMigrated(ks.clone()))
        }
    }
}

async fn stored_shards(s: &Session, ks: &str) -> Result<Option<u16>, StateError> {
    let res = s
        .query_unpaged(
            format!("SELECT value FROM {ks}.meta WHERE name = 'shards'"),
            &[],
        )
        .await
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("does not exist") || msg.contains("unconfigured table") {
                StateError::NotMigrated(ks.to_string())
            } else {
                StateError::db(e)
            }
        })?;
    let rows = res.into_rows_result().map_err(StateError::db)?;
    let value = rows
        .maybe_first_row::<(Option<String>,)>()
        .map_err(StateError::db)?
        .and_then(|(v,)| v);
    value
        .map(|v| {
            v.parse::<u16>().map_err(|e| {
                StateError::Config(format!("{ks}.meta holds shards = `{v}`, not a count: {e}"))
            })
        })
        .transpose()
}

/// The CQL partition (within its Kafka partition) a debtor's row lives in.
pub fn shard_of(debtor: &str, shards: u16) -> i16 {
    (xxhash_rust::xxh3::xxh3_64(debtor.as_bytes()) % u64::from(shards.max(1))) as i16
}

fn decimal(d: Decimal) -> CqlDecimal {
    CqlDecimal::from_signed_be_bytes_slice_and_exponent(
        &d.mantissa().to_be_bytes(),
        d.scale() as i32,
    )
}

fn month(t: Ts) -> i32 {
    use chrono::Datelike;
    t.to_utc().map_or(0, |d| d.year() * 100 + d.month() as i32)
}

fn fingerprint(r: &AuditRecord) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        r.kind.as_str(),
        r.rule.as_str(),
        r.reason.as_str(),
        r.action_id.as_ref().map_or("", |a| a.0.as_str()),
        r.channel.map_or("", |c| c.as_str()),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(&r.until.map_or(i64::MIN, |t| t.0).to_le_bytes());
    h.digest() as i64
}

/// The values of one `partition_kpis` insert.
fn kpi_values(
    partition: i32,
    day: i64,
    counters: &[u8],
    now: CqlTimestamp,
    write_time: i64,
) -> (i32, i32, i16, &[u8], CqlTimestamp, i64) {
    (
        partition,
        i32::try_from(day).unwrap_or(i32::MAX),
        codec::AGGREGATE_FORMAT,
        counters,
        now,
        write_time,
    )
}

/// The values of one statement of the checkpoint's batch.
enum BatchRow<'a> {
    Checkpoint((i32, &'a str, i64, i64, CqlTimestamp, i64)),
    Kpis((i32, i32, i16, &'a [u8], CqlTimestamp, i64)),
}

impl scylla::serialize::row::SerializeRow for BatchRow<'_> {
    fn serialize(
        &self,
        ctx: &scylla::serialize::row::RowSerializationContext<'_>,
        writer: &mut scylla::serialize::writers::RowWriter,
    ) -> Result<(), scylla::serialize::SerializationError> {
        match self {
            BatchRow::Checkpoint(v) => v.serialize(ctx, writer),
            BatchRow::Kpis(v) => v.serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
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

enum Op<'a> {
    Row(&'a DebtorRow),
    View(&'a ViewChange),
    Action(&'a Action),
    Audit(&'a AuditRecord),
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

    /// Writes one partition's flush: rows, views and ledger entries (bounded concurrency), then the checkpoint.
    /// Every statement carries `write_time` (microseconds) so a late write from an instance that lost the
    /// partition never overwrites a newer one from its next owner. Idempotent: a failed flush is retried whole.
    pub async fn write(&self, f: &PartitionFlush, write_time: i64) -> Result<Written, StateError> {
        let ops = f
            .rows
            .iter()
            .map(Op::Row)
            .chain(f.views.iter().map(Op::View))
            .chain(f.actions.iter().map(Op::Action))
            .chain(f.audits.iter().map(Op::Audit));
        let applied: &BTreeMap<String, i64> = &f.checkpoint.offsets;
        // An explicit window rather than a stream combinator: the future stays `Send` for the runtime.
        let mut pending = FuturesUnordered::new();
        for op in ops {
            if pending.len() >= self.concurrency
                && let Some(r) = pending.next().await
            {
                r?;
            }
            pending.push(self.exec(f.partition, applied, write_time, op));
        }
        while let Some(r) = pending.next().await {
            r?;
        }
        let cp = &f.checkpoint;
        let now = CqlTimestamp(write_time / 1000);
        // KPI days go in the checkpoint's batch, so the counters a restore loads reflect exactly its cut; a backfill
        // spanning many days is written just before it instead (a crash in between may count that flush twice).
        let kpi_bytes: usize = f.kpi_days.iter().map(|(_, b)| b.len()).sum();
        let kpis_in_batch = kpi_bytes <= KPI_BATCH_BYTES;
        if !kpis_in_batch {
            for (day, counters) in &f.kpi_days {
                self.session
                    .execute_unpaged(
                        &self.put_kpi_day,
                        kpi_values(f.partition, *day, counters, now, write_time),
                    )
                    .await
                    .map_err(StateError::db)?;
            }
        }
        let mut batch = Batch::new(BatchType::Logged);
        let mut values: Vec<BatchRow<'_>> = Vec::with_capacity(cp.offsets.len() + f.kpi_days.len());
        for (topic, next) in &cp.offsets {
            batch.append_statement(self.put_checkpoint.clone());
            values.push(BatchRow::Checkpoint((
                f.partition,
                topic.as_str(),
                *next,
                cp.clock.0,
                now,
                write_time,
            )));
        }
        if kpis_in_batch {
            for (day, counters) in &f.kpi_days {
                batch.append_statement(self.put_kpi_day.clone());
                values.push(BatchRow::Kpis(kpi_values(
                    f.partition,
                    *day,
                    counters,
                    now,
                    write_time,
                )));
            }
        }
        if !values.is_empty() {
            self.session
                .batch(&batch, values)
                .await
                .map_err(StateError::db)?;
        }
        if let Some(summary) = &f.summary {
            self.session
                .execute_unpaged(
                    &self.put_summary,
                    (
                        f.partition,
                        codec::AGGREGATE_FORMAT,
                        summary.as_slice(),
                        cp.clock.0,
                        now,
                        write_time,
                    ),
                )
                .await
                .map_err(StateError::db)?;
        }
        Ok(Written {
            rows: f.rows.len() as u64,
            statements: f.statements() as u64
                + cp.offsets.len() as u64
                + f.kpi_days.len() as u64
                + u64::from(f.summary.is_some()),
        })
    }

    async fn exec(
        &self,
        p: i32,
        applied: &BTreeMap<String, i64>,
        t: i64,
        op: Op<'_>,
    ) -> Result<(), StateError> {
        let s = &self.session;
        let shard = |id: &str| shard_of(id, self.shards);
        let r = match op {
            Op::Row(r) => {
                s.execute_unpaged(
                    &self.put_state,
                    (
                        p,
                        shard(&r.debtor_id),
                        r.debtor_id.as_str(),
                        codec::FORMAT,
                        r.state.as_slice(),
                        r.bucket.as_str(),
                        r.stage,
                        r.segment.as_str(),
                        decimal(r.outstanding_base),
                        decimal(r.overdue_base),
                        r.dpd,
                        r.priority,
                        applied,
                        CqlTimestamp(t / 1000),
                        t,
                    ),
                )
                .await
            }
            Op::View(v) => match v {
                ViewChange::JoinSegment(name, id) => {
                    s.execute_unpaged(&self.join_segment, (name, p, shard(id), id, t))
                        .await
                }
                ViewChange::LeaveSegment(name, id) => {
                    s.execute_unpaged(&self.leave_segment, (t, name, p, shard(id), id))
                        .await
                }
                ViewChange::JoinQueue(name, id) => {
                    s.execute_unpaged(&self.join_queue, (name, p, shard(id), id, t))
                        .await
                }
                ViewChange::LeaveQueue(name, id) => {
                    s.execute_unpaged(&self.leave_queue, (t, name, p, shard(id), id))
                        .await
                }
            },
            Op::Action(a) => {
                let bytes = encode_action(a, Wire::Raw).map_err(StateError::db)?;
                s.execute_unpaged(
                    &self.put_action,
                    (
                        a.debtor_id.as_str(),
                        month(a.created_at),
                        CqlTimestamp(a.created_at.0),
                        a.action_id.0.as_str(),
                        a.channel.as_str(),
                        a.reason.strategy.as_str(),
                        a.reason.step.as_str(),
                        CqlTimestamp(a.not_before.0),
                        bytes,
                        t,
                    ),
                )
                .await
            }
            Op::Audit(r) => {
                s.execute_unpaged(
                    &self.put_audit,
                    (
                        r.debtor_id.as_str(),
                        month(r.at),
                        CqlTimestamp(r.at.0),
                        fingerprint(r),
                        r.kind.as_str(),
                        r.rule.as_str(),
                        r.reason.as_str(),
                        r.action_id.as_ref().map(|a| a.0.as_str()),
                        r.channel.map(|c| c.as_str()),
                        r.until.map(|u| CqlTimestamp(u.0)),
                        t,
                    ),
                )
                .await
            }
        };
        r.map(|_| ()).map_err(StateError::db)
    }

    /// The stored cut of `partition`, if it was ever flushed.
    pub async fn checkpoint(&self, partition: i32) -> Result<Option<Checkpoint>, StateError> {
        let rows = self
            .session
            .execute_unpaged(&self.get_checkpoint, (partition,))
            .await
            .map_err(StateError::db)?
            .into_rows_result()
            .map_err(StateError::db)?;
        let mut cp = Checkpoint::default();
        let mut any = false;
        for row in rows
            .rows::<(String, Option<i64>, Option<i64>)>()
            .map_err(StateError::db)?
        {
            let (topic, next, clock) = row.map_err(StateError::db)?;
            any = true;
            cp.offsets.insert(topic, next.unwrap_or(0));
            if let Some(c) = clock {
                cp.clock = Ts(c);
            }
        }
        Ok(any.then_some(cp))
    }

    /// Reads every stored debtor of `partition` (its shards in parallel) and its checkpoint. Debtors come back
    /// sorted by id, so a restored worker is the same whatever order the shards answered in.
    pub async fn restore(&self, partition: i32) -> Result<Restored, StateError> {
        let started = std::time::Instant::now();
        let checkpoint = self.checkpoint(partition).await?;
        let parts: Vec<Vec<(Debtor, Option<Offsets>)>> = stream::iter(0..self.shards as i16)
            .map(|shard| self.scan(partition, shard))
            .buffer_unordered(self.concurrency.min(self.shards as usize).max(1))
            .try_collect()
            .await?;
        let mut all: Vec<(Debtor, Option<Offsets>)> = parts.into_iter().flatten().collect();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let today = checkpoint
            .as_ref()
            .map_or(0, |c| c.clock.0.div_euclid(mora_domain::time::DAY_MS));
        let kpi_days = self
            .kpi_days(partition, today - mora_runtime::KPI_RETENTION_DAYS)
            .await?;
        let mut out = Restored {
            checkpoint,
            kpi_days,
            ..Restored::default()
        };
        for (d, applied) in all {
            if let Some(applied) = applied {
                let cp = out.checkpoint.as_ref();
                let ahead = applied
                    .iter()
                    .any(|(t, o)| *o > cp.and_then(|c| c.offsets.get(t)).copied().unwrap_or(0));
                if ahead {
                    out.ahead.push((d.id.clone(), applied));
                }
            }
            out.debtors.push(d);
        }
        info!(
            partition,
            debtors = out.debtors.len(),
            ahead = out.ahead.len(),
            elapsed = ?started.elapsed(),
            "Partition state restored from the database."
        );
        Ok(out)
    }

    /// One stored debtor of Kafka partition `partition` (for queries about a partition another instance owns).
    pub async fn debtor(&self, partition: i32, id: &str) -> Result<Option<Debtor>, StateError> {
        let shard = shard_of(id, self.shards);
        let rows = self
            .session
            .execute_unpaged(&self.get_debtor, (partition, shard, id))
            .await
            .map_err(StateError::db)?
            .into_rows_result()
            .map_err(StateError::db)?;
        let row = rows
            .maybe_first_row::<(Option<i16>, Option<Vec<u8>>)>()
            .map_err(StateError::db)?;
        row.map(|(format, state)| {
            codec::decode(
                id,
                format.unwrap_or(0),
                state.as_deref().unwrap_or_default(),
            )
        })
        .transpose()
        .map_err(StateError::from)
    }

    /// The stored KPI days of `partition` from `from_day` on (days since the epoch), newest first.
    pub async fn kpi_days(
        &self,
        partition: i32,
        from_day: i64,
    ) -> Result<Vec<(i64, LabelledDay)>, StateError> {
        let from = i32::try_from(from_day).unwrap_or(i32::MIN);
        let rows = self
            .session
            .execute_unpaged(&self.get_kpi_days, (partition, from))
            .await
            .map_err(StateError::db)?
            .into_rows_result()
            .map_err(StateError::db)?;
        let mut out = Vec::new();
        for row in rows
            .rows::<(i32, Option<i16>, Option<Vec<u8>>)>()
            .map_err(StateError::db)?
        {
            let (day, format, counters) = row.map_err(StateError::db)?;
            let counters = codec::decode_kpi_day(
                format.unwrap_or(0),
                counters.as_deref().unwrap_or_default(),
            )?;
            out.push((i64::from(day), counters));
        }
        Ok(out)
    }

    /// A debtor's latest `n` stored decisions, newest first, from the month of `now` and the one before.
    pub async fn recent_decisions(
        &self,
        debtor: &str,
        now: Ts,
        n: usize,
    ) -> Result<Vec<StoredDecision>, StateError> {
        let this = month(now);
        let before = if this % 100 == 1 { this - 89 } else { this - 1 };
        let limit = i32::try_from(n).unwrap_or(i32::MAX);
        let mut out = Vec::new();
        for m in [this, before] {
            if out.len() >= n {
                break;
            }
            let rows = self
                .session
                .execute_unpaged(&self.get_audits, (debtor, m, limit))
                .await
                .map_err(StateError::db)?
                .into_rows_result()
                .map_err(StateError::db)?;
            type Row = (
                CqlTimestamp,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<CqlTimestamp>,
            );
            for row in rows.rows::<Row>().map_err(StateError::db)? {
                let (at, kind, rule, reason, action_id, channel, until) =
                    row.map_err(StateError::db)?;
                out.push(StoredDecision {
                    at: Ts(at.0),
                    kind: kind.unwrap_or_default(),
                    rule: rule.unwrap_or_default(),
                    reason: reason.unwrap_or_default(),
                    action_id,
                    channel,
                    until: until.map(|u| Ts(u.0)),
                });
            }
        }
        out.truncate(n);
        Ok(out)
    }

    /// The summary `partition`'s owner last published, if any.
    pub async fn summary(&self, partition: i32) -> Result<Option<PartitionSummary>, StateError> {
        let rows = self
            .session
            .execute_unpaged(&self.get_summary, (partition,))
            .await
            .map_err(StateError::db)?
            .into_rows_result()
            .map_err(StateError::db)?;
        let row = rows
            .maybe_first_row::<(Option<i16>, Option<Vec<u8>>)>()
            .map_err(StateError::db)?;
        row.map(|(format, bytes)| {
            codec::decode_summary(format.unwrap_or(0), bytes.as_deref().unwrap_or_default())
        })
        .transpose()
        .map_err(StateError::from)
    }

    async fn scan(
        &self,
        partition: i32,
        shard: i16,
    ) -> Result<Vec<(Debtor, Option<Offsets>)>, StateError> {
        let mut rows = self
            .session
            .execute_iter(self.scan_shard.clone(), (partition, shard))
            .await
            .map_err(StateError::db)?
            .rows_stream::<(String, Option<i16>, Option<Vec<u8>>, Option<Offsets>)>()
            .map_err(StateError::db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            let (id, format, state, applied) = row.map_err(StateError::db)?;
            let d = codec::decode(
                &id,
                format.unwrap_or(0),
                state.as_deref().unwrap_or_default(),
            )?;
            out.push((d, applied));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_templated_and_split_into_statements() {
        let mut cfg = StateConfig::new(vec!["n:9042".into()]);
        cfg.keyspace = "bank_a".into();
        let stmts = schema_statements(&cfg);
        assert!(stmts[0].starts_with(
            "CREATE KEYSPACE IF NOT EXISTS bank_a WITH replication = {'class': 'SimpleStrategy'"
        ));
        assert!(
            stmts
                .iter()
                .skip(1)
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS bank_a."))
        );
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.starts_with("CREATE KEYSPACE"))
        );
        assert_eq!(stmts.len(), 10);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("D00000001", 64), shard_of("D00000001", 64));
        let used: std::collections::BTreeSet<i16> = (0..1000)
            .map(|i| shard_of(&format!("D{i:08}"), 64))
            .collect();
        assert_eq!(used.len(), 64);
    }

    #[test]
    fn decimals_keep_their_scale() {
        let d: Decimal = "1234.50".parse().unwrap();
        let c = decimal(d);
        let (bytes, scale) = c.as_signed_be_bytes_slice_and_exponent();
        assert_eq!(scale, 2);
        assert_eq!(
            i128::from_be_bytes({
                let mut b = [if bytes[0] & 0x80 != 0 { 0xff } else { 0 }; 16];
                b[16 - bytes.len()..].copy_from_slice(bytes);
                b
            }),
            123450
        );
    }
}
