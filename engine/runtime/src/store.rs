//! The debtors one partition owns: a slab of states plus an index by id, so timers and queues refer to debtors by a
//! four-byte slot instead of a copy of the id.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use mora_domain::debtor::Debtor;

/// Debtor states by slot, findable by id.
#[derive(Debug, Default)]
pub struct DebtorStore {
    slots: Vec<Debtor>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl DebtorStore {
    /// The slot of debtor `id`.
    pub fn find(&self, id: &str) -> Option<u32> {
        let h = self.hasher.hash_one(id);
        self.index
            .find(h, |&s| self.slots[s as usize].id == id)
            .copied()
    }

    /// Adds a debtor not yet present; returns its slot.
    pub fn insert(&mut self, d: Debtor) -> u32 {
        let slot = self.slots.len() as u32;
        let h = self.hasher.hash_one(d.id.as_str());
        self.slots.push(d);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(h, slot, |&s| hasher.hash_one(slots[s as usize].id.as_str()));
        slot
    }

    /// The debtor in `slot`.
    pub fn get(&self, slot: u32) -> &Debtor {
        &self.slots[slot as usize]
    }

    /// The debtor in `slot`, mutably.
    pub fn get_mut(&mut self, slot: u32) -> &mut Debtor {
        &mut self.slots[slot as usize]
    }

    /// Every debtor, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = &Debtor> {
        self.slots.iter()
    }

    /// Every debtor, mutably (for a reload's re-segmentation).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Debtor> {
        self.slots.iter_mut()
    }

    /// Number of debtors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
