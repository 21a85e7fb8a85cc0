//! What a durable store needs from a worker: which debtors changed since the last flush (one write per changed
//! debtor however many events touched it), what each one's classification was when last written (so views keyed
//! by segment or queue can drop stale entries), and, after a restore, which records a debtor's stored state already
//! reflects.

use std::collections::HashMap;

use mora_domain::ids::DebtorId;
use mora_schemas::Family;

/// A debtor's classification as last persisted: the keys of the views it appears in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewKeys {
    /// Segment index.
    pub segment: u16,
    /// Work-queue membership bits.
    pub queues: u32,
}

/// Changed debtors, by slot, in the order they first changed since the last flush.
#[derive(Debug, Default)]
pub(crate) struct ChangeSet {
    order: Vec<u32>,
    /// Per slot: view keys as last persisted, packed ([`ViewKeys::pack`]; 0: never persisted), and the slot's
    /// changed mark ([`MARKED`]): 8 bytes a debtor where an `Option<ViewKeys>` and a flag took 13.
    persisted: Vec<u64>,
}

/// The bit of a slot's packed word saying it changed since the last flush.
const MARKED: u64 = 1 << 63;

/// The bits of a slot's packed word holding its persisted view keys.
const KEYS: u64 = !MARKED;

impl ViewKeys {
    /// A debtor's keys now.
    pub(crate) fn of(d: &mora_domain::debtor::Debtor) -> Self {
        Self {
            segment: d.derived.segment,
            queues: d.derived.queues,
        }
    }

    /// The keys in the low 48 bits and a presence bit above them.
    fn pack(self) -> u64 {
        1 << 48 | u64::from(self.segment) << 32 | u64::from(self.queues)
    }

    fn unpack(v: u64) -> Option<ViewKeys> {
        (v >> 48 == 1).then_some(ViewKeys {
            segment: (v >> 32) as u16,
            queues: v as u32,
        })
    }
}

impl ChangeSet {
    pub(crate) fn mark(&mut self, slot: u32) {
        let i = slot as usize;
        if self.persisted.len() <= i {
            self.persisted.resize(i + 1, 0);
        }
        if self.persisted[i] & MARKED == 0 {
            self.persisted[i] |= MARKED;
            self.order.push(slot);
        }
    }

    /// Records that `slot` was loaded from the store with these view keys (not a change).
    pub(crate) fn loaded(&mut self, slot: u32, keys: ViewKeys) {
        let i = slot as usize;
        if self.persisted.len() <= i {
            self.persisted.resize(i + 1, 0);
        }
        self.persisted[i] = self.persisted[i] & MARKED | keys.pack();
    }

    /// Takes the changed slots, clearing the marks.
    pub(crate) fn take(&mut self) -> Vec<u32> {
        let order = std::mem::take(&mut self.order);
        for s in &order {
            self.persisted[*s as usize] &= KEYS;
        }
        order
    }

    /// Swaps in the keys being written for `slot`; returns the keys previously persisted.
    pub(crate) fn persist(&mut self, slot: u32, keys: ViewKeys) -> Option<ViewKeys> {
        let word = &mut self.persisted[slot as usize];
        let previous = *word & KEYS;
        *word = *word & MARKED | keys.pack();
        ViewKeys::unpack(previous)
    }

    pub(crate) fn pending(&self) -> usize {
        self.order.len()
    }
}

/// Per debtor restored ahead of the partition's checkpoint: for each input family, the offset below which records
/// are already reflected in the stored state (a flush wrote the debtor after the checkpoint was last advanced).
pub type Fences = HashMap<DebtorId, Vec<(Family, i64)>>;

/// Whether the record at `offset` of `family` is already reflected in `debtor`'s restored state.
pub(crate) fn fenced(fences: &Fences, debtor: &str, family: Family, offset: i64) -> bool {
    fences
        .get(debtor)
        .and_then(|f| f.iter().find(|(fam, _)| *fam == family))
        .is_some_and(|(_, below)| offset < *below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debtor_changed_many_times_is_taken_once() {
        let mut c = ChangeSet::default();
        for s in [3, 1, 3, 3, 1, 0] {
            c.mark(s);
        }
        assert_eq!(c.take(), vec![3, 1, 0]);
        assert!(c.take().is_empty());
        c.mark(1);
        assert_eq!(c.take(), vec![1]);
    }

    #[test]
    fn a_mark_and_the_persisted_keys_share_a_word_without_disturbing_each_other() {
        let mut c = ChangeSet::default();
        let keys = ViewKeys {
            segment: u16::MAX,
            queues: u32::MAX,
        };
        c.mark(5);
        c.loaded(5, keys);
        c.mark(5);
        assert_eq!(c.pending(), 1, "still marked once after a load");
        assert_eq!(c.persist(5, keys), Some(keys));
        assert_eq!(c.take(), vec![5]);
        assert_eq!(
            c.persist(5, ViewKeys::default()),
            Some(keys),
            "taking keeps the keys"
        );
        c.mark(5);
        assert_eq!(c.take(), vec![5], "marked again after a take");
        assert_eq!(c.persist(4, keys), None, "never persisted");
    }

    #[test]
    fn persisted_keys_are_returned_when_replaced() {
        let mut c = ChangeSet::default();
        c.loaded(
            2,
            ViewKeys {
                segment: 4,
                queues: 1,
            },
        );
        c.mark(2);
        let _ = c.take();
        assert_eq!(
            c.persist(
                2,
                ViewKeys {
                    segment: 5,
                    queues: 0
                }
            ),
            Some(ViewKeys {
                segment: 4,
                queues: 1
            })
        );
        c.mark(7);
        let _ = c.take();
        assert_eq!(c.persist(7, ViewKeys::default()), None);
    }

    #[test]
    fn fences_cover_only_offsets_below_them_for_their_family() {
        let mut f = Fences::new();
        f.insert("D-1".into(), vec![(Family::Payment, 10)]);
        assert!(fenced(&f, "D-1", Family::Payment, 9));
        assert!(!fenced(&f, "D-1", Family::Payment, 10));
        assert!(!fenced(&f, "D-1", Family::Account, 3));
        assert!(!fenced(&f, "D-2", Family::Payment, 3));
    }
}
