//! A state flush built a slice at a time while its partition goes on.
//!
//! A flush must store every debtor it covers as it was at its cut (right after a commit): the checkpoint it writes
//! says which records those states reflect. Encoding them all at once held the engine thread for tens of
//! milliseconds after each commit. A [`Cut`] instead takes the list of debtors at the commit and encodes them a slice
//! at a time between the engine's other work; a debtor about to change before its turn is encoded first (copy on
//! write), so the rows are exactly those an encoding at the cut would give, in the same order.

use std::ops::Range;
use std::time::Instant;

use hashbrown::HashMap;
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;

use super::flush::{DebtorRow, PartitionFlush, loaded_ahead, row};
use crate::changes::ViewKeys;
use crate::operator::PREPARE_AHEAD;
use crate::store::DebtorStore;
use crate::summary::SummaryWalk;

/// A flush being built from the debtors as they were at its cut.
#[derive(Debug)]
pub(crate) struct Cut {
    flush: PartitionFlush,
    /// The debtors to write, in row order: the changed ones (with the view keys they were last stored under),
    /// then the sweep's.
    todo: Vec<(u32, Option<ViewKeys>)>,
    /// How many of `todo` are changed debtors (the rest are the sweep's, which write no view changes).
    changed: usize,
    /// Whether changed debtors' membership view changes are written.
    views: bool,
    /// The sweep's slots: a changed debtor among them is written again as the sweep's.
    sweep: Range<u32>,
    /// The next entry of `todo` to encode.
    next: usize,
    /// One bit per slot: the debtor is still to be written and has not changed since the cut (its live state is
    /// its state at the cut).
    unchanged: Vec<u64>,
    /// Rows encoded at the debtor's first change after the cut (with its view keys then), for debtors still to be
    /// written.
    kept: HashMap<u32, (DebtorRow, ViewKeys)>,
    /// Debtors encoded early so far.
    early: usize,
    /// The partition's summary being gathered, when the flush carries one (after the rows).
    summary: Option<SummaryWalk>,
    /// Whether the summary's walk is over.
    walked: bool,
    scratch: Vec<u8>,
}

impl Cut {
    /// A cut of `flush` writing the `changed` debtors, then the `sweep`'s slots, of a partition of `slots` debtors;
    /// with `summary`, the partition's summary is gathered after them.
    pub(crate) fn new(
        flush: PartitionFlush,
        changed: Vec<(u32, Option<ViewKeys>)>,
        sweep: Range<u32>,
        views: bool,
        slots: usize,
        summary: Option<SummaryWalk>,
    ) -> Self {
        let n = changed.len();
        let mut todo = changed;
        todo.extend(sweep.clone().map(|s| (s, None)));
        let mut unchanged = vec![0u64; slots.div_ceil(64)];
        for (s, _) in &todo {
            unchanged[*s as usize / 64] |= 1 << (*s % 64);
        }
        Self {
            flush,
            todo,
            changed: n,
            views,
            sweep,
            next: 0,
            unchanged,
            kept: HashMap::new(),
            early: 0,
            walked: summary.is_none(),
            summary,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Called before the debtor at `slot` (`d`) changes: if the cut still has to write it, its row is encoded now
    /// (the debtor is in the cache: cheaper than a copy of its state, and than encoding it later).
    #[inline]
    pub(crate) fn before_change(&mut self, slot: u32, d: &Debtor) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if let Some(w) = self.unchanged.get_mut(word)
            && *w & bit != 0
        {
            *w &= !bit;
            self.kept
                .insert(slot, (row(d, &mut self.scratch), ViewKeys::of(d)));
            self.early += 1;
        }
    }

    /// Whether every row is encoded and the summary, if any, gathered.
    pub(crate) fn done(&self) -> bool {
        self.next == self.todo.len() && self.walked
    }

    /// Debtors encoded before their turn so far.
    pub(crate) fn encoded_early(&self) -> usize {
        self.early
    }

    /// Encodes rows, a few debtors loaded side by side at a time, then gathers the summary, until all is done or
    /// `until` passes (checked after each few debtors). Returns whether the flush is whole but for the summary's
    /// last part (the work queues' heads, taken by the worker).
    pub(crate) fn step(
        &mut self,
        engine: &Engine,
        store: &DebtorStore,
        until: Option<Instant>,
    ) -> bool {
        let Self {
            flush,
            todo,
            changed,
            views,
            sweep,
            next,
            unchanged,
            kept,
            early: _,
            summary,
            walked,
            scratch,
        } = self;
        while *next < todo.len() {
            let end = (*next + PREPARE_AHEAD).min(todo.len());
            let window = &todo[*next..end];
            loaded_ahead(
                window
                    .iter()
                    .filter(|(s, _)| !kept.contains_key(s))
                    .map(|(s, _)| store.get(*s)),
            );
            for (i, (slot, before)) in window.iter().enumerate() {
                let views = (*next + i < *changed && *views).then_some(*before);
                // A debtor's last entry: it needs no copy after it. (A changed debtor in the sweep's range is
                // written again as the sweep's.)
                let last = *next + i >= *changed || !sweep.contains(slot);
                let kept_row = if last {
                    kept.remove(slot)
                } else {
                    kept.get(slot).cloned()
                };
                match kept_row {
                    Some((row, keys)) => flush.push_encoded(engine, row, keys, views),
                    None => {
                        let d = store.get(*slot);
                        debug_assert!(
                            unchanged[*slot as usize / 64] & (1 << (*slot % 64)) != 0,
                            "a debtor still to be written changed without being encoded first"
                        );
                        flush.push_row(engine, d, views, scratch);
                    }
                }
                if last {
                    unchanged[*slot as usize / 64] &= !(1 << (*slot % 64));
                }
            }
            *next = end;
            if until.is_some_and(|u| Instant::now() >= u) {
                return false;
            }
        }
        if let Some(walk) = summary.as_mut().filter(|_| !*walked) {
            *walked = walk.step(store, until);
        }
        self.done()
    }

    /// The flush and the summary's walk (if any), once [done](Cut::done).
    pub(crate) fn into_parts(self) -> (PartitionFlush, Option<SummaryWalk>) {
        debug_assert!(self.done(), "a flush handed over before it was whole");
        (self.flush, self.summary)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mora_domain::testkit::{self, ts};
    use mora_domain::time::Ts;

    use super::*;
    use crate::{CollectingSink, PartitionWorker};

    /// A partition of `n` debtors, some of them with an obligation past due (so that time changes them).
    fn worker(n: usize) -> PartitionWorker {
        let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-02T14:00:00Z");
        for i in 0..n {
            let id = format!("D-{i}");
            w.on_event(
                &testkit::debtor_upserted(&id, "CO", "America/Bogota", at),
                &mut sink,
            )
            .unwrap();
            if i % 3 == 0 {
                let ev = testkit::obligation(&id, "L1", "COP", "1500.50", "2026-02-01", at);
                w.on_event(&ev, &mut sink).unwrap();
            }
        }
        w
    }

    /// Changes some debtors the next flush will write (events, and time firing their timers).
    fn change(w: &mut PartitionWorker, round: usize) {
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-03T14:00:00Z");
        for i in [1, 4, 6, 9, 12, 17, 23, 30] {
            let id = format!("D-{i}");
            let ev = testkit::obligation(
                &id,
                &format!("L{}", 2 + round),
                "COP",
                "700.25",
                "2026-02-15",
                Ts(at.0 + round as i64),
            );
            w.on_event(&ev, &mut sink).unwrap();
        }
    }

    /// A flush built a window at a time while its debtors go on changing (events and timers) writes the same rows,
    /// view changes and sweep as one built at once at the cut; debtors changing before their turn are encoded first.
    #[test]
    fn a_flush_built_in_slices_while_debtors_change_is_the_flush_of_its_cut() {
        for views in [false, true] {
            let (mut a, mut b) = (worker(40), worker(40));
            change(&mut a, 0);
            change(&mut b, 0);
            let engine = testkit::engine();
            let (mut sweep_a, mut sweep_b) = (Default::default(), Default::default());
            // At once, at the cut.
            let mut at_cut = PartitionFlush::default();
            let changed = b.take_changed();
            let n = changed.len();
            at_cut.add_changed(&engine, changed, views).unwrap();
            at_cut.add_sweep(&b, &mut sweep_b, n).unwrap();
            // A window at a time, the debtors changing between windows.
            a.begin_flush(PartitionFlush::default(), Some(&mut sweep_a), views, None);
            let mut early = 0;
            let mut round = 1;
            let sliced = loop {
                if let Some(f) = a.build_flush(Some(Instant::now())).unwrap() {
                    break f;
                }
                change(&mut a, round);
                let mut sink = CollectingSink::default();
                a.advance_to(ts("2026-03-20T14:00:00Z"), &mut sink);
                early = early.max(a.flush_encoded_early());
                round += 1;
            };
            assert!(round > 3, "built over several slices ({round})");
            assert!(
                early > 0,
                "debtors changed before their turn were encoded first"
            );
            let rows = |f: &PartitionFlush| {
                f.rows
                    .iter()
                    .map(|r| (r.debtor_id.to_string(), r.state.clone()))
                    .collect::<Vec<_>>()
            };
            let (got, want) = (rows(&sliced), rows(&at_cut));
            assert_eq!(got.len(), want.len());
            let differ: Vec<&String> = got
                .iter()
                .zip(&want)
                .filter(|(g, w)| g != w)
                .map(|(g, _)| &g.0)
                .collect();
            assert!(
                differ.is_empty(),
                "rows differing from the cut's: {differ:?}"
            );
            assert_eq!(sliced.views, at_cut.views);
            // Pass ids are unique in the process: the two passes differ in it only.
            let mark = |f: &PartitionFlush| f.sweep.map(|m| (m.starts, m.ends, m.rows));
            assert_eq!(mark(&sliced), mark(&at_cut));
            assert!(sliced.sweep.is_some(), "the sweep's rows are in");
            assert!(!a.flush_building());
            // What changed after the cut is the next flush's.
            assert!(a.changed_count() > 0);
        }
    }

    /// A reload while a flush is being built finishes it first, with the debtors as they were at the cut.
    #[test]
    fn a_reload_finishes_the_flush_being_built_first() {
        let (mut a, mut b) = (worker(40), worker(40));
        change(&mut a, 0);
        change(&mut b, 0);
        let engine = testkit::engine();
        let mut at_cut = PartitionFlush::default();
        let changed = b.take_changed();
        at_cut.add_changed(&engine, changed, false).unwrap();
        a.begin_flush(PartitionFlush::default(), None, false, None);
        assert!(a.build_flush(Some(Instant::now())).unwrap().is_none());
        let mut cfg = testkit::engine_config();
        cfg.priority.dpd *= 3.0;
        let reloaded = Engine::new(&cfg, &testkit::policies(), &testkit::calendars()).unwrap();
        assert!(
            a.set_engine(Arc::new(reloaded)) > 0,
            "the reload changes debtors"
        );
        assert!(a.flush_building(), "kept until taken");
        let f = a
            .build_flush(Some(Instant::now()))
            .unwrap()
            .expect("finished by the reload");
        let states =
            |f: &PartitionFlush| f.rows.iter().map(|r| r.state.clone()).collect::<Vec<_>>();
        assert!(
            states(&f)[..at_cut.rows.len()] == states(&at_cut)[..],
            "the rows are the cut's"
        );
    }

    /// A summary gathered over the build's slices is, when nothing changes meanwhile, the summary taken at once;
    /// when debtors change meanwhile it counts every debtor once.
    #[test]
    fn a_summary_gathered_over_slices_is_the_summary_taken_at_once_when_nothing_changes() {
        use crate::durable::codec::{AGGREGATE_FORMAT, decode_summary};
        let mut a = worker(40);
        change(&mut a, 0);
        a.begin_flush(PartitionFlush::default(), None, false, Some(5));
        let mut slices = 0;
        let f = loop {
            slices += 1;
            if let Some(f) = a.build_flush(Some(Instant::now())).unwrap() {
                break f;
            }
        };
        assert!(slices > 3, "gathered over several slices ({slices})");
        let got = decode_summary(AGGREGATE_FORMAT, f.summary.as_ref().expect("a summary")).unwrap();
        assert_eq!(got, a.summary(5));
        // Debtors changing between slices: each is still counted once.
        let mut b = worker(40);
        b.begin_flush(PartitionFlush::default(), None, false, Some(5));
        let mut round = 0;
        let f = loop {
            if let Some(f) = b.build_flush(Some(Instant::now())).unwrap() {
                break f;
            }
            round += 1;
            change(&mut b, round);
        };
        let got = decode_summary(AGGREGATE_FORMAT, f.summary.as_ref().expect("a summary")).unwrap();
        assert_eq!(got.portfolio.debtors, 40);
        assert!(got.portfolio.owing > 0);
    }
}
