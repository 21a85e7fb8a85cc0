//! Reading back: a partition's checkpoint and debtors for a restore, and single debtors, KPI days, decisions and
//! summaries for the API's answers about partitions another instance owns.

use std::sync::Arc;

use futures::stream::{self};
use futures::{StreamExt, TryStreamExt};
use mora_domain::debtor::Debtor;
use mora_domain::time::Ts;
use mora_runtime::durable::codec;
use mora_runtime::{Checkpoint, LabelledDay, Offsets, PartitionSummary, Restored};
use scylla::value::CqlTimestamp;
use tracing::info;

use super::{Store, month, shard_of};
use crate::error::StateError;

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
    /// of the store's runtime that decodes its rows as they arrive: the caller (the engine thread, blocked on the
    /// restore) only sorts. Debtors come back sorted by id, so a restored worker is the same whatever order the
    /// shards answered in.
    pub async fn restore(self: &Arc<Self>, partition: i32) -> Result<Restored, StateError> {
        let started = std::time::Instant::now();
        let checkpoint = self.checkpoint(partition).await?;
        let parts: Vec<Vec<(Debtor, Option<Offsets>)>> = stream::iter(0..self.shards as i16)
            .map(|shard| {
                let store = Arc::clone(self);
                async move {
                    tokio::spawn(async move { store.scan(partition, shard).await })
                        .await
                        .map_err(StateError::db)?
                }
            })
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
