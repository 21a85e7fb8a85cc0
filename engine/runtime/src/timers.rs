//! Per-partition timer index: each debtor's next due instant, ordered, so advancing time costs in proportion to the
//! timers that fall due and not to the size of the portfolio.
//!
//! Nearly every debtor has a timer (the day its oldest obligation moves to the next aging bucket, a promise
//! deadline, a strategy step), most of them weeks or months away. Holding all of them in one ordered tree cost ~30
//! bytes per debtor (a 16-byte key and its share of a node); here only the timers before a moving horizon sit in the
//! ordered tree, and later ones are a debtor slot (4 bytes) in a vector per hour, ordered only when their hour is
//! reached. A later entry is not removed when the debtor's wake moves: it is dropped when its hour is loaded if the
//! debtor's wake is no longer in that hour, and all such stale entries are swept once they outnumber the live ones.
//!
//! Timers fire in the order of `(instant, slot)` exactly as with a single ordered index: the hour's entries are
//! ordered when loaded, and nothing later than the horizon can be due before what is already loaded.

use std::collections::{BTreeMap, BTreeSet};

use mora_domain::time::Ts;

/// Width of a bucket of later timers: one hour, in milliseconds.
const BUCKET_MS: i64 = 3_600_000;

/// Stale entries tolerated in the later buckets before a sweep, beyond the number of live timers.
const SWEEP_SLACK: usize = 4_096;

/// Debtor slots ordered by their next wake instant.
///
/// The index does not own the wakes: calls that load or sweep later buckets take `wake_of`, the current wake of a
/// slot (`Ts::MAX` for none), which is the debtor's `next_wake`.
#[derive(Clone, Debug)]
pub struct TimerIndex {
    /// Every live timer before `horizon`, ordered.
    near: BTreeSet<(Ts, u32)>,
    /// Start of the first bucket not loaded into `near` (a multiple of [`BUCKET_MS`]).
    horizon: i64,
    /// Timers at or after `horizon` by bucket number: slots, some of them stale.
    far: BTreeMap<i64, Vec<u32>>,
    /// Entries in `far`, live and stale.
    far_entries: usize,
    /// Live timers (debtors with a wake).
    live: usize,
}

impl Default for TimerIndex {
    fn default() -> Self {
        Self {
            near: BTreeSet::new(),
            horizon: i64::MIN,
            far: BTreeMap::new(),
            far_entries: 0,
            live: 0,
        }
    }
}

fn bucket(t: Ts) -> i64 {
    t.0.div_euclid(BUCKET_MS)
}

impl TimerIndex {
    /// Moves `slot` from `old` to `new` (`Ts::MAX` means no timer); `wake_of` as for the type.
    pub fn reschedule(&mut self, slot: u32, old: Ts, new: Ts, wake_of: impl Fn(u32) -> Ts) {
        if old == new {
            return;
        }
        if old != Ts::MAX {
            self.live -= 1;
            if old.0 < self.horizon {
                self.near.remove(&(old, slot));
            }
            // A later entry stays where it is, stale, until its bucket is loaded or swept.
        }
        if new != Ts::MAX {
            self.live += 1;
            if new.0 < self.horizon {
                self.near.insert((new, slot));
            } else {
                self.far.entry(bucket(new)).or_default().push(slot);
                self.far_entries += 1;
                if self.far_entries > 2 * self.live + SWEEP_SLACK {
                    self.sweep(&wake_of);
                }
            }
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Ts, wake_of: impl Fn(u32) -> Ts) -> Option<(Ts, u32)> {
        loop {
            if let Some(&first) = self.near.first() {
                if first.0 > now {
                    return None;
                }
                self.near.pop_first();
                self.live -= 1;
                return Some(first);
            }
            let &b = self.far.keys().next()?;
            if b * BUCKET_MS > now.0 {
                return None;
            }
            self.load_next(&wake_of);
        }
    }

    /// Up to `n` slots of the timers due at or before `now` that [`TimerIndex::pop_due`] returns next, in its
    /// order (only those already in the ordered tree: a later bucket is not loaded).
    pub fn due_ahead(&self, now: Ts, n: usize) -> impl Iterator<Item = u32> + '_ {
        self.near
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .take(n)
            .map(|&(_, slot)| slot)
    }

    /// The earliest pending instant.
    pub fn next(&mut self, wake_of: impl Fn(u32) -> Ts) -> Option<Ts> {
        while self.near.is_empty() && !self.far.is_empty() {
            self.load_next(&wake_of);
        }
        self.near.first().map(|(t, _)| *t)
    }

    /// The instant of the `n`-th pending timer (0 = the earliest).
    pub fn nth(&mut self, n: usize, wake_of: impl Fn(u32) -> Ts) -> Option<Ts> {
        while self.near.len() <= n && !self.far.is_empty() {
            self.load_next(&wake_of);
        }
        self.near.iter().nth(n).map(|(t, _)| *t)
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Moves the first later bucket into the ordered tree (its live entries) and the horizon past it.
    fn load_next(&mut self, wake_of: &impl Fn(u32) -> Ts) {
        let Some((b, slots)) = self.far.pop_first() else {
            return;
        };
        self.far_entries -= slots.len();
        self.horizon = (b + 1).saturating_mul(BUCKET_MS);
        for slot in slots {
            let at = wake_of(slot);
            // Live when the debtor's wake is still in this bucket; a debtor rescheduled within it twice has two
            // entries, and the set keeps one.
            if at != Ts::MAX && bucket(at) == b {
                self.near.insert((at, slot));
            }
        }
    }

    /// Drops stale and repeated entries from the later buckets.
    fn sweep(&mut self, wake_of: &impl Fn(u32) -> Ts) {
        self.far.retain(|&b, slots| {
            slots.retain(|&s| {
                let at = wake_of(s);
                at != Ts::MAX && bucket(at) == b
            });
            slots.sort_unstable();
            slots.dedup();
            slots.shrink_to_fit();
            !slots.is_empty()
        });
        self.far_entries = self.far.values().map(Vec::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The index beside the plain ordered set it replaces, driven by the same moves.
    struct Both {
        index: TimerIndex,
        wakes: Vec<Ts>,
        plain: BTreeSet<(Ts, u32)>,
    }

    impl Both {
        fn new(slots: usize) -> Self {
            Self {
                index: TimerIndex::default(),
                wakes: vec![Ts::MAX; slots],
                plain: BTreeSet::new(),
            }
        }

        fn set(&mut self, slot: u32, new: Ts) {
            let old = self.wakes[slot as usize];
            self.wakes[slot as usize] = new;
            let wakes = &self.wakes;
            self.index.reschedule(slot, old, new, |s| wakes[s as usize]);
            if old != Ts::MAX {
                self.plain.remove(&(old, slot));
            }
            if new != Ts::MAX {
                self.plain.insert((new, slot));
            }
        }

        /// Pops everything due by `now` from both; they must agree one by one.
        fn advance(&mut self, now: Ts) {
            loop {
                // What the index says is due next is what fires next, in order (a prefix: later buckets are not
                // looked into).
                let ahead: Vec<u32> = self.index.due_ahead(now, 4).collect();
                let due = self.plain.iter().take_while(|(t, _)| *t <= now);
                let want: Vec<u32> = due.take(ahead.len()).map(|&(_, s)| s).collect();
                assert_eq!(ahead, want);
                let wakes = &self.wakes;
                let got = self.index.pop_due(now, |s| wakes[s as usize]);
                let want = self.plain.first().copied().filter(|(t, _)| *t <= now);
                assert_eq!(got, want);
                let Some((_, slot)) = got else { break };
                self.plain.pop_first();
                self.wakes[slot as usize] = Ts::MAX;
            }
            assert_eq!(self.index.len(), self.plain.len());
            let wakes = &self.wakes;
            assert_eq!(
                self.index.next(|s| wakes[s as usize]),
                self.plain.first().map(|(t, _)| *t)
            );
        }
    }

    #[test]
    fn fires_in_instant_then_slot_order_across_buckets() {
        let mut b = Both::new(8);
        b.set(3, Ts(10 * BUCKET_MS + 5));
        b.set(1, Ts(10 * BUCKET_MS + 5));
        b.set(2, Ts(2));
        b.set(0, Ts(3 * BUCKET_MS));
        b.advance(Ts(0));
        b.advance(Ts(20 * BUCKET_MS));
        assert!(b.index.is_empty());
    }

    #[test]
    fn a_moved_wake_fires_once_at_its_new_instant() {
        let mut b = Both::new(2);
        b.set(0, Ts(5 * BUCKET_MS + 1));
        b.set(0, Ts(5 * BUCKET_MS + 2)); // same bucket: two entries, one timer
        b.set(0, Ts(9 * BUCKET_MS)); // another bucket: the first entries go stale
        b.set(1, Ts(5 * BUCKET_MS + 3));
        b.advance(Ts(6 * BUCKET_MS));
        b.set(0, Ts(5 * BUCKET_MS + 9)); // before the horizon now: straight into the ordered part
        b.advance(Ts(10 * BUCKET_MS));
        assert!(b.index.is_empty());
    }

    #[test]
    fn stale_entries_are_swept() {
        let mut b = Both::new(1);
        for i in 0..(3 * SWEEP_SLACK as i64) {
            b.set(0, Ts(100 * BUCKET_MS + i * BUCKET_MS));
        }
        assert!(b.index.far_entries <= 2 + SWEEP_SLACK);
        b.advance(Ts(i64::MAX - 1));
        assert!(b.index.is_empty());
    }

    proptest! {
        /// Any sequence of moves and advances fires the same timers in the same order as one ordered set.
        #[test]
        fn same_order_as_one_ordered_set(
            moves in prop::collection::vec((0u32..16, prop::option::of(-3i64..40), any::<bool>()), 1..300),
        ) {
            let mut b = Both::new(16);
            let mut now = -4 * BUCKET_MS;
            for (slot, at, advance) in moves {
                // Wakes are never in the past of the clock (the engine schedules from now on).
                let new = at.map_or(Ts::MAX, |h| Ts(now.max(h * BUCKET_MS / 2 + i64::from(slot))));
                b.set(slot, new);
                if advance {
                    now += BUCKET_MS / 3;
                    b.advance(Ts(now));
                }
            }
            b.advance(Ts(i64::MAX - 1));
        }
    }
}
