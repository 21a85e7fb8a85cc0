//! Writing one partition's flush: chunks of ledger entries and batches of membership changes, then chunks of debtor
//! states,
//! with bounded concurrency; then the checkpoint; then, when a sweep ended, the deletion of what it superseded.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mora_runtime::PartitionFlush;
use mora_runtime::durable::codec;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlTimestamp;
use tracing::{info, warn};

use super::Store;
use super::batches::{LedgerEntry, Membership, view_batches};
use super::ledger::{LedgerChunk, ledger_chunks};
use super::log::chunks;
use crate::error::StateError;

/// Encoded KPI days above this size are written before the checkpoint's batch rather than in it (the database
/// refuses batches past 50 KiB by default). Only a backfill spanning many days gets there.
const KPI_BATCH_BYTES: usize = 32 * 1024;

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Debtor states.
    pub rows: u64,
    /// Of those, states a sweep rewrote.
    pub swept: u64,
    /// Every statement (chunks of states, views, ledger entries, checkpoints, deletions).
    pub statements: u64,
    /// Requests sent (a batch is one): what the database's cost follows.
    pub requests: u64,
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
    /// A chunk of debtor states: shard, chunk number, bytes.
    Chunk(i16, i32, Vec<u8>),
    /// A chunk of ledger entries.
    Ledger(LedgerChunk),
    /// Membership changes of one view.
    Views(Vec<Membership<'a>>),
}

impl Store {
    /// Writes one partition's flush: ledger entries and views, then chunks of states (bounded concurrency), then
    /// the checkpoint, then, if a sweep ended with it, the deletion of what the sweep superseded. Every statement
    /// carries `write_time` (microseconds), which also keys the flush's chunks, so a late write from an instance
    /// that lost the partition never overwrites or outranks a newer one from its next owner. Idempotent: a failed
    /// flush is retried whole.
    pub async fn write(&self, f: &PartitionFlush, write_time: i64) -> Result<Written, StateError> {
        if let Some(m) = f.sweep.filter(|m| m.starts) {
            self.sweeps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert((f.partition, m.id), write_time);
        }
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
        let views: &[mora_runtime::ViewChange] = if self.views { &f.views } else { &[] };
        let ledger = ledger_chunks(entries, self.batch_bytes);
        let ledger_chunk_count = ledger.len();
        let first: Vec<Op<'_>> = ledger
            .into_iter()
            .map(Op::Ledger)
            .chain(
                view_batches(views, self.batch_bytes)
                    .into_iter()
                    .map(Op::Views),
            )
            .collect();
        let rows: Vec<Op<'_>> = chunks(&f.rows, self.shards, self.batch_bytes)
            .into_iter()
            .map(|(shard, n, bytes, _)| Op::Chunk(shard, n, bytes))
            .collect();
        let chunk_count = rows.len();
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
        let deletions = self.drop_superseded(f, write_time).await?;
        Ok(Written {
            rows: f.rows.len() as u64,
            swept: f.sweep.map_or(0, |m| m.rows) as u64,
            statements: (chunk_count + views.len() + ledger_chunk_count) as u64
                + cp.offsets.len() as u64
                + f.kpi_days.len() as u64
                + u64::from(f.summary.is_some())
                + deletions,
            requests: (requests + checkpoint_requests) as u64 + deletions,
        })
    }

    /// When a sweep ended with `f` (every debtor of the partition written since the flush it started in), deletes
    /// from each shard the log entries and the rows of earlier versions written before that flush. Returns the
    /// statements sent. A sweep whose start this process did not see (it began under another owner) deletes nothing.
    async fn drop_superseded(
        &self,
        f: &PartitionFlush,
        write_time: i64,
    ) -> Result<u64, StateError> {
        let Some(m) = f.sweep.filter(|m| m.ends) else {
            return Ok(0);
        };
        let key = (f.partition, m.id);
        let started = self
            .sweeps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .copied();
        let Some(started) = started else {
            warn!(
                partition = f.partition,
                "A sweep ended whose start is unknown here; the debtor log keeps its older entries."
            );
            return Ok(0);
        };
        // Everything older than the sweep's first flush: cells written before it, and none of its own or later.
        let before = started - 1;
        let rows_too = !self
            .rows_dropped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&f.partition);
        let mut pending = FuturesUnordered::new();
        for shard in 0..self.shards as i16 {
            if pending.len() >= self.concurrency
                && let Some(r) = pending.next().await
            {
                r?;
            }
            pending.push(async move {
                self.session
                    .execute_unpaged(&self.drop_log, (before, f.partition, shard, started))
                    .await
                    .map_err(StateError::db)?;
                if rows_too {
                    self.session
                        .execute_unpaged(&self.drop_rows, (before, f.partition, shard))
                        .await
                        .map_err(StateError::db)?;
                }
                Ok::<_, StateError>(())
            });
        }
        while let Some(r) = pending.next().await {
            r?;
        }
        self.sweeps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        if rows_too {
            self.rows_dropped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(f.partition);
        }
        info!(
            partition = f.partition,
            sweep_ms = (write_time - started) / 1000,
            "A sweep of the partition's debtors ended; the debtor log's entries before it were deleted."
        );
        Ok((1 + u64::from(rows_too)) * u64::from(self.shards))
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
            Op::Chunk(shard, n, bytes) => {
                s.execute_unpaged(
                    &self.put_log,
                    (p, shard, t, n, codec::FORMAT, bytes.as_slice(), applied, t),
                )
                .await
            }
            Op::Ledger(c) => {
                s.execute_unpaged(
                    &self.put_ledger_log,
                    (p, c.shard, c.day, t, c.n, c.bytes.as_slice(), t),
                )
                .await
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
