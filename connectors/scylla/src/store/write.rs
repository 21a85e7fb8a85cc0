//! Writing one partition's flush: batches of rows, ledger entries and membership changes with bounded concurrency,
//! then the checkpoint.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mora_runtime::durable::codec;
use mora_runtime::{DebtorRow, PartitionFlush};
use rust_decimal::Decimal;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlDecimal, CqlTimestamp};

use super::batches::{LedgerEntry, Membership, ledger_batches, row_batches, view_batches};
use super::{Store, shard_of};
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

/// The values of one statement of a batch mixing two prepared statements: which one's values each entry holds.
enum EitherRow<A, B> {
    First(A),
    Second(B),
}

impl<A: SerializeRow, B: SerializeRow> SerializeRow for EitherRow<A, B> {
    fn serialize(
        &self,
        ctx: &scylla::serialize::row::RowSerializationContext<'_>,
        writer: &mut scylla::serialize::writers::RowWriter,
    ) -> Result<(), scylla::serialize::SerializationError> {
        match self {
            EitherRow::First(v) => v.serialize(ctx, writer),
            EitherRow::Second(v) => v.serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

enum Op<'a> {
    /// Debtor rows of one CQL partition.
    Rows(Vec<&'a DebtorRow>),
    /// Ledger entries of one CQL partition.
    Ledger(Vec<LedgerEntry<'a>>),
    /// Membership changes of one view.
    Views(Vec<Membership<'a>>),
}

impl Store {
    /// Writes one partition's flush: ledger entries and views, then rows (bounded concurrency), then the checkpoint.
    /// Every statement carries `write_time` (microseconds) so a late write from an instance that lost the
    /// partition never overwrites a newer one from its next owner. Idempotent: a failed flush is retried whole.
    pub async fn write(&self, f: &PartitionFlush, write_time: i64) -> Result<Written, StateError> {
        let mut entries = Vec::with_capacity(f.actions.len() + f.audits.len());
        let refused = |debtor: &str, e: mora_schemas::EncodeError| StateError::Ledger {
            debtor: debtor.to_string(),
            reason: e.to_string(),
        };
        for a in &f.actions {
            entries
                .push(LedgerEntry::action(self.shards, a).map_err(|e| refused(&a.debtor_id, e))?);
        }
        for r in &f.audits {
            entries.push(LedgerEntry::audit(self.shards, r).map_err(|e| refused(&r.debtor_id, e))?);
        }
        // Two phases. The ledger and the membership changes go first: a row written is a debtor whose records a
        // next owner skips on replay (its `applied` cut is ahead of the checkpoint), so what those records decided
        // must be stored before the row is. A crash between the phases only means the replay writes the same
        // entries again (idempotent).
        let first: Vec<Op<'_>> = ledger_batches(entries, self.batch_bytes)
            .into_iter()
            .map(Op::Ledger)
            .chain(
                view_batches(&f.views, self.batch_bytes)
                    .into_iter()
                    .map(Op::Views),
            )
            .collect();
        let rows: Vec<Op<'_>> = row_batches(&f.rows, self.shards, self.batch_bytes)
            .into_iter()
            .map(Op::Rows)
            .collect();
        let requests = first.len() + rows.len();
        let applied: &BTreeMap<String, i64> = &f.checkpoint.offsets;
        for phase in [first, rows] {
            // An explicit window rather than a stream combinator: the future stays `Send` for the runtime.
            let mut pending = FuturesUnordered::new();
            for op in phase {
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
        let mut values: Vec<EitherRow<_, _>> =
            Vec::with_capacity(cp.offsets.len() + f.kpi_days.len());
        for (topic, next) in &cp.offsets {
            batch.append_statement(self.put_checkpoint.clone());
            values.push(EitherRow::First((
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
                values.push(EitherRow::Second(kpi_values(
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
        let r = match op {
            Op::Rows(rows) => {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                let mut values = Vec::with_capacity(rows.len());
                for r in rows {
                    batch.append_statement(self.put_state.clone());
                    values.push((
                        p,
                        shard_of(&r.debtor_id, self.shards),
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
                s.batch(&batch, values).await
            }
            Op::Ledger(entries) => {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                let mut values = Vec::with_capacity(entries.len());
                for e in &entries {
                    batch.append_statement(self.put_ledger.clone());
                    values.push((
                        p,
                        e.shard,
                        e.day,
                        e.debtor_id,
                        CqlTimestamp(e.at),
                        e.entry,
                        e.kind,
                        e.record.as_slice(),
                        t,
                    ));
                }
                s.batch(&batch, values).await
            }
            Op::Views(changes) => {
                let view = changes.first().map(Membership::view).unwrap_or_default();
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                let mut values = Vec::with_capacity(changes.len());
                for m in &changes {
                    if m.join {
                        batch.append_statement(self.join_view.clone());
                        values.push(EitherRow::First((view.as_str(), p, m.debtor_id, t)));
                    } else {
                        batch.append_statement(self.leave_view.clone());
                        values.push(EitherRow::Second((t, view.as_str(), p, m.debtor_id)));
                    }
                }
                s.batch(&batch, values).await
            }
        };
        r.map(|_| ()).map_err(StateError::db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
