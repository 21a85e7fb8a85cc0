//! The debtor log: each flush appends, per CQL partition (shard) it touches, chunks holding the states it wrote
//! there, and a restore keeps each debtor's latest. The database's cost follows requests and rows far more than
//! bytes, so a chunk of a few hundred states costs about what one debtor's row used to.
//!
//! A chunk's bytes: a layout byte ([`CHUNK_LAYOUT`]), the entry count (u32, little-endian), then per entry the
//! debtor id's length (u16) and bytes (UTF-8), and the state's length (u32) and bytes (in the row's `format`);
//! stored packed when that is smaller (`packed.rs`).

use hashbrown::HashMap;

use mora_runtime::DebtorRow;

use super::chunk::ChunkReader;
use super::packed::pack;
use super::shard_of;

/// The chunk layout this version writes and reads.
pub(super) const CHUNK_LAYOUT: u8 = 1;

/// Bytes a chunk spends per entry besides its id and state.
const ENTRY_OVERHEAD: usize = 6;

/// A chunk that cannot be read: the stored bytes are damaged or from a newer version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a debtor-log chunk cannot be read: {0}")]
pub struct ChunkError(pub String);

/// The chunks of one flush for one partition: rows grouped by shard, in the order given, cut at `chunk_bytes`
/// (a state larger than that goes alone). Each item: shard, chunk number within the shard, bytes as stored (packed
/// when smaller), entries.
pub(super) fn chunks(
    rows: &[DebtorRow],
    shards: u16,
    chunk_bytes: usize,
) -> Vec<(i16, i32, Vec<u8>, usize)> {
    let mut by_shard: std::collections::BTreeMap<i16, Vec<&DebtorRow>> = Default::default();
    for r in rows {
        by_shard
            .entry(shard_of(&r.debtor_id, shards))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for (shard, rows) in by_shard {
        let mut chunk: Vec<&DebtorRow> = Vec::new();
        let mut bytes = 0;
        let mut n = 0;
        for r in rows {
            let size = r.debtor_id.len() + r.state.len() + ENTRY_OVERHEAD;
            if !chunk.is_empty() && bytes + size > chunk_bytes {
                out.push((shard, n, pack(encode(&chunk)), chunk.len()));
                n += 1;
                chunk.clear();
                bytes = 0;
            }
            bytes += size;
            chunk.push(r);
        }
        if !chunk.is_empty() {
            out.push((shard, n, pack(encode(&chunk)), chunk.len()));
        }
    }
    out
}

/// One chunk's bytes.
pub(super) fn encode(rows: &[&DebtorRow]) -> Vec<u8> {
    let size: usize = rows
        .iter()
        .map(|r| r.debtor_id.len() + r.state.len() + ENTRY_OVERHEAD)
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(CHUNK_LAYOUT);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        let id = r.debtor_id.as_bytes();
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&(r.state.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.state);
    }
    out
}

/// The entries of a chunk, in the order written: (debtor id, state bytes).
pub(super) fn entries(chunk: &[u8]) -> Result<Vec<(&str, &[u8])>, ChunkError> {
    let read = || {
        // Each entry takes at least its two lengths.
        let (mut r, count) = ChunkReader::open(chunk, CHUNK_LAYOUT, ENTRY_OVERHEAD)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let n = r.u16("an id's length")? as usize;
            let id = r.text(n, "an id")?;
            let n = r.u32("a state's length")? as usize;
            out.push((id, r.take(n, "a state")?));
        }
        r.finish()?;
        Ok(out)
    };
    read().map_err(ChunkError)
}

/// Each debtor's latest entry among those offered, by write time; of equal times the one offered last. (Keyed with
/// hashbrown's default hasher: the ids are the store's own, and a restore hashes every entry of a shard's log.)
#[derive(Debug)]
pub(super) struct Latest<'a, A> {
    by_id: HashMap<&'a str, (i64, i16, &'a [u8], A)>,
}

impl<'a, A> Default for Latest<'a, A> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
        }
    }
}

impl<'a, A> Latest<'a, A> {
    /// Offers `id`'s state written at `written` in `format`, with what it reflects (`applied`).
    pub(super) fn offer(
        &mut self,
        id: &'a str,
        written: i64,
        format: i16,
        state: &'a [u8],
        applied: A,
    ) {
        match self.by_id.get_mut(id) {
            Some(e) if e.0 > written => {}
            Some(e) => *e = (written, format, state, applied),
            None => {
                self.by_id.insert(id, (written, format, state, applied));
            }
        }
    }

    /// The latest entries: (id, format, state, applied), in no particular order.
    pub(super) fn into_entries(self) -> impl Iterator<Item = (&'a str, i16, &'a [u8], A)> {
        self.by_id
            .into_iter()
            .map(|(id, (_, format, state, applied))| (id, format, state, applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &[u8]) -> DebtorRow {
        DebtorRow {
            debtor_id: id.into(),
            state: state.to_vec(),
        }
    }

    #[test]
    fn a_chunk_reads_back_its_entries_in_order() {
        let rows = [row("D-1", b"one"), row("D-ñ", b""), row("D-3", &[7; 300])];
        let refs: Vec<&DebtorRow> = rows.iter().collect();
        let bytes = encode(&refs);
        let back = entries(&bytes).unwrap();
        assert_eq!(
            back,
            vec![
                ("D-1", &b"one"[..]),
                ("D-ñ", &b""[..]),
                ("D-3", &[7u8; 300][..])
            ]
        );
    }

    #[test]
    fn damaged_or_foreign_chunks_are_refused_never_misread() {
        let rows = [row("D-1", b"state"), row("D-2", b"other")];
        let refs: Vec<&DebtorRow> = rows.iter().collect();
        let bytes = encode(&refs);
        for cut in 0..bytes.len() {
            assert!(entries(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(entries(&longer).is_err());
        let mut newer = bytes.clone();
        newer[0] = CHUNK_LAYOUT + 1;
        assert_eq!(
            entries(&newer).unwrap_err().0,
            format!(
                "layout {}, this version reads {CHUNK_LAYOUT}",
                CHUNK_LAYOUT + 1
            )
        );
        let mut huge = bytes;
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(entries(&huge).is_err());
    }

    #[test]
    fn rows_chunk_by_shard_within_the_byte_bound() {
        let rows: Vec<DebtorRow> = (0..1000)
            .map(|i| row(&format!("D{i:06}"), &[1; 200]))
            .collect();
        let out = chunks(&rows, 8, 16 * 1024);
        assert_eq!(
            out.iter().map(|c| c.3).sum::<usize>(),
            1000,
            "every row once"
        );
        for (shard, n, bytes, count) in &out {
            let plain = super::super::packed::unpack(bytes).unwrap();
            let e = entries(&plain).unwrap();
            assert_eq!(e.len(), *count);
            assert!(e.iter().all(|(id, _)| shard_of(id, 8) == *shard));
            assert!(
                bytes.len() <= 16 * 1024 + 5,
                "chunk {shard}/{n}: {}",
                bytes.len()
            );
        }
        // ~125 rows of ~213 bytes per shard: two chunks each, numbered from 0.
        assert!(out.len() <= 16, "{} chunks", out.len());
        assert!(out.iter().any(|c| c.1 == 1));
        let big = chunks(&[row("A", &[0; 100]), row("A", &[0; 100_000])], 1, 4096);
        assert_eq!(big.len(), 2, "a state past the bound goes alone");
    }

    #[test]
    fn the_latest_write_wins_and_of_equal_times_the_last_offered() {
        let applied = [1, 2, 3, 4];
        let mut l = Latest::default();
        l.offer("A", 10, 3, b"a10", applied[0]);
        l.offer("B", 20, 1, b"b20", applied[1]);
        l.offer("A", 5, 3, b"a5", applied[2]);
        l.offer("B", 20, 3, b"b20 again", applied[3]);
        let mut got: Vec<_> = l.into_entries().collect();
        got.sort();
        assert_eq!(
            got,
            vec![("A", 3, &b"a10"[..], 1), ("B", 3, &b"b20 again"[..], 4)]
        );
    }
}
