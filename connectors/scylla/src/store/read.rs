//! Reading back: a partition's checkpoint and debtors for a restore, and single debtors, KPI days and summaries for
//! the API's answers about partitions another instance owns (the ledger: `history.rs`).

use std::sync::Arc;

use futures::stream::{self};
use futures::{StreamExt, TryStreamExt};
use mora_domain::debtor::Debtor;
use mora_domain::time::Ts;
use mora_runtime::durable::codec;
use mora_runtime::{Checkpoint, LabelledDay, Offsets, PartitionSummary, Restored};
use tracing::info;

use super::log::{self, Latest};
use super::packed;
use super::{Store, shard_of};
use crate::error::StateError;

/// Shards a restore reads at once: each holds its whole log in memory while it picks the latest entries.
const RESTORE_SHARDS: usize = 16;

impl Store {
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

    /// Reads every stored debtor of `partition` and its checkpoint. Its shards are read in parallel, each as a task
    /// of the store's runtime that keeps each debtor's latest state and decodes those in id order: the caller only
    /// merges the shards' sorted runs. Debtors come back sorted by id, so a restored worker is the same whatever
    /// order the shards answered in.
    pub async fn restore(self: &Arc<Self>, partition: i32) -> Result<Restored, StateError> {
        let started = std::time::Instant::now();
        let checkpoint = self.checkpoint(partition).await?;
        let cut = Arc::new(
            checkpoint
                .as_ref()
                .map(|c| c.offsets.clone())
                .unwrap_or_default(),
        );
        let parts: Vec<Vec<(Debtor, Option<Offsets>)>> = stream::iter(0..self.shards as i16)
            .map(|shard| {
                let (store, cut) = (Arc::clone(self), Arc::clone(&cut));
                async move {
                    tokio::spawn(async move { store.scan(partition, shard, None, &cut).await })
                        .await
                        .map_err(StateError::db)?
                }
            })
            .buffer_unordered(
                RESTORE_SHARDS
                    .min(self.concurrency)
                    .min(self.shards as usize)
                    .max(1),
            )
            .try_collect()
            .await?;
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
        out.debtors.reserve(parts.iter().map(Vec::len).sum());
        for (d, ahead) in merge_sorted(parts, |(d, _)| d.id.clone()) {
            if let Some(applied) = ahead {
                out.ahead.push((d.id.clone(), applied));
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

    /// One stored debtor of Kafka partition `partition` (for queries about a partition another instance owns). Reads
    /// its shard's log (a few times the shard's live states at most) and decodes only this debtor's latest entry.
    pub async fn debtor(&self, partition: i32, id: &str) -> Result<Option<Debtor>, StateError> {
        let shard = shard_of(id, self.shards);
        Ok(self
            .scan(partition, shard, Some(id), &Offsets::new())
            .await?
            .into_iter()
            .next()
            .map(|(d, _)| d))
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

    /// The latest stored state of each debtor of one shard (only `only`'s, if given), in id order: the rows of
    /// versions before the debtor log and the log's entries, the latest by write time; with what it reflects when
    /// that is ahead of `cut` (the partition's checkpoint) in some topic.
    async fn scan(
        &self,
        partition: i32,
        shard: i16,
        only: Option<&str>,
        cut: &Offsets,
    ) -> Result<Vec<(Debtor, Option<Offsets>)>, StateError> {
        // Whether a stored cut is ahead of the checkpoint: worked out once per row or chunk, not per debtor.
        let ahead = |applied: &Option<Offsets>| {
            applied
                .as_ref()
                .is_some_and(|a| a.iter().any(|(t, o)| *o > cut.get(t).copied().unwrap_or(0)))
        };
        type Row = (
            String,
            Option<i16>,
            Option<Vec<u8>>,
            Option<Offsets>,
            Option<i64>,
        );
        let mut rows = self
            .session
            .execute_iter(self.scan_shard.clone(), (partition, shard))
            .await
            .map_err(StateError::db)?
            .rows_stream::<Row>()
            .map_err(StateError::db)?;
        let mut earlier: Vec<Row> = Vec::new();
        while let Some(row) = rows.next().await {
            let row = row.map_err(StateError::db)?;
            if only.is_none_or(|id| id == row.0) {
                earlier.push(row);
            }
        }
        type Chunk = (i64, Option<i16>, Option<Vec<u8>>, Option<Offsets>);
        let mut pages = self
            .session
            .execute_iter(self.scan_log.clone(), (partition, shard))
            .await
            .map_err(StateError::db)?
            .rows_stream::<Chunk>()
            .map_err(StateError::db)?;
        let mut chunks: Vec<Chunk> = Vec::new();
        while let Some(chunk) = pages.next().await {
            let mut chunk = chunk.map_err(StateError::db)?;
            if let Some(stored) = chunk.2.take() {
                chunk.2 = Some(packed::unpack_owned(stored).map_err(|e| StateError::Chunk {
                    partition,
                    shard,
                    source: log::ChunkError(e),
                })?);
            }
            chunks.push(chunk);
        }
        let earlier_ahead: Vec<bool> = earlier.iter().map(|r| ahead(&r.3)).collect();
        let chunks_ahead: Vec<bool> = chunks.iter().map(|c| ahead(&c.3)).collect();
        let mut latest = Latest::default();
        for ((id, format, state, applied, written), is_ahead) in earlier.iter().zip(&earlier_ahead)
        {
            latest.offer(
                id,
                written.unwrap_or(i64::MIN),
                format.unwrap_or(0),
                state.as_deref().unwrap_or_default(),
                (applied, *is_ahead),
            );
        }
        for ((written, format, states, applied), is_ahead) in chunks.iter().zip(&chunks_ahead) {
            let entries =
                log::entries(states.as_deref().unwrap_or_default()).map_err(|source| {
                    StateError::Chunk {
                        partition,
                        shard,
                        source,
                    }
                })?;
            for (id, state) in entries {
                if only.is_none_or(|o| o == id) {
                    latest.offer(
                        id,
                        *written,
                        format.unwrap_or(0),
                        state,
                        (applied, *is_ahead),
                    );
                }
            }
        }
        let mut entries: Vec<_> = latest.into_entries().collect();
        // Sorted here, on the store's threads, where an entry is a few words: the caller merges sorted runs.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
            .into_iter()
            .map(|(id, format, state, (applied, is_ahead))| {
                let ahead = if is_ahead { applied.clone() } else { None };
                Ok((codec::decode(id, format, state)?, ahead))
            })
            .collect()
    }
}

/// The items of runs each sorted by `key`, in `key` order (of equal keys, the earlier run's first): each item moves
/// once, where sorting debtors (a few hundred bytes each) where they lie would move each many times.
fn merge_sorted<T, K: Ord>(runs: Vec<Vec<T>>, key: impl Fn(&T) -> K) -> impl Iterator<Item = T> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut runs: Vec<std::iter::Peekable<std::vec::IntoIter<T>>> =
        runs.into_iter().map(|r| r.into_iter().peekable()).collect();
    // The heap holds each run's next key and the run's index.
    let mut heads: BinaryHeap<Reverse<(K, usize)>> = runs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, r)| r.peek().map(|t| Reverse((key(t), i))))
        .collect();
    std::iter::from_fn(move || {
        let Reverse((_, i)) = heads.pop()?;
        let item = runs[i].next()?;
        if let Some(t) = runs[i].peek() {
            heads.push(Reverse((key(t), i)));
        }
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::merge_sorted;

    #[test]
    fn sorted_runs_merge_into_one_order_each_item_once() {
        let runs = vec![
            vec![(1, 'a'), (4, 'a'), (9, 'a')],
            vec![],
            vec![(2, 'c'), (3, 'c'), (4, 'c'), (10, 'c')],
            vec![(0, 'd')],
        ];
        let merged: Vec<_> = merge_sorted(runs, |t| t.0).collect();
        assert_eq!(
            merged,
            vec![
                (0, 'd'),
                (1, 'a'),
                (2, 'c'),
                (3, 'c'),
                (4, 'a'),
                (4, 'c'),
                (9, 'a'),
                (10, 'c')
            ]
        );
        assert_eq!(merge_sorted(Vec::<Vec<u8>>::new(), |t| *t).count(), 0);
    }
}
