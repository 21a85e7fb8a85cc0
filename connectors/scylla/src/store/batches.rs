//! A flush's ledger entries and membership changes as the tables key them, and how they become requests: grouped
//! by the CQL partition they land in and cut by bytes (ledger entries into chunks, `ledger.rs`; membership changes
//! into UNLOGGED batches). Every request touches one partition, so the database applies it as one mutation; the
//! number of requests follows the partitions a flush touches, not its rows.

use std::collections::BTreeMap;

use mora_domain::action::{Action, AuditRecord};
use mora_domain::time::DAY_MS;
use mora_runtime::ViewChange;
use mora_schemas::{EncodeError, Wire, encode_action, encode_audit};

use super::shard_of;

/// One ledger entry: an action or an audit record, keyed by Kafka partition, shard and day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LedgerEntry<'a> {
    /// CQL shard of the debtor (the same as its state row's).
    pub shard: i16,
    /// Day of `at` (UTC), days since the epoch.
    pub day: i32,
    /// Debtor.
    pub debtor_id: &'a str,
    /// When the action was decided or the decision taken (milliseconds).
    pub at: i64,
    /// A hash of the kind and the record: the same decision replayed is the same entry.
    pub entry: i64,
    /// `action`, or the decision's kind.
    pub kind: &'static str,
    /// The Avro record (unframed): the channel topic's for an action, the audit topic's for a decision.
    pub record: Vec<u8>,
}

/// The `kind` of an action's ledger row.
pub(super) const ACTION: &str = "action";

impl<'a> LedgerEntry<'a> {
    pub(super) fn new(
        shards: u16,
        debtor_id: &'a str,
        at: i64,
        kind: &'static str,
        record: Vec<u8>,
    ) -> Self {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(kind.as_bytes());
        h.update(&[0]);
        h.update(&record);
        Self {
            shard: shard_of(debtor_id, shards),
            day: i32::try_from(at.div_euclid(DAY_MS)).unwrap_or(i32::MAX),
            debtor_id,
            at,
            entry: h.digest() as i64,
            kind,
            record,
        }
    }

    /// An action's row.
    pub(super) fn action(shards: u16, a: &'a Action) -> Result<Self, EncodeError> {
        Ok(Self::new(
            shards,
            a.debtor_id.as_str(),
            a.created_at.0,
            ACTION,
            encode_action(a, Wire::Raw)?,
        ))
    }

    /// An audit record's row.
    pub(super) fn audit(shards: u16, r: &'a AuditRecord) -> Result<Self, EncodeError> {
        Ok(Self::new(
            shards,
            r.debtor_id.as_str(),
            r.at.0,
            r.kind.as_str(),
            encode_audit(r, Wire::Raw)?,
        ))
    }
}

/// A membership change as the `view_members` table keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Membership<'a> {
    /// `segment:<name>` or `queue:<name>`, borrowed in two parts.
    pub view: (&'static str, &'a str),
    /// Debtor.
    pub debtor_id: &'a str,
    /// Joined (true) or left.
    pub join: bool,
}

impl<'a> Membership<'a> {
    pub(super) fn of(v: &'a ViewChange) -> Self {
        let (prefix, name, id, join) = match v {
            ViewChange::JoinSegment(n, id) => ("segment:", n, id, true),
            ViewChange::LeaveSegment(n, id) => ("segment:", n, id, false),
            ViewChange::JoinQueue(n, id) => ("queue:", n, id, true),
            ViewChange::LeaveQueue(n, id) => ("queue:", n, id, false),
        };
        Self {
            view: (prefix, name.as_str()),
            debtor_id: id.as_str(),
            join,
        }
    }

    /// The view's key: `segment:<name>` or `queue:<name>`.
    pub(super) fn view(&self) -> String {
        format!("{}{}", self.view.0, self.view.1)
    }

    fn bytes(&self) -> usize {
        self.view.0.len() + self.view.1.len() + self.debtor_id.len() + 24
    }
}

/// Groups `items` by `key` (their CQL partition) and cuts each group, in the order given, into batches of at most
/// `batch_bytes` as `size` counts them; an item larger than that goes alone.
pub(super) fn group<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    size: impl Fn(&T) -> usize,
    batch_bytes: usize,
) -> Vec<Vec<T>> {
    let mut by_key: BTreeMap<K, Vec<T>> = BTreeMap::new();
    for item in items {
        by_key.entry(key(&item)).or_default().push(item);
    }
    let mut out = Vec::new();
    for (_, items) in by_key {
        let (mut batch, mut bytes) = (Vec::new(), 0);
        for item in items {
            let n = size(&item);
            if !batch.is_empty() && bytes + n > batch_bytes {
                out.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += n;
            batch.push(item);
        }
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

/// Membership changes in batches, one CQL partition (view) each.
pub(super) fn view_batches(views: &[ViewChange], batch_bytes: usize) -> Vec<Vec<Membership<'_>>> {
    group(
        views.iter().map(Membership::of),
        |m| m.view,
        Membership::bytes,
        batch_bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, at: i64, record: &[u8]) -> LedgerEntry<'static> {
        let id: &'static str = Box::leak(id.to_string().into_boxed_str());
        LedgerEntry::new(8, id, at, "issued", record.to_vec())
    }

    #[test]
    fn a_replayed_entry_keeps_its_key_and_a_different_record_does_not() {
        let a = entry("D1", 5, b"record");
        assert_eq!(a, entry("D1", 5, b"record"));
        assert_ne!(a.entry, entry("D1", 5, b"other").entry);
        let action = LedgerEntry::new(8, "D1", 5, ACTION, b"record".to_vec());
        assert_ne!(a.entry, action.entry, "the kind is part of the key");
        assert_eq!(a.day, 0);
        assert_eq!(
            entry("D1", -1, b"x").day,
            -1,
            "days before the epoch round down"
        );
    }

    #[test]
    fn membership_changes_batch_by_view() {
        let views: Vec<ViewChange> = (0..300)
            .flat_map(|i| {
                let id = format!("D{i}");
                [
                    ViewChange::LeaveSegment("early".into(), id.clone()),
                    ViewChange::JoinSegment("late".into(), id.clone()),
                    ViewChange::JoinQueue("dialer".into(), id),
                ]
            })
            .collect();
        let batches = view_batches(&views, 64 * 1024);
        assert_eq!(
            batches.len(),
            3,
            "segment:early, segment:late, queue:dialer"
        );
        let keys: Vec<String> = batches.iter().map(|b| b[0].view()).collect();
        assert_eq!(keys, ["queue:dialer", "segment:early", "segment:late"]);
        assert!(batches[1].iter().all(|m| !m.join));
        assert!(batches[2].iter().all(|m| m.join));
    }
}
