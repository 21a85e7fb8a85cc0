//! Writing one partition's flush: rows, views and ledger entries with bounded concurrency, then the checkpoint.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mora_domain::action::{Action, AuditRecord};
use mora_runtime::durable::codec;
use mora_runtime::{DebtorRow, PartitionFlush, ViewChange};
use mora_schemas::{Wire, encode_action};
use rust_decimal::Decimal;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlDecimal, CqlTimestamp};

use super::{Store, month, shard_of};
use crate::error::StateError;

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
    /// Requests sent (a batch is one): what the database's cost follows.
    pub requests: u64,
}

fn decimal(d: Decimal) -> CqlDecimal {
    CqlDecimal::from_signed_be_bytes_slice_and_exponent(
        &d.mantissa().to_be_bytes(),
        d.scale() as i32,
    )
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

/// A debtor row's size in a batch, as the byte bound counts it: its state and text columns, plus the fixed-size ones.
fn row_bytes(r: &DebtorRow) -> usize {
    r.state.len() + r.debtor_id.len() + r.bucket.len() + r.segment.len() + r.stage.len() + 96
}

/// Groups rows by their CQL partition (shard) and cuts each group into batches of at most `batch_bytes` (a row
/// larger than that goes alone). Every batch touches one partition, so the database applies it as one mutation.
fn row_batches(rows: &[DebtorRow], shards: u16, batch_bytes: usize) -> Vec<Vec<&DebtorRow>> {
    let mut by_shard: BTreeMap<i16, Vec<&DebtorRow>> = BTreeMap::new();
    for r in rows {
        by_shard
            .entry(shard_of(&r.debtor_id, shards))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for (_, group) in by_shard {
        let (mut batch, mut bytes) = (Vec::new(), 0);
        for r in group {
            let size = row_bytes(r);
            if !batch.is_empty() && bytes + size > batch_bytes {
                out.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(r);
        }
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

enum Op<'a> {
    /// Debtor rows of one CQL partition, sent as one UNLOGGED batch.
    Rows(Vec<&'a DebtorRow>),
    View(&'a ViewChange),
    Action(&'a Action),
    Audit(&'a AuditRecord),
}

impl Store {
    /// Writes one partition's flush: rows, views and ledger entries (bounded concurrency), then the checkpoint.
    /// Every statement carries `write_time` (microseconds) so a late write from an instance that lost the
    /// partition never overwrites a newer one from its next owner. Idempotent: a failed flush is retried whole.
    pub async fn write(&self, f: &PartitionFlush, write_time: i64) -> Result<Written, StateError> {
        let batches = row_batches(&f.rows, self.shards, self.batch_bytes);
        let requests = batches.len() + f.views.len() + f.actions.len() + f.audits.len();
        let ops = batches
            .into_iter()
            .map(Op::Rows)
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
        let checkpoint_batch = !values.is_empty();
        if checkpoint_batch {
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
        let checkpoint_requests = usize::from(checkpoint_batch)
            + if kpis_in_batch { 0 } else { f.kpi_days.len() }
            + usize::from(f.summary.is_some());
        Ok(Written {
            rows: f.rows.len() as u64,
            statements: f.statements() as u64
                + cp.offsets.len() as u64
                + f.kpi_days.len() as u64
                + u64::from(f.summary.is_some()),
            requests: (requests + checkpoint_requests) as u64,
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
            Op::Rows(rows) => {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                let mut values = Vec::with_capacity(rows.len());
                for r in rows {
                    batch.append_statement(self.put_state.clone());
                    values.push((
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
                    ));
                }
                return s
                    .batch(&batch, values)
                    .await
                    .map(|_| ())
                    .map_err(StateError::db);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: usize) -> DebtorRow {
        DebtorRow {
            debtor_id: id.into(),
            state: vec![0; state],
            bucket: "1-30".into(),
            stage: "administrative",
            segment: "early".into(),
            outstanding_base: Decimal::ONE,
            overdue_base: Decimal::ONE,
            dpd: 10,
            priority: 100,
        }
    }

    #[test]
    fn rows_batch_by_cql_partition_within_the_byte_bound() {
        let rows: Vec<DebtorRow> = (0..1000).map(|i| row(&format!("D{i:06}"), 400)).collect();
        let batches = row_batches(&rows, 8, 16 * 1024);
        assert_eq!(
            batches.iter().map(Vec::len).sum::<usize>(),
            1000,
            "every row once"
        );
        for b in &batches {
            let shard = shard_of(&b[0].debtor_id, 8);
            assert!(
                b.iter().all(|r| shard_of(&r.debtor_id, 8) == shard),
                "one partition per batch"
            );
            assert!(b.iter().map(|r| row_bytes(r)).sum::<usize>() <= 16 * 1024);
        }
        // 8 partitions of ~125 rows of ~530 bytes: 5 batches each at 16 KiB, not 1 000 requests.
        assert!(batches.len() <= 8 * 5, "{} batches", batches.len());
    }

    #[test]
    fn a_row_larger_than_the_bound_goes_alone() {
        let rows = vec![row("A", 10), row("B", 100_000), row("C", 10)];
        let batches = row_batches(&rows, 1, 4096);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1, 1, 1],
            "the big row is cut off from its neighbours on both sides"
        );
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
