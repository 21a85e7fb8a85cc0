//! Reading the ledger back: a debtor's recent decisions and a partition's day, from the ledger's chunks
//! (`ledger_log`) and the rows versions before them wrote (`ledger`), each entry once.

use futures::stream::{self};
use futures::{StreamExt, TryStreamExt};
use mora_domain::action::{Action, AuditRecord};
use mora_domain::time::Ts;
use scylla::value::CqlTimestamp;

use super::batches::ACTION;
use super::ledger::{self, StoredEntry};
use super::packed;
use super::{Store, shard_of};
use crate::error::StateError;

/// How far back a debtor's recent decisions are looked for in the ledger, and how many days one query asks.
const LOOKBACK_DAYS: i64 = 91;
const DAYS_PER_QUERY: i64 = 7;

/// A ledger entry read back.
#[derive(Clone, Debug, PartialEq)]
pub enum LedgerRecord {
    /// A contact action, as its channel topic carried it.
    Action(Action),
    /// A decision, as the audit topic carried it.
    Decision(AuditRecord),
}

/// What one read of a shard's days returned, owned: rows of the `ledger` table (debtor, at, key, kind, record) and
/// the chunks of `ledger_log` (day, bytes).
#[derive(Default)]
struct Read {
    rows: Vec<(String, i64, i64, String, Vec<u8>)>,
    chunks: Vec<(i32, Vec<u8>)>,
}

impl Read {
    /// Every entry read (of `only`, if given), in history order, each once.
    fn entries(
        &self,
        partition: i32,
        shard: i16,
        only: Option<&str>,
    ) -> Result<Vec<StoredEntry<'_>>, StateError> {
        let mut out: Vec<StoredEntry<'_>> = self
            .rows
            .iter()
            .map(|(debtor_id, at, entry, kind, record)| StoredEntry {
                debtor_id,
                at: *at,
                entry: *entry,
                kind,
                record,
            })
            .collect();
        for (day, bytes) in &self.chunks {
            let entries = ledger::decode(bytes).map_err(|source| StateError::LedgerChunk {
                partition,
                shard,
                day: *day,
                source,
            })?;
            out.extend(
                entries
                    .into_iter()
                    .filter(|e| only.is_none_or(|id| id == e.debtor_id)),
            );
        }
        Ok(ledger::history(out))
    }
}

fn decoded<T>(
    e: &StoredEntry<'_>,
    decode: impl Fn(&[u8]) -> Result<T, mora_schemas::DecodeError>,
) -> Result<T, StateError> {
    decode(e.record).map_err(|err| StateError::Ledger {
        debtor: e.debtor_id.to_string(),
        reason: err.to_string(),
    })
}

impl Store {
    /// A debtor's latest `n` stored decisions (audit records), newest first, from the ledger's days up to `now`'s
    /// and at most [`LOOKBACK_DAYS`] back: one read per week asked, newest week first, until `n` are found.
    pub async fn recent_decisions(
        &self,
        partition: i32,
        debtor: &str,
        now: Ts,
        n: usize,
    ) -> Result<Vec<AuditRecord>, StateError> {
        let shard = shard_of(debtor, self.shards);
        let today = now.0.div_euclid(mora_domain::time::DAY_MS);
        let mut out: Vec<AuditRecord> = Vec::new();
        let mut newest = today;
        while out.len() < n && newest > today - LOOKBACK_DAYS {
            let days: Vec<i32> = (0..DAYS_PER_QUERY)
                .map(|k| i32::try_from(newest - k).unwrap_or(i32::MIN))
                .collect();
            newest -= DAYS_PER_QUERY;
            let read = self.read(partition, shard, days, Some(debtor)).await?;
            let mut week = Vec::new();
            for e in read.entries(partition, shard, Some(debtor))? {
                if e.kind != ACTION {
                    week.push(decoded(&e, mora_schemas::decode_audit)?);
                }
            }
            // Newest first; decisions of one instant in the order the engine took them is not kept by the ledger,
            // so ties are ordered by kind and rule for a stable answer.
            week.sort_by(|a, b| {
                b.at.cmp(&a.at)
                    .then_with(|| a.kind.as_str().cmp(b.kind.as_str()))
                    .then_with(|| a.rule.cmp(&b.rule))
            });
            out.extend(week);
        }
        out.truncate(n);
        Ok(out)
    }

    /// Every ledger entry of `partition` on `day` (days since the epoch, UTC), shard by shard, each shard's debtors
    /// in id order and a debtor's entries newest first.
    pub async fn ledger_day(
        &self,
        partition: i32,
        day: i64,
    ) -> Result<Vec<LedgerRecord>, StateError> {
        let day = i32::try_from(day).unwrap_or(i32::MIN);
        let shards: Vec<Vec<LedgerRecord>> = stream::iter(0..self.shards as i16)
            .map(|shard| self.ledger_shard(partition, shard, day))
            .buffered(self.concurrency.min(self.shards as usize).max(1))
            .try_collect()
            .await?;
        Ok(shards.into_iter().flatten().collect())
    }

    async fn ledger_shard(
        &self,
        partition: i32,
        shard: i16,
        day: i32,
    ) -> Result<Vec<LedgerRecord>, StateError> {
        let read = self.read(partition, shard, vec![day], None).await?;
        read.entries(partition, shard, None)?
            .iter()
            .map(|e| {
                Ok(if e.kind == ACTION {
                    LedgerRecord::Action(decoded(e, mora_schemas::decode_action)?)
                } else {
                    LedgerRecord::Decision(decoded(e, mora_schemas::decode_audit)?)
                })
            })
            .collect()
    }

    /// The ledger's rows and chunks of one shard on `days` (the rows of `only`, if given; chunks hold every debtor
    /// of the shard).
    async fn read(
        &self,
        partition: i32,
        shard: i16,
        days: Vec<i32>,
        only: Option<&str>,
    ) -> Result<Read, StateError> {
        type Row = (String, CqlTimestamp, i64, Option<String>, Option<Vec<u8>>);
        let mut read = Read::default();
        let rows = match only {
            Some(id) => {
                self.session
                    .execute_iter(self.get_ledger.clone(), (partition, shard, &days, id))
                    .await
            }
            None => {
                self.session
                    .execute_iter(self.scan_ledger.clone(), (partition, shard, &days))
                    .await
            }
        };
        let mut rows = rows
            .map_err(StateError::db)?
            .rows_stream::<Row>()
            .map_err(StateError::db)?;
        while let Some(row) = rows.next().await {
            let (debtor, at, entry, kind, record) = row.map_err(StateError::db)?;
            read.rows.push((
                debtor,
                at.0,
                entry,
                kind.unwrap_or_default(),
                record.unwrap_or_default(),
            ));
        }
        let mut chunks = self
            .session
            .execute_iter(self.get_ledger_log.clone(), (partition, shard, &days))
            .await
            .map_err(StateError::db)?
            .rows_stream::<(i32, Option<Vec<u8>>)>()
            .map_err(StateError::db)?;
        while let Some(chunk) = chunks.next().await {
            let (day, bytes) = chunk.map_err(StateError::db)?;
            let plain = packed::unpack_owned(bytes.unwrap_or_default()).map_err(|e| {
                StateError::LedgerChunk {
                    partition,
                    shard,
                    day,
                    source: ledger::LedgerChunkError(e),
                }
            })?;
            read.chunks.push((day, plain));
        }
        Ok(read)
    }
}
