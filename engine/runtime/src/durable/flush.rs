//! What one flush writes for one partition, built on the engine's thread from the worker's changed debtors (cheap
//! copies and one encode per debtor) and written by the store off that thread.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mora_domain::action::{Action, AuditRecord};
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::ids::DebtorId;
use mora_domain::time::Ts;

use super::codec::{self, CodecError};
use crate::changes::ViewKeys;
use crate::operator::PREPARE_AHEAD;
use crate::worker::PartitionWorker;

/// Per input topic, the next offset to read: a cut of the partition's input.
pub type Offsets = BTreeMap<String, i64>;

/// Where a partition's stored state stands: every stored debtor reflects at least the records below `offsets`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Next offset per input topic.
    pub offsets: Offsets,
    /// The partition's clock at the cut (milliseconds since the epoch).
    pub clock: Ts,
}

/// One debtor's stored state.
#[derive(Clone, Debug)]
pub struct DebtorRow {
    /// Debtor id.
    pub debtor_id: DebtorId,
    /// Encoded state ([`codec::FORMAT`]).
    pub state: Vec<u8>,
}

/// A pass over every debtor of a partition in slot order, a few slots per flush, which rewrites each one's state:
/// once a pass ends, everything the store holds for the partition from before the flush the pass started in is
/// superseded, so a store that keeps states as a log can drop it.
///
/// The first pass starts with the first flush that writes; each later one once the partition has written
/// [`Sweep::REST_FACTOR`] times its debtors since the previous pass started (and at least [`Sweep::REST_FLOOR`]
/// states). So a log holds at most about `REST_FACTOR + 2` states per debtor, at most one state in `REST_FACTOR`
/// written is the sweep's, and a small partition does not end a pass (a deletion per shard) every few flushes.
#[derive(Debug, Default)]
pub struct Sweep {
    /// The next slot to write, while a pass runs.
    next: Option<usize>,
    /// The running or last pass (0 before the first).
    id: u64,
    /// States written for the partition since the running or last pass started.
    grown: usize,
}

impl Sweep {
    /// A new pass starts once the partition has written this many times its debtors since the last one started.
    pub const REST_FACTOR: usize = 4;
    /// ... and at least this many states.
    pub const REST_FLOOR: usize = 16_384;

    /// Whether a pass should start now over a partition of `debtors`.
    fn due(&self, debtors: usize) -> bool {
        self.id == 0 || self.grown >= (Self::REST_FACTOR * debtors).max(Self::REST_FLOOR)
    }
}

/// What a flush carries of a [`Sweep`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepMark {
    /// Tells passes apart (unique in the process).
    pub id: u64,
    /// The pass starts with this flush: it covers what the store held before this flush.
    pub starts: bool,
    /// The pass ends with this flush: once it lands, every debtor of the partition has been written since the
    /// pass started.
    pub ends: bool,
    /// Rows of this flush that the pass wrote (after the changed debtors' rows).
    pub rows: usize,
}

/// A membership view entry to add or remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewChange {
    /// The debtor joined a segment.
    JoinSegment(String, String),
    /// The debtor left a segment.
    LeaveSegment(String, String),
    /// The debtor joined a work queue.
    JoinQueue(String, String),
    /// The debtor left a work queue.
    LeaveQueue(String, String),
}

/// Everything one flush writes for one Kafka partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionFlush {
    /// Kafka partition.
    pub partition: i32,
    /// Changed debtors.
    pub rows: Vec<DebtorRow>,
    /// Membership changes.
    pub views: Vec<ViewChange>,
    /// Actions decided since the last flush (committed to Kafka; replayed ones again, harmlessly).
    pub actions: Vec<Action>,
    /// Audit records since the last flush.
    pub audits: Vec<AuditRecord>,
    /// The cut the rows reflect; written last, once every row is stored.
    pub checkpoint: Arc<Checkpoint>,
    /// KPI days counted into since the last flush (day since the epoch, encoded counters); written with the
    /// checkpoint, so they reflect the same cut.
    pub kpi_days: Vec<(i64, Vec<u8>)>,
    /// The partition's summary for other instances (encoded), when one is due.
    pub summary: Option<Vec<u8>>,
    /// The sweep's part in this flush, if it wrote any.
    pub sweep: Option<SweepMark>,
}

impl PartitionFlush {
    /// Adds the KPI days a worker counted into since the last flush, and its summary when `summary_depth` is given.
    pub fn add_aggregates(
        &mut self,
        worker: &mut PartitionWorker,
        summary_depth: Option<usize>,
    ) -> Result<(), CodecError> {
        for (day, counters) in worker.take_kpi_days() {
            self.kpi_days.push((day, codec::encode_kpi_day(&counters)?));
        }
        if let Some(depth) = summary_depth {
            self.summary = Some(codec::encode_summary(&worker.summary(depth))?);
        }
        Ok(())
    }

    /// Adds a changed debtor's row only (no membership changes).
    pub fn add_row(&mut self, d: &Debtor) -> Result<(), CodecError> {
        self.rows.push(DebtorRow {
            debtor_id: d.id.clone(),
            state: codec::encode(d)?,
        });
        Ok(())
    }

    /// Adds the changed debtors a worker hands over ([`PartitionWorker::take_changed`]): their rows, and with
    /// `views` their membership changes. The debtors are loaded a few at a time side by side before they are
    /// encoded ([`loaded_ahead`]): on a large portfolio each one's record and cold part are cache misses, and one
    /// after another they were most of a flush's time on the engine thread.
    pub fn add_changed(
        &mut self,
        engine: &Engine,
        changed: Vec<(&Debtor, Option<ViewKeys>)>,
        views: bool,
    ) -> Result<(), CodecError> {
        self.rows.reserve(changed.len());
        let mut scratch = Vec::with_capacity(1024);
        for window in changed.chunks(PREPARE_AHEAD) {
            loaded_ahead(window.iter().map(|(d, _)| *d));
            for (d, before) in window {
                self.push_row(engine, d, views.then_some(*before), &mut scratch);
            }
        }
        Ok(())
    }

    /// Adds a changed debtor: its row, and view changes against the keys it was last stored under.
    pub fn add(
        &mut self,
        engine: &Engine,
        d: &Debtor,
        before: Option<ViewKeys>,
    ) -> Result<(), CodecError> {
        self.push_row(engine, d, Some(before), &mut Vec::new());
        Ok(())
    }

    /// Adds `d`'s row (encoded through `scratch`) and, with `views` (the keys it was last stored under), its
    /// membership view changes.
    pub(crate) fn push_row(
        &mut self,
        engine: &Engine,
        d: &Debtor,
        views: Option<Option<ViewKeys>>,
        scratch: &mut Vec<u8>,
    ) {
        self.push_encoded(engine, row(d, scratch), ViewKeys::of(d), views);
    }

    /// Adds a debtor's encoded row and, with `views` (the keys it was last stored under), the membership view
    /// changes from those to `keys`, its keys when it was encoded.
    pub(crate) fn push_encoded(
        &mut self,
        engine: &Engine,
        row: DebtorRow,
        keys: ViewKeys,
        views: Option<Option<ViewKeys>>,
    ) {
        let Some(before) = views else {
            self.rows.push(row);
            return;
        };
        let segment_name = |i: u16| {
            engine
                .segmentation
                .names()
                .get(i as usize)
                .cloned()
                .unwrap_or_default()
        };
        let id = || row.debtor_id.to_string();
        let (old_segment, old_queues) = before.map_or((None, 0), |k| (Some(k.segment), k.queues));
        if old_segment != Some(keys.segment) {
            if let Some(s) = old_segment {
                self.views
                    .push(ViewChange::LeaveSegment(segment_name(s), id()));
            }
            self.views
                .push(ViewChange::JoinSegment(segment_name(keys.segment), id()));
        }
        let names = engine.queues.names();
        for (i, name) in names.iter().enumerate().take(32) {
            let bit = 1u32 << i;
            match (old_queues & bit != 0, keys.queues & bit != 0) {
                (false, true) => self.views.push(ViewChange::JoinQueue(name.clone(), id())),
                (true, false) => self.views.push(ViewChange::LeaveQueue(name.clone(), id())),
                _ => {}
            }
        }
        self.rows.push(row);
    }

    /// Adds the next `n` debtors of `sweep`'s pass over `worker` (starting a pass if none runs and one is due),
    /// where `n` is the flush's changed rows. Nothing while the worker holds debtors back after a restore: their
    /// states claim a later cut than this flush's.
    pub fn add_sweep(
        &mut self,
        worker: &PartitionWorker,
        sweep: &mut Sweep,
        n: usize,
    ) -> Result<(), CodecError> {
        let Some((slots, mark)) = plan_sweep(sweep, worker.len(), worker.fenced(), n) else {
            return Ok(());
        };
        let debtors: Vec<&Debtor> = worker
            .debtors_from(slots.start as usize, slots.len())
            .collect();
        self.rows.reserve(debtors.len());
        let mut scratch = Vec::with_capacity(1024);
        for window in debtors.chunks(PREPARE_AHEAD) {
            loaded_ahead(window.iter().copied());
            for d in window {
                self.rows.push(row(d, &mut scratch));
            }
        }
        self.sweep = Some(mark);
        Ok(())
    }
}

/// Which slots the next `n` debtors of `sweep`'s pass over a partition of `debtors` are (starting a pass if none
/// runs and one is due), and what the flush writing them carries of the pass; `None` when it writes none. Nothing
/// while the partition holds debtors back after a restore (`fenced`): their states claim a later cut than the
/// flush's.
pub(crate) fn plan_sweep(
    sweep: &mut Sweep,
    debtors: usize,
    fenced: bool,
    n: usize,
) -> Option<(Range<u32>, SweepMark)> {
    sweep.grown += n;
    if n == 0 || debtors == 0 || fenced {
        return None;
    }
    let starts = sweep.next.is_none();
    if starts {
        if !sweep.due(debtors) {
            return None;
        }
        static PASSES: AtomicU64 = AtomicU64::new(1);
        sweep.id = PASSES.fetch_add(1, Ordering::Relaxed);
        sweep.grown = n;
    }
    let from = sweep.next.unwrap_or(0).min(debtors);
    let rows = n.min(debtors - from);
    sweep.grown += rows;
    let ends = from + rows >= debtors;
    sweep.next = (!ends).then_some(from + rows);
    let mark = SweepMark {
        id: sweep.id,
        starts,
        ends,
        rows,
    };
    Some((from as u32..(from + rows) as u32, mark))
}

/// A debtor's row, its state encoded in `scratch` first and then copied at its exact size (a state's size is not
/// known before it is written, and growing a fresh buffer to fit cost a reallocation for most states).
pub(crate) fn row(d: &Debtor, scratch: &mut Vec<u8>) -> DebtorRow {
    scratch.clear();
    codec::encode_into(d, scratch);
    DebtorRow {
        debtor_id: d.id.clone(),
        state: scratch.as_slice().to_vec(),
    }
}

/// Loads `debtors` side by side, their records, then their cold parts, then what lies further
/// ([`Debtor::touch`], [`Debtor::touch_cold`], [`Debtor::touch_far`]), so that the misses overlap before each is
/// encoded in turn. Changes nothing.
pub(crate) fn loaded_ahead<'a>(debtors: impl Iterator<Item = &'a Debtor> + Clone) {
    let mut folded = 0;
    for d in debtors.clone() {
        folded ^= d.touch();
    }
    for d in debtors.clone() {
        folded ^= d.touch_cold();
    }
    for d in debtors {
        folded ^= d.touch_far();
    }
    std::hint::black_box(folded);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use mora_domain::testkit::{self, ts};

    use super::*;
    use crate::CollectingSink;

    fn worker(debtors: usize) -> PartitionWorker {
        let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-02T14:00:00Z");
        for i in 0..debtors {
            let ev = testkit::debtor_upserted(&format!("D-{i}"), "CO", "America/Bogota", at);
            w.on_event(&ev, &mut sink).unwrap();
        }
        w
    }

    fn ids(f: &PartitionFlush) -> Vec<String> {
        f.rows.iter().map(|r| r.debtor_id.to_string()).collect()
    }

    /// Changed debtors added together (loaded a window ahead, encoded through one buffer) give the rows and view
    /// changes that adding them one at a time gives, in the same order, with and without views.
    #[test]
    fn changed_debtors_added_together_are_the_rows_added_one_by_one() {
        let engine = Arc::new(testkit::engine());
        for views in [false, true] {
            let mut w = worker(PREPARE_AHEAD * 2 + 3);
            let mut sink = CollectingSink::default();
            let at = ts("2026-03-03T14:00:00Z");
            for i in [1, 4, 6, 9, 12, 17] {
                let ev = testkit::obligation(
                    &format!("D-{i}"),
                    "L1",
                    "COP",
                    "1500.50",
                    "2026-02-01",
                    at,
                );
                w.on_event(&ev, &mut sink).unwrap();
            }
            let changed = w.take_changed();
            assert!(changed.len() > PREPARE_AHEAD, "more than one window");
            let mut one_by_one = PartitionFlush::default();
            for (d, before) in &changed {
                if views {
                    one_by_one.add(&engine, d, *before).unwrap();
                } else {
                    one_by_one.add_row(d).unwrap();
                }
            }
            let mut together = PartitionFlush::default();
            together.add_changed(&engine, changed, views).unwrap();
            assert_eq!(ids(&together), ids(&one_by_one));
            let states =
                |f: &PartitionFlush| f.rows.iter().map(|r| r.state.clone()).collect::<Vec<_>>();
            assert_eq!(states(&together), states(&one_by_one));
            assert_eq!(together.views, one_by_one.views);
            assert_eq!(together.views.is_empty(), !views);
        }
    }

    #[test]
    fn a_sweep_writes_every_debtor_once_a_few_per_flush_and_marks_its_first_and_last() {
        let w = worker(10);
        let mut sweep = Sweep::default();
        let mut seen = Vec::new();
        let mut marks = Vec::new();
        for _ in 0..3 {
            let mut f = PartitionFlush::default();
            f.add_sweep(&w, &mut sweep, 4).unwrap();
            seen.extend(ids(&f));
            marks.push(f.sweep.unwrap());
        }
        let flags: Vec<(bool, bool, usize)> =
            marks.iter().map(|m| (m.starts, m.ends, m.rows)).collect();
        assert_eq!(
            flags,
            [(true, false, 4), (false, false, 4), (false, true, 2)],
            "10 debtors by 4: a pass of three flushes"
        );
        assert_eq!(marks[0].id, marks[2].id, "one pass, one id");
        let first_pass: BTreeSet<&String> = seen[..10].iter().collect();
        assert_eq!(first_pass.len(), 10, "every debtor, each once");
        let state = codec::encode(w.debtor("D-0").unwrap()).unwrap();
        let mut f = PartitionFlush::default();
        f.add_sweep(&w, &mut Sweep::default(), 1).unwrap();
        assert_eq!(f.rows[0].state, state, "the state as stored");
    }

    #[test]
    fn the_next_pass_waits_until_the_partition_has_written_its_rest_since_the_last_one_started() {
        let w = worker(10);
        let mut sweep = Sweep::default();
        let mut flush = |n: usize| {
            let mut f = PartitionFlush::default();
            f.add_sweep(&w, &mut sweep, n).unwrap();
            f.sweep
        };
        // A pass of 10 debtors by 5 changed rows a flush: 10 changed and 10 swept since it started.
        let first = flush(5).unwrap();
        assert!(first.starts);
        assert!(flush(5).unwrap().ends);
        // The floor dominates 4 x 10 debtors: the rest is 16 384 states since the start, 20 of them written.
        let rest = Sweep::REST_FLOOR - 20;
        assert_eq!(flush(rest - 1), None, "one state short of the rest");
        let next = flush(1).expect("the rest reached: a pass starts");
        assert!(next.starts && next.rows == 1);
        assert_ne!(next.id, first.id, "a new pass, a new id");
    }

    #[test]
    fn no_sweep_without_rows_to_pace_it_or_debtors_to_write() {
        let mut sweep = Sweep::default();
        let mut f = PartitionFlush::default();
        f.add_sweep(&worker(3), &mut sweep, 0).unwrap();
        f.add_sweep(&worker(0), &mut sweep, 5).unwrap();
        assert!(f.rows.is_empty() && f.sweep.is_none());
        // Starting from the first slot again: nothing was begun.
        f.add_sweep(&worker(3), &mut sweep, 5).unwrap();
        assert_eq!(f.sweep.map(|m| (m.starts, m.ends)), Some((true, true)));
    }

    #[test]
    fn debtors_held_back_after_a_restore_stop_the_sweep() {
        let w = worker(3);
        let debtors: Vec<_> = w.debtors().cloned().collect();
        let mut fences = crate::Fences::new();
        fences.insert(debtors[1].id.clone(), vec![]);
        let restored =
            PartitionWorker::restore(0, Arc::new(testkit::engine()), w.clock(), debtors, fences);
        assert!(restored.fenced());
        let mut f = PartitionFlush::default();
        f.add_sweep(&restored, &mut Sweep::default(), 5).unwrap();
        assert!(f.rows.is_empty() && f.sweep.is_none());
    }
}
