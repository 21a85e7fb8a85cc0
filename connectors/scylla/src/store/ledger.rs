//! The ledger's chunks: each flush appends, per CQL partition (shard and day) its entries fall into, chunks holding
//! those entries, like the debtor log holds states. The database's cost follows rows far more than bytes, so a
//! chunk of a few hundred entries costs about what one entry's row used to.
//!
//! A chunk's bytes: a layout byte ([`LEDGER_LAYOUT`]), the entry count (u32, little-endian), then per entry the
//! debtor id's length (u16) and bytes (UTF-8), `at` (i64, milliseconds), the entry's key (i64: a hash of kind and
//! record), the kind's length (u8) and bytes, and the record's length (u32) and bytes (the Avro record, unframed);
//! stored packed when that is smaller (`packed.rs`).
//!
//! A flush written again (a retry, or a replay by the partition's next owner after a crash) appends the same entries
//! under a later write time, so readers keep one entry per debtor, `at` and key.

use super::batches::{LedgerEntry, group};
use super::chunk::ChunkReader;
use super::packed::pack;

/// The chunk layout this version writes and reads.
pub(super) const LEDGER_LAYOUT: u8 = 1;

/// Bytes a chunk spends per entry besides its id, kind and record.
const ENTRY_OVERHEAD: usize = 2 + 8 + 8 + 1 + 4;

/// A ledger chunk that cannot be read: the stored bytes are damaged or from a newer version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a ledger chunk cannot be read: {0}")]
pub struct LedgerChunkError(pub String);

/// One chunk of a flush: where it goes and its bytes.
#[derive(Debug)]
pub(super) struct LedgerChunk {
    pub shard: i16,
    pub day: i32,
    /// Chunk number within the flush's shard and day.
    pub n: i32,
    /// As stored: packed when smaller (`packed.rs`).
    pub bytes: Vec<u8>,
}

/// An entry read back from a chunk (or a row of the `ledger` table of earlier versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StoredEntry<'a> {
    pub debtor_id: &'a str,
    pub at: i64,
    pub entry: i64,
    pub kind: &'a str,
    pub record: &'a [u8],
}

impl StoredEntry<'_> {
    /// The order a debtor's history is read in (debtors by id, each newest first) and what makes two entries one.
    pub(super) fn key(&self) -> (&str, std::cmp::Reverse<i64>, i64) {
        (self.debtor_id, std::cmp::Reverse(self.at), self.entry)
    }
}

fn size(e: &LedgerEntry<'_>) -> usize {
    e.debtor_id.len() + e.kind.len() + e.record.len() + ENTRY_OVERHEAD
}

/// The chunks of one flush for one Kafka partition: entries grouped by shard and day, in the order given, cut at
/// `chunk_bytes` (an entry larger than that goes alone).
pub(super) fn ledger_chunks(entries: Vec<LedgerEntry<'_>>, chunk_bytes: usize) -> Vec<LedgerChunk> {
    let mut out: Vec<LedgerChunk> = Vec::new();
    for group in group(entries, |e| (e.shard, e.day), size, chunk_bytes) {
        let (shard, day) = (group[0].shard, group[0].day);
        let n = match out.last() {
            Some(c) if (c.shard, c.day) == (shard, day) => c.n + 1,
            _ => 0,
        };
        out.push(LedgerChunk {
            shard,
            day,
            n,
            bytes: pack(encode(&group)),
        });
    }
    out
}

/// One chunk's bytes.
pub(super) fn encode(entries: &[LedgerEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.iter().map(size).sum::<usize>());
    out.push(LEDGER_LAYOUT);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&(e.debtor_id.len() as u16).to_le_bytes());
        out.extend_from_slice(e.debtor_id.as_bytes());
        out.extend_from_slice(&e.at.to_le_bytes());
        out.extend_from_slice(&e.entry.to_le_bytes());
        out.push(e.kind.len() as u8);
        out.extend_from_slice(e.kind.as_bytes());
        out.extend_from_slice(&(e.record.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.record);
    }
    out
}

/// The entries of a chunk, in the order written.
pub(super) fn decode(chunk: &[u8]) -> Result<Vec<StoredEntry<'_>>, LedgerChunkError> {
    let read = || {
        // Each entry takes at least its fixed fields.
        let (mut r, count) = ChunkReader::open(chunk, LEDGER_LAYOUT, ENTRY_OVERHEAD)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let n = r.u16("an id's length")? as usize;
            let debtor_id = r.text(n, "an id")?;
            let at = r.i64("a time")?;
            let entry = r.i64("an entry key")?;
            let n = r.u8("a kind's length")? as usize;
            let kind = r.text(n, "a kind")?;
            let n = r.u32("a record's length")? as usize;
            let record = r.take(n, "a record")?;
            out.push(StoredEntry {
                debtor_id,
                at,
                entry,
                kind,
                record,
            });
        }
        r.finish()?;
        Ok(out)
    };
    read().map_err(LedgerChunkError)
}

/// `entries` in history order (debtors by id, each newest first, then by key), each entry once however often it
/// was written.
pub(super) fn history(mut entries: Vec<StoredEntry<'_>>) -> Vec<StoredEntry<'_>> {
    entries.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    entries.dedup_by(|a, b| a.key() == b.key());
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use mora_domain::time::DAY_MS;

    fn entry(id: &str, at: i64, kind: &'static str, record: &[u8]) -> LedgerEntry<'static> {
        let id: &'static str = Box::leak(id.to_string().into_boxed_str());
        LedgerEntry::new(8, id, at, kind, record.to_vec())
    }

    fn stored<'a>(e: &'a LedgerEntry<'a>) -> StoredEntry<'a> {
        StoredEntry {
            debtor_id: e.debtor_id,
            at: e.at,
            entry: e.entry,
            kind: e.kind,
            record: &e.record,
        }
    }

    #[test]
    fn a_chunk_reads_back_its_entries_in_order() {
        let written = [
            entry("D-1", 5, "issued", b"one"),
            entry("D-ñ", -7, "action", b""),
            entry("D-3", i64::MAX, "suppressed", &[7; 300]),
        ];
        let bytes = encode(&written);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, written.iter().map(stored).collect::<Vec<_>>());
    }

    #[test]
    fn damaged_or_foreign_chunks_are_refused_never_misread() {
        let bytes = encode(&[
            entry("D-1", 1, "issued", b"a"),
            entry("D-2", 2, "action", b"b"),
        ]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut newer = bytes.clone();
        newer[0] = LEDGER_LAYOUT + 1;
        assert_eq!(
            decode(&newer).unwrap_err().0,
            format!(
                "layout {}, this version reads {LEDGER_LAYOUT}",
                LEDGER_LAYOUT + 1
            )
        );
        let mut huge = bytes;
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn a_flush_is_a_chunk_per_shard_and_day_within_the_byte_bound() {
        let day = 20_000 * DAY_MS;
        // Two days (a flush that crosses midnight), 8 shards.
        let entries: Vec<_> = (0..2000)
            .map(|i| entry(&format!("D{i:05}"), day - 1 + (i % 2), "issued", &[7; 100]))
            .collect();
        let chunks = ledger_chunks(entries.clone(), 64 * 1024);
        assert_eq!(chunks.len(), 16, "one chunk for each shard and day");
        let mut all = 0;
        for c in &chunks {
            let plain = super::super::packed::unpack(&c.bytes).unwrap();
            let back = decode(&plain).unwrap();
            all += back.len();
            assert!(back.iter().all(|e| {
                super::super::shard_of(e.debtor_id, 8) == c.shard
                    && e.at.div_euclid(DAY_MS) == i64::from(c.day)
            }));
        }
        assert_eq!(all, 2000, "every entry once");
        let small = ledger_chunks(entries, 4096);
        assert!(small.iter().all(|c| c.bytes.len() <= 4096 + 5));
        assert!(
            chunks
                .iter()
                .all(|c| c.bytes[0] == super::super::packed::PACKED),
            "repetitive entries are stored packed"
        );
        assert!(
            small.iter().any(|c| c.n > 0),
            "a shard's day cut into numbered chunks"
        );
        let mut keys: Vec<_> = small.iter().map(|c| (c.shard, c.day, c.n)).collect();
        keys.dedup();
        assert_eq!(
            keys.len(),
            small.len(),
            "chunk numbers are unique within a shard's day"
        );
    }

    #[test]
    fn history_orders_debtors_newest_first_and_keeps_an_entry_written_twice_once() {
        let a_old = entry("A", 10, "issued", b"x");
        let a_new = entry("A", 20, "issued", b"y");
        let b = entry("B", 15, "action", b"z");
        // The same flush written again later: its entries a second time.
        let read = vec![
            stored(&b),
            stored(&a_old),
            stored(&a_new),
            stored(&a_old),
            stored(&b),
        ];
        let h = history(read);
        assert_eq!(h, vec![stored(&a_new), stored(&a_old), stored(&b)]);
    }
}
