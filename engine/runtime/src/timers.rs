//! Per-partition timer index: each debtor's next due instant, ordered, so advancing time costs in proportion to the
//! timers that fall due and not to the size of the portfolio.

use std::collections::BTreeSet;

use mora_domain::time::Ts;

/// Debtor slots ordered by their next wake instant.
#[derive(Clone, Debug, Default)]
pub struct TimerIndex {
    set: BTreeSet<(Ts, u32)>,
}

impl TimerIndex {
    /// Moves `slot` from `old` to `new` (`Ts::MAX` means no timer).
    pub fn reschedule(&mut self, slot: u32, old: Ts, new: Ts) {
        if old == new {
            return;
        }
        if old != Ts::MAX {
            self.set.remove(&(old, slot));
        }
        if new != Ts::MAX {
            self.set.insert((new, slot));
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Ts) -> Option<(Ts, u32)> {
        let first = *self.set.first()?;
        (first.0 <= now).then(|| {
            self.set.pop_first();
            first
        })
    }

    /// The earliest pending instant.
    pub fn next(&self) -> Option<Ts> {
        self.set.first().map(|(t, _)| *t)
    }

    /// The instant of the `n`-th pending timer (0 = the earliest).
    pub fn nth(&self, n: usize) -> Option<Ts> {
        self.set.iter().nth(n).map(|(t, _)| *t)
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
