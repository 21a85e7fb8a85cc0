//! The debtors one partition owns: a slab of states plus an index by id, so timers and queues refer to debtors by a
//! four-byte slot instead of a copy of the id.
//!
//! The slab grows in chunks of [`CHUNK`] states that never move: a portfolio of millions grows without copying
//! itself (a doubling vector copies gigabytes at each step and holds the old and the new copy at once, which set the
//! peak resident memory at 10 000 000 debtors), and the spare room is at most one chunk instead of up to half.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use mora_domain::debtor::Debtor;

/// Debtor states per chunk of the slab (a power of two: a slot's chunk and place are a shift and a mask). 4 096
/// states are about a megabyte, so a chunk's allocation is whole pages and only the pages touched are resident.
const CHUNK: usize = 4096;

/// Debtor states by slot, findable by id.
#[derive(Debug, Default)]
pub struct DebtorStore {
    /// Full chunks and the last one, each allocated with room for exactly [`CHUNK`] states.
    chunks: Vec<Vec<Debtor>>,
    len: usize,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl DebtorStore {
    /// The slot of debtor `id`.
    pub fn find(&self, id: &str) -> Option<u32> {
        let h = self.hasher.hash_one(id);
        self.index.find(h, |&s| self.get(s).id == id).copied()
    }

    /// Adds a debtor not yet present; returns its slot.
    pub fn insert(&mut self, d: Debtor) -> u32 {
        let slot = u32::try_from(self.len).expect("a partition holds fewer than 2^32 debtors");
        let h = self.hasher.hash_one(d.id.as_str());
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(d),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(d);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(h, slot, |&s| {
            hasher.hash_one(chunks[s as usize / CHUNK][s as usize % CHUNK].id.as_str())
        });
        slot
    }

    /// The debtor in `slot`.
    pub fn get(&self, slot: u32) -> &Debtor {
        &self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    /// Loads the states of `slots` side by side (their records, then their cold parts): memory reads of different
    /// debtors are independent, so the processor overlaps them, and deciding on these debtors next finds them in
    /// the cache instead of waiting for each in turn. Changes nothing.
    pub fn touch(&self, slots: &[u32]) {
        let mut folded = 0;
        for &s in slots {
            folded ^= self.get(s).touch();
        }
        for &s in slots {
            folded ^= self.get(s).touch_cold();
        }
        std::hint::black_box(folded);
    }

    /// The debtor in `slot`, mutably.
    pub fn get_mut(&mut self, slot: u32) -> &mut Debtor {
        &mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    /// Every debtor, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = &Debtor> {
        self.chunks.iter().flatten()
    }

    /// Every debtor, mutably (for a reload's re-segmentation).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Debtor> {
        self.chunks.iter_mut().flatten()
    }

    /// The slab's chunks, mutably, each with the slot of its first debtor: disjoint parts that threads can work on
    /// side by side (a reload's re-derivation).
    pub fn chunks_mut(&mut self) -> impl Iterator<Item = (u32, &mut [Debtor])> {
        self.chunks
            .iter_mut()
            .enumerate()
            .map(|(i, c)| ((i * CHUNK) as u32, c.as_mut_slice()))
    }

    /// Number of debtors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_past_several_chunks_are_found_in_order_and_never_move() {
        let mut store = DebtorStore::default();
        let n = 2 * CHUNK + 5;
        let first = store.insert(Debtor::new("D0".into())) as usize;
        let first_at: *const Debtor = store.get(first as u32);
        for i in 1..n {
            assert_eq!(
                store.insert(Debtor::new(format!("D{i}").into())) as usize,
                i
            );
        }
        assert_eq!(store.len(), n);
        assert!(
            std::ptr::eq(first_at, store.get(0)),
            "a full chunk never moves"
        );
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK, n - 1] {
            let slot = store.find(&format!("D{i}")).expect("inserted");
            assert_eq!(slot as usize, i);
            assert_eq!(store.get(slot).id, format!("D{i}"));
        }
        assert_eq!(store.find("D-unknown"), None);
        let ids: Vec<String> = store.iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids.len(), n);
        assert!(ids.iter().enumerate().all(|(i, id)| *id == format!("D{i}")));
        store.get_mut(CHUNK as u32).next_wake = mora_domain::time::Ts(7);
        assert_eq!(store.iter_mut().filter(|d| d.next_wake.0 == 7).count(), 1);
    }
}
