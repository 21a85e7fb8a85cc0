//! The partition worker: owns its debtors, applies records and time, keeps timers and queues in step.

use std::sync::Arc;
use std::time::Instant;

use compact_str::CompactString;
use mora_domain::debtor::Debtor;
use mora_domain::engine::{Decisions, Engine, Input};
use mora_domain::event::Envelope;
use mora_domain::ids::DebtorId;
use mora_domain::queues::QueueBook;
use mora_domain::rejected::Rejected;
use mora_domain::time::Ts;
use mora_schemas::{DeadLetter, Family, decode_clock, decode_event};

use crate::changes::{ChangeSet, Fences, ViewKeys, fenced};
use crate::durable::codec::{self, CodecError};
use crate::durable::{Cut, PartitionFlush, Sweep, plan_sweep};
use crate::kpis::{Before, Dim, KpiCounts, Kpis, LabelledDay, label_dims};
use crate::operator::{Operator, PREPARE_AHEAD};
use crate::portfolio::Portfolio;
use crate::sink::{InputRecord, Sink};
use crate::stats::WorkerStats;
use crate::store::DebtorStore;
use crate::summary::{PartitionSummary, QueueEntry, QueueHead, SummaryWalk};
use crate::timers::TimerIndex;

/// Audit records a partition keeps in memory for debtors' recent decisions (the audit topic and the state store's
/// ledger keep them all).
const RECENT_DECISIONS: usize = 20_000;

/// Owns the debtors of one partition. Single-threaded by design: no locks on the hot path.
#[derive(Debug)]
pub struct PartitionWorker {
    partition: i32,
    engine: Arc<Engine>,
    store: DebtorStore,
    timers: TimerIndex,
    queues: QueueBook<u32>,
    clock: Ts,
    out: Decisions,
    stats: WorkerStats,
    changes: ChangeSet,
    fences: Fences,
    kpis: Kpis,
    /// The partition's latest audit records, for a debtor's recent decisions (bounded).
    recent: std::collections::VecDeque<mora_domain::action::AuditRecord>,
    /// Per input family (in `Family::ALL` order), the next offset after the last record processed.
    positions: [i64; mora_schemas::Family::ALL.len()],
    /// The state flush being built from the debtors as they were at its cut, if any.
    cut: Option<Cut>,
    /// State flushes built to their end by the worker itself (before a reload changed every debtor, or a flush
    /// begun before the last was taken), oldest first, not yet taken.
    built: std::collections::VecDeque<Result<PartitionFlush, CodecError>>,
}

impl PartitionWorker {
    /// An empty worker for `partition`.
    pub fn new(partition: i32, engine: Arc<Engine>) -> Self {
        let queues = QueueBook::new(&engine.queues);
        Self {
            partition,
            engine,
            store: DebtorStore::default(),
            timers: TimerIndex::default(),
            queues,
            clock: Ts(0),
            out: Decisions::default(),
            stats: WorkerStats::default(),
            changes: ChangeSet::default(),
            fences: Fences::new(),
            kpis: Kpis::default(),
            recent: std::collections::VecDeque::new(),
            positions: [0; mora_schemas::Family::ALL.len()],
            cut: None,
            built: std::collections::VecDeque::new(),
        }
    }

    /// A worker rebuilt from stored state: the partition's clock at its checkpoint, its debtors (timers and work
    /// queues rebuilt from them), and the fences of debtors stored ahead of the checkpoint (records below a fence
    /// are skipped for that debtor, only moving the clock).
    pub fn restore(
        partition: i32,
        engine: Arc<Engine>,
        clock: Ts,
        debtors: impl IntoIterator<Item = Debtor>,
        fences: Fences,
    ) -> Self {
        let mut w = Self::new(partition, engine);
        w.clock = clock;
        for d in debtors {
            let keys = ViewKeys {
                segment: d.derived.segment,
                queues: d.derived.queues,
            };
            let slot = w.store.insert(d);
            w.sync(slot, ((0, 0), Ts::MAX));
            w.changes.loaded(slot, keys);
        }
        // Loading is not a change: only what happens after it needs writing back.
        let _ = w.changes.take();
        w.fences = fences;
        w
    }

    /// Drops the restore fences (once the partition has replayed past every stored debtor's state).
    pub fn clear_fences(&mut self) {
        self.fences = Fences::new();
    }

    /// Whether debtors restored ahead of the checkpoint are still held back (see [`PartitionWorker::take_changed`]).
    pub fn fenced(&self) -> bool {
        !self.fences.is_empty()
    }

    /// The debtors in slots `from..` up to `n` of them, in slot order (slots never move, and a debtor never leaves).
    pub fn debtors_from(&self, from: usize, n: usize) -> impl Iterator<Item = &Debtor> {
        let end = from.saturating_add(n).min(self.store.len());
        (from.min(end)..end).map(|s| self.store.get(s as u32))
    }

    /// Debtors changed since the last call, each once, with the view keys they were last persisted under (`None`:
    /// never persisted). Calling it marks their current view keys as persisted.
    ///
    /// A debtor restored ahead of the checkpoint is held back until the partition has processed every record its
    /// stored state reflects: written earlier, its row would claim a cut older than its state, and a later restore
    /// would apply those records to it twice.
    pub fn take_changed(&mut self) -> Vec<(&Debtor, Option<ViewKeys>)> {
        let slots = self.take_changed_slots();
        slots
            .into_iter()
            .map(|(s, p)| (self.store.get(s), p))
            .collect()
    }

    /// [`PartitionWorker::take_changed`], by slot.
    fn take_changed_slots(&mut self) -> Vec<(u32, Option<ViewKeys>)> {
        let mut slots = self.changes.take();
        if !self.fences.is_empty() {
            let (positions, fences, store) = (&self.positions, &self.fences, &self.store);
            let (ready, held): (Vec<u32>, Vec<u32>) = slots.into_iter().partition(|s| {
                fences.get(&store.get(*s).id).is_none_or(|f| {
                    f.iter()
                        .all(|(fam, below)| positions[family_index(*fam)] >= *below)
                })
            });
            for s in held {
                self.changes.mark(s);
            }
            slots = ready;
        }
        slots
            .into_iter()
            .map(|s| {
                let d = &self.store.get(s).derived;
                let keys = ViewKeys {
                    segment: d.segment,
                    queues: d.queues,
                };
                (s, self.changes.persist(s, keys))
            })
            .collect()
    }

    /// Starts building `flush` (its checkpoint, ledger entries and KPI days already in) at this cut: the debtors
    /// changed since the last flush, then the next slots of `sweep`'s pass if any (as many as changed), with
    /// membership view changes if `views`, and with `summary_depth` the partition's summary (work queues' heads of
    /// that many entries). Rows are encoded by [`PartitionWorker::build_flush`] a slice at a time while the
    /// partition goes on: each is written as it is now, a debtor changing before its turn being encoded first. The
    /// summary is gathered over slices after the rows: figures of debtors as each was visited, queue heads as at
    /// the end. A flush still being built is finished first (and handed over before this one).
    pub fn begin_flush(
        &mut self,
        mut flush: PartitionFlush,
        sweep: Option<&mut Sweep>,
        views: bool,
        summary_depth: Option<usize>,
    ) {
        self.finish_cut();
        let changed = self.take_changed_slots();
        let planned = sweep
            .and_then(|sweep| plan_sweep(sweep, self.store.len(), self.fenced(), changed.len()));
        let slots = planned.as_ref().map_or(0..0, |(s, _)| s.clone());
        flush.sweep = planned.map(|(_, mark)| mark);
        flush.rows.reserve(changed.len() + slots.len());
        let summary = summary_depth.map(SummaryWalk::new);
        self.cut = Some(Cut::new(
            flush,
            changed,
            slots,
            views,
            self.store.len(),
            summary,
        ));
    }

    /// Builds more of the flush begun by [`PartitionWorker::begin_flush`], until it is whole or `until` passes
    /// (`None`: to the end). Returns the flush once whole (once), else `None`; flushes the worker finished itself
    /// come first. Fails only if its summary cannot be encoded.
    pub fn build_flush(
        &mut self,
        until: Option<Instant>,
    ) -> Result<Option<PartitionFlush>, CodecError> {
        if let Some(f) = self.built.pop_front() {
            return f.map(Some);
        }
        self.step_cut(until)
    }

    fn step_cut(&mut self, until: Option<Instant>) -> Result<Option<PartitionFlush>, CodecError> {
        let done = self
            .cut
            .as_mut()
            .is_some_and(|c| c.step(&self.engine, &self.store, until));
        let Some(cut) = done.then(|| self.cut.take()).flatten() else {
            return Ok(None);
        };
        let (mut flush, walk) = cut.into_parts();
        if let Some(walk) = walk {
            flush.summary = Some(codec::encode_summary(&self.summary_of(walk))?);
        }
        Ok(Some(flush))
    }

    /// Whether a flush is begun and not yet taken.
    pub fn flush_building(&self) -> bool {
        self.cut.is_some() || !self.built.is_empty()
    }

    /// Debtors the flush being built encoded early because they were about to change before their turn.
    pub fn flush_encoded_early(&self) -> usize {
        self.cut.as_ref().map_or(0, Cut::encoded_early)
    }

    /// Finishes the flush being built, if any, keeping it for [`PartitionWorker::build_flush`] (before a change to
    /// every debtor).
    fn finish_cut(&mut self) {
        if self.cut.is_some() {
            let built = self.step_cut(None).transpose();
            self.built.extend(built);
        }
    }

    /// Before the debtor at `slot` changes: the flush being built keeps its state at the cut if it still has to
    /// write it.
    #[inline]
    fn before_change(&mut self, slot: u32) {
        if let Some(c) = &mut self.cut {
            c.before_change(slot, self.store.get(slot));
        }
    }

    /// Debtors changed and not yet taken.
    pub fn changed_count(&self) -> usize {
        self.changes.pending()
    }

    /// The partition's notion of now: the latest of event times and ticks seen.
    pub fn clock(&self) -> Ts {
        self.clock
    }

    /// Counters so far.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The engine configuration in force.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Number of debtors owned.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the worker owns no debtor.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Number of pending timers.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// The instant of the `n`-th pending timer (0 = the earliest).
    pub fn nth_timer(&mut self, n: usize) -> Option<Ts> {
        let store = &self.store;
        self.timers.nth(n, |s| store.get(s).next_wake)
    }

    /// A debtor's state.
    pub fn debtor(&self, id: &str) -> Option<&Debtor> {
        self.store.find(id).map(|s| self.store.get(s))
    }

    /// Every debtor's state.
    pub fn debtors(&self) -> impl Iterator<Item = &Debtor> {
        self.store.iter()
    }

    /// Jurisdictions (country, or country-region) of owned debtors that no policy covers, with how many debtors each:
    /// every contact action for them is blocked as `unknown_jurisdiction`, so the binary warns about each at start.
    pub fn jurisdictions_without_policy(&self) -> Vec<(CompactString, usize)> {
        let mut missing: std::collections::BTreeMap<CompactString, usize> = Default::default();
        for p in self.store.iter().filter_map(|d| d.profile.as_ref()) {
            if self
                .engine
                .policies
                .lookup(&p.country, p.region.as_deref())
                .is_none()
            {
                let key = match &p.region {
                    Some(r) => compact_str::format_compact!("{}-{r}", p.country),
                    None => p.country.as_str().into(),
                };
                *missing.entry(key).or_default() += 1;
            }
        }
        missing.into_iter().collect()
    }

    /// Applies one decoded event (after firing every timer due up to its instant).
    pub fn on_event(&mut self, ev: &Envelope, sink: &mut dyn Sink) -> Result<(), Rejected> {
        self.advance_to(ev.occurred_at, sink);
        let now = self.clock;
        let (result, slot) = match self.store.find(&ev.debtor_id) {
            Some(slot) => (self.apply(slot, Input::Event(ev), now), Some(slot)),
            None => {
                // Decide on a fresh state first: a refused event must not leave an empty debtor behind.
                let mut d = Debtor::new(ev.debtor_id.clone());
                let r = self
                    .engine
                    .process(&mut d, Input::Event(ev), now, &mut self.out);
                if r.is_ok() {
                    self.kpis
                        .evaluated(now, Before::of(None), &d, Some(&ev.kind));
                    let slot = self.store.insert(d);
                    self.sync(slot, ((0, 0), Ts::MAX));
                    (r, Some(slot))
                } else {
                    (r, None)
                }
            }
        };
        match &result {
            Ok(()) => *self.stats.events_by_kind.entry(ev.kind.name()).or_default() += 1,
            Err(_) => self.stats.rejected += 1,
        }
        self.flush(slot, sink);
        result
    }

    /// Fires every timer due up to and including `t`, each at its own instant, then moves the clock to `t`.
    pub fn advance_to(&mut self, t: Ts, sink: &mut dyn Sink) {
        let mut ahead = [0u32; PREPARE_AHEAD];
        let mut touched = 0;
        loop {
            if touched == 0 {
                // The next few debtors due are loaded together: their cache misses overlap.
                let n = ahead
                    .iter_mut()
                    .zip(self.timers.due_ahead(t, PREPARE_AHEAD))
                    .map(|(a, slot)| *a = slot)
                    .count();
                self.store.touch(&ahead[..n]);
                touched = n.max(1);
            }
            touched -= 1;
            let store = &self.store;
            let Some((at, slot)) = self.timers.pop_due(t, |s| store.get(s).next_wake) else {
                break;
            };
            self.clock = self.clock.max(at);
            let now = self.clock;
            // The timer entry is gone; make the debtor's view agree before re-syncing.
            self.before_change(slot);
            self.store.get_mut(slot).next_wake = Ts::MAX;
            // A wake never fails: it carries no input to refuse.
            let _ = self.apply(slot, Input::Wake, now);
            self.stats.wakes += 1;
            self.flush(Some(slot), sink);
        }
        self.clock = self.clock.max(t);
    }

    fn apply(&mut self, slot: u32, input: Input<'_>, now: Ts) -> Result<(), Rejected> {
        self.before_change(slot);
        let d = self.store.get(slot);
        let before = (self.queue_key(d), d.next_wake);
        let kpi_before = Before::of(Some(d));
        self.engine
            .process(self.store.get_mut(slot), input, now, &mut self.out)?;
        let event = match input {
            Input::Event(ev) => Some(&ev.kind),
            Input::Wake => None,
        };
        self.kpis
            .evaluated(now, kpi_before, self.store.get(slot), event);
        self.sync(slot, before);
        Ok(())
    }

    /// Swaps in a new configuration: every debtor is re-segmented and re-prioritised and the work queues rebuilt
    /// (nothing is decided; strategy changes take effect at each debtor's next event or timer). Debtors whose
    /// derived figures changed are marked for the state store. Returns how many changed.
    pub fn set_engine(&mut self, engine: Arc<Engine>) -> usize {
        let threads = reload_threads(self.store.len());
        self.set_engine_on(engine, threads)
    }

    /// [`PartitionWorker::set_engine`] on up to `threads` threads. The re-derivation of each debtor is independent
    /// of the others': the slab's chunks are shared out among threads (the engine thread waits for the reload
    /// either way), and their results joined in slot order, so the outcome is the same whatever the number.
    fn set_engine_on(&mut self, engine: Arc<Engine>, threads: usize) -> usize {
        // A flush being built writes the debtors as they were at its cut, with the configuration of then.
        self.finish_cut();
        self.engine = engine;
        let (engine, now) = (&*self.engine, self.clock);
        // Runs of consecutive chunks, one per thread: joined in order, slots stay in order.
        let mut chunks: Vec<(u32, &mut [Debtor])> = self.store.chunks_mut().collect();
        let per = chunks.len().div_ceil(threads.max(1)).max(1);
        let mut groups = Vec::with_capacity(threads);
        while !chunks.is_empty() {
            let rest = chunks.split_off(per.min(chunks.len()));
            groups.push(std::mem::replace(&mut chunks, rest));
        }
        let mut parts: Vec<Rederived> = if groups.len() <= 1 {
            groups
                .into_iter()
                .map(|g| rederive(engine, now, g))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = groups
                    .into_iter()
                    .map(|g| scope.spawn(move || rederive(engine, now, g)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        let mut changed = 0;
        for slot in parts.iter_mut().flat_map(|p| p.changed.drain(..)) {
            self.changes.mark(slot);
            changed += 1;
        }
        let entries = parts.into_iter().flat_map(|p| p.entries);
        self.queues = QueueBook::rebuild(&self.engine.queues, entries);
        changed
    }

    /// A debtor's latest decisions still in the partition's bounded history, newest first.
    pub fn recent_decisions(&self, id: &str, n: usize) -> Vec<&mora_domain::action::AuditRecord> {
        self.recent
            .iter()
            .rev()
            .filter(|r| r.debtor_id == id)
            .take(n)
            .collect()
    }

    /// The partition this worker owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// KPI counters over the `days` days up to the partition's clock, with current populations.
    pub fn kpis(&self, days: i64) -> std::collections::BTreeMap<Dim, KpiCounts> {
        self.kpis.window(self.clock, days, self.store.iter())
    }

    /// KPI days counted into since the last call, labelled (for the state store).
    pub fn take_kpi_days(&mut self) -> Vec<(i64, LabelledDay)> {
        self.kpis.take_dirty(&self.engine)
    }

    /// Loads KPI days stored by an earlier owner of the partition; returns how many counters named a segment or arm
    /// the configuration no longer has (dropped).
    pub fn load_kpi_days(&mut self, days: impl IntoIterator<Item = (i64, LabelledDay)>) -> usize {
        let today = self.clock.0.div_euclid(mora_domain::time::DAY_MS);
        self.kpis.load(&self.engine, today, days)
    }

    /// The partition's picture for other instances: portfolio, KPI populations, and the first `queue_depth` entries
    /// of every work queue.
    pub fn summary(&self, queue_depth: usize) -> PartitionSummary {
        let mut walk = SummaryWalk::new(queue_depth);
        walk.step(&self.store, None);
        self.summary_of(walk)
    }

    /// The summary a finished walk gathered, with the work queues' heads as they are now.
    fn summary_of(&self, walk: SummaryWalk) -> PartitionSummary {
        let e = &self.engine;
        let queues = e
            .queues
            .names()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let entries = self
                    .queues
                    .iter_from(i, None)
                    .take(walk.depth)
                    .map(|(rank, slot)| QueueEntry::of(e, rank, *slot, self.store.get(*slot)))
                    .collect();
                let head = QueueHead {
                    len: self.queues.len(i) as u64,
                    entries,
                };
                (name.clone(), head)
            })
            .collect();
        PartitionSummary {
            partition: self.partition,
            clock: self.clock,
            populations: label_dims(e, &walk.populations),
            portfolio: walk.portfolio.finish(e),
            queues,
        }
    }

    /// The work queue `name` in order (rank, then slot), from after `cursor` (a previous page's last rank and slot),
    /// at most `n`: each entry's rank, slot and debtor.
    pub fn queue_page(
        &self,
        name: &str,
        cursor: Option<(i64, u32)>,
        n: usize,
    ) -> Vec<(i64, u32, &Debtor)> {
        let Some(i) = self.engine.queues.index(name) else {
            return Vec::new();
        };
        self.queues
            .iter_from(i, cursor.as_ref())
            .take(n)
            .map(|(p, slot)| (p, *slot, self.store.get(*slot)))
            .collect()
    }

    /// Brings the queues and the timer index in line with the debtor's new derived state; `before` is its queue
    /// key and wake before the change.
    fn sync(&mut self, slot: u32, before: ((u32, i64), Ts)) {
        self.changes.mark(slot);
        let d = self.store.get(slot);
        let after = (self.queue_key(d), d.next_wake);
        self.queues.update(&slot, before.0, after.0);
        let store = &self.store;
        self.timers
            .reschedule(slot, before.1, after.1, |s| store.get(s).next_wake);
    }

    /// Where `d` sits in the work queues: the queues it belongs in and its rank there
    /// ([`PriorityWeights::queue_rank`](mora_domain::priority::PriorityWeights::queue_rank)), which does not decay
    /// between evaluations.
    fn queue_key(&self, d: &Debtor) -> (u32, i64) {
        match d.derived.queues {
            0 => (0, 0),
            q => (q, self.engine.priority.queue_rank(d)),
        }
    }

    /// Sends what deciding for the debtor at `slot` produced (`None`: a new debtor's refused event) and counts it.
    fn flush(&mut self, slot: Option<u32>, sink: &mut dyn Sink) {
        let debtor = slot.map(|s| self.store.get(s));
        for a in &self.out.actions {
            self.stats.count_action(a);
            debug_assert!(
                debtor.is_none_or(|d| d.id == a.debtor_id),
                "one debtor per flush"
            );
            if let Some(d) = debtor {
                self.kpis.action(self.clock, d, a);
            }
            sink.action(self.partition, a);
        }
        self.out.actions.clear();
        // The records move into the recent buffer once sent (no copy).
        for r in self.out.audits.drain(..) {
            self.stats.count_audit(&r);
            debug_assert!(
                debtor.is_none_or(|d| d.id == r.debtor_id),
                "one debtor per flush"
            );
            if matches!(
                r.kind,
                mora_domain::action::DecisionKind::PromiseKept
                    | mora_domain::action::DecisionKind::PromiseBroken
            ) && let Some(d) = debtor
            {
                self.kpis.audit(self.clock, d, &r);
            }
            sink.audit(self.partition, &r);
            if self.recent.len() == RECENT_DECISIONS {
                self.recent.pop_front();
            }
            self.recent.push_back(r);
        }
    }

    /// A clock record: time moves to its instant (a tick for another partition is refused: the clock topic must be
    /// co-partitioned with the inputs like any other).
    fn on_clock_record(&mut self, rec: &InputRecord<'_>, sink: &mut dyn Sink) {
        let decoded = match rec.writer {
            Some(w) => w.decode_clock(rec.payload),
            None => decode_clock(rec.payload),
        };
        match decoded {
            Ok(t) if t.partition == self.partition => {
                self.stats.clock_records += 1;
                self.advance_to(t.at, sink);
            }
            Ok(t) => {
                self.stats.rejected += 1;
                let reason = format!(
                    "clock record for partition {} on partition {}",
                    t.partition, self.partition
                );
                self.dead_letter(rec, "rejected", reason, sink);
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                self.dead_letter(rec, "decode", e.to_string(), sink);
            }
        }
    }

    fn dead_letter(
        &mut self,
        rec: &InputRecord<'_>,
        kind: &str,
        reason: String,
        sink: &mut dyn Sink,
    ) {
        sink.dead_letter(
            self.partition,
            DeadLetter {
                topic: rec.topic.into(),
                partition: rec.partition,
                offset: rec.offset,
                key: rec.key.map(<[u8]>::to_vec),
                payload: rec.payload.to_vec(),
                error_kind: CompactString::from(kind),
                reason,
                at: self.clock,
            },
        );
    }

    /// Portfolio figures of this partition. Tallied by index in one pass (no allocation per debtor, amounts in the
    /// base currency summed as integers), named after. The walk loads a few debtors' obligations side by side
    /// before reading them ([`Debtor::touch_obligations`]): a debtor with more than one keeps them on the heap.
    pub fn portfolio(&self) -> Portfolio {
        let mut walk = SummaryWalk::new(0);
        walk.step(&self.store, None);
        walk.portfolio.finish(&self.engine)
    }

    /// The first `n` debtors of work queue `name` in order, with their ranks (ties by slot, i.e. first seen).
    pub fn queue_top(&self, name: &str, n: usize) -> Vec<(i64, DebtorId)> {
        let Some(i) = self.engine.queues.index(name) else {
            return Vec::new();
        };
        self.queues
            .iter_from(i, None)
            .take(n)
            .map(|(p, slot)| (p, self.store.get(*slot).id.clone()))
            .collect()
    }

    /// Number of debtors in work queue `name`.
    pub fn queue_len(&self, name: &str) -> usize {
        self.engine
            .queues
            .index(name)
            .map_or(0, |i| self.queues.len(i))
    }
}

fn family_index(f: Family) -> usize {
    Family::ALL.iter().position(|x| *x == f).unwrap_or(0)
}

impl Operator for PartitionWorker {
    fn process(&mut self, rec: &InputRecord<'_>, sink: &mut dyn Sink) {
        self.stats.records += 1;
        let i = family_index(rec.family);
        self.positions[i] = self.positions[i].max(rec.offset + 1);
        if rec.family == Family::Clock {
            self.on_clock_record(rec, sink);
            return;
        }
        let decoded = match rec.writer {
            Some(w) => w.decode_event(rec.family, rec.payload),
            None => decode_event(rec.family, rec.payload),
        };
        match decoded {
            Ok(ev) => {
                if let Some(key) = rec.key.filter(|k| *k != ev.debtor_id.as_bytes()) {
                    let reason = format!(
                        "record key `{}` differs from debtor_id `{}`: the record may be on the wrong partition",
                        String::from_utf8_lossy(key),
                        ev.debtor_id
                    );
                    self.stats.rejected += 1;
                    self.dead_letter(rec, "rejected", reason, sink);
                    return;
                }
                if !self.fences.is_empty()
                    && fenced(&self.fences, &ev.debtor_id, rec.family, rec.offset)
                {
                    // Already in the debtor's stored state: only time moves.
                    self.advance_to(ev.occurred_at, sink);
                    self.stats.skipped += 1;
                    return;
                }
                if let Err(e) = self.on_event(&ev, sink) {
                    self.dead_letter(rec, "rejected", e.to_string(), sink);
                }
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                self.dead_letter(rec, "decode", e.to_string(), sink);
            }
        }
    }

    fn on_tick(&mut self, now: Ts, sink: &mut dyn Sink) {
        self.advance_to(now, sink);
    }

    /// Loads the debtors of up to [`PREPARE_AHEAD`] of `keys` side by side ([`DebtorStore::touch`]); debtors not yet
    /// seen and keys that are not text are passed over (processing them refuses or creates them as usual).
    fn prepare(&self, keys: &[&[u8]]) {
        let mut slots = [0u32; PREPARE_AHEAD];
        let mut n = 0;
        for key in keys.iter().take(PREPARE_AHEAD) {
            if let Some(slot) = std::str::from_utf8(key)
                .ok()
                .and_then(|id| self.store.find(id))
            {
                slots[n] = slot;
                n += 1;
            }
        }
        self.store.touch(&slots[..n]);
    }
}

/// What a reload found in some of a partition's debtors: the slots whose segment, priority, queues, stage or bucket
/// changed, and the queue entries of those in a queue.
struct Rederived {
    changed: Vec<u32>,
    entries: Vec<(u32, i64, u32)>,
}

/// Debtors per thread below which a reload stays on the engine thread (a thread costs tens of microseconds).
const RELOAD_DEBTORS_PER_THREAD: usize = 250_000;

/// Threads a reload of `debtors` debtors uses: one per [`RELOAD_DEBTORS_PER_THREAD`], at most one per core.
fn reload_threads(debtors: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (debtors / RELOAD_DEBTORS_PER_THREAD).clamp(1, cores)
}

/// Re-derives the debtors of `chunks` (each with the slot of its first debtor) with `engine` at `now`.
fn rederive(engine: &Engine, now: Ts, chunks: Vec<(u32, &mut [Debtor])>) -> Rederived {
    let mut out = Rederived {
        changed: Vec::new(),
        entries: Vec::new(),
    };
    for (first, chunk) in chunks {
        for (slot, d) in (first..).zip(chunk.iter_mut()) {
            let before = (
                d.derived.segment,
                d.derived.priority,
                d.derived.queues,
                d.derived.stage,
                d.derived.bucket,
            );
            engine.reclassify(d, now);
            let dv = &d.derived;
            if before != (dv.segment, dv.priority, dv.queues, dv.stage, dv.bucket) {
                out.changed.push(slot);
            }
            if dv.queues != 0 {
                out.entries
                    .push((dv.queues, engine.priority.queue_rank(d), slot));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mora_domain::testkit::{self, ts};
    use mora_schemas::{Family, Wire, encode_event};

    use super::*;
    use crate::sink::CollectingSink;

    fn worker() -> PartitionWorker {
        PartitionWorker::new(3, Arc::new(testkit::engine()))
    }

    fn record<'a>(
        family: Family,
        key: &'a [u8],
        payload: &'a [u8],
        offset: i64,
    ) -> InputRecord<'a> {
        InputRecord {
            family,
            topic: "mora.in.test",
            partition: 3,
            offset,
            key: Some(key),
            payload,
            writer: None,
        }
    }

    #[test]
    fn undecodable_record_is_dead_lettered_with_its_origin_and_the_partition_moves_on() {
        let (mut w, mut sink) = (worker(), CollectingSink::default());
        w.process(
            &record(Family::Payment, b"D-1", b"\x02garbage", 41),
            &mut sink,
        );
        let ev =
            testkit::debtor_upserted("D-1", "CO", "America/Bogota", ts("2026-03-02T14:00:00Z"));
        let bytes = encode_event(&ev, Wire::Confluent).unwrap();
        w.process(&record(Family::Account, b"D-1", &bytes, 42), &mut sink);
        assert_eq!(sink.dead_letters.len(), 1);
        let dl = &sink.dead_letters[0];
        assert_eq!(
            (
                dl.topic.as_str(),
                dl.partition,
                dl.offset,
                dl.error_kind.as_str()
            ),
            ("mora.in.test", 3, 41, "decode")
        );
        assert_eq!(dl.payload, b"\x02garbage");
        assert!(w.debtor("D-1").is_some(), "the next record was applied");
        assert_eq!((w.stats().decode_errors, w.stats().records), (1, 2));
    }

    #[test]
    fn debtors_of_a_jurisdiction_without_policy_are_counted() {
        let (mut w, mut sink) = (worker(), CollectingSink::default());
        let at = ts("2026-03-02T14:00:00Z");
        for (id, country, tz) in [
            ("D-1", "CO", "America/Bogota"),
            ("D-2", "BR", "America/Sao_Paulo"),
            ("D-3", "BR", "America/Sao_Paulo"),
        ] {
            w.on_event(&testkit::debtor_upserted(id, country, tz, at), &mut sink)
                .unwrap();
        }
        assert_eq!(w.jurisdictions_without_policy(), vec![("BR".into(), 2)]);
    }

    #[test]
    fn a_key_that_is_not_the_debtor_is_refused() {
        let (mut w, mut sink) = (worker(), CollectingSink::default());
        let ev =
            testkit::debtor_upserted("D-1", "CO", "America/Bogota", ts("2026-03-02T14:00:00Z"));
        let bytes = encode_event(&ev, Wire::Raw).unwrap();
        w.process(&record(Family::Account, b"D-2", &bytes, 7), &mut sink);
        assert_eq!(sink.dead_letters.len(), 1);
        assert!(
            sink.dead_letters[0]
                .reason
                .contains("differs from debtor_id")
        );
        assert!(w.is_empty());
    }

    #[test]
    fn a_refused_event_leaves_no_debtor_behind() {
        let (mut w, mut sink) = (worker(), CollectingSink::default());
        let bad = testkit::reversal("D-9", "never-paid", ts("2026-03-02T14:00:00Z"));
        let bytes = encode_event(&bad, Wire::Confluent).unwrap();
        w.process(&record(Family::Payment, b"D-9", &bytes, 1), &mut sink);
        assert!(w.is_empty());
        assert_eq!(sink.dead_letters[0].error_kind, "rejected");
        assert!(sink.dead_letters[0].reason.contains("never-paid"));
    }

    #[test]
    fn a_reload_shared_among_threads_changes_the_same_debtors_and_queues_as_one() {
        // Past two chunks of the slab, so the threads get several runs of chunks each.
        let build = || {
            let (mut w, mut sink) = (worker(), CollectingSink::default());
            let at = ts("2026-03-02T14:00:00Z");
            for i in 0..9_000 {
                let id = format!("D-{i:05}");
                let due = ["2026-02-01", "2026-02-20", "2026-03-01"][i % 3];
                let amount = format!("{}", 50 + i % 700);
                for ev in [
                    testkit::debtor_upserted(&id, "CO", "America/Bogota", at),
                    testkit::obligation(&id, &format!("{id}-L"), "USD", &amount, due, at),
                ] {
                    w.on_event(&ev, &mut sink).unwrap();
                }
            }
            let _ = w.take_changed();
            w
        };
        let mut cfg = testkit::engine_config();
        cfg.priority.dpd *= 3.0;
        let other =
            Arc::new(Engine::new(&cfg, &testkit::policies(), &testkit::calendars()).unwrap());
        let (mut one, mut three) = (build(), build());
        let changed = one.set_engine_on(other.clone(), 1);
        assert!(changed > 0, "the new weights move some debtors");
        assert_eq!(three.set_engine_on(other, 3), changed);
        let ids = |w: &mut PartitionWorker| -> Vec<String> {
            w.take_changed()
                .iter()
                .map(|(d, _)| d.id.to_string())
                .collect()
        };
        assert_eq!(ids(&mut one), ids(&mut three));
        assert_eq!(
            one.queue_top("dialer", usize::MAX),
            three.queue_top("dialer", usize::MAX)
        );
        assert!(!one.queue_top("dialer", usize::MAX).is_empty());
    }

    #[test]
    fn loading_debtors_ahead_changes_no_decision() {
        // Two workers given the same records, one told each time which debtors come next.
        let (mut plain, mut hinted) = (worker(), worker());
        let (mut a, mut b) = (CollectingSink::default(), CollectingSink::default());
        let at = ts("2026-03-02T14:00:00Z");
        let mut events = Vec::new();
        for i in 0..12 {
            let id = format!("D-{i}");
            events.push(testkit::debtor_upserted(&id, "CO", "America/Bogota", at));
            events.push(testkit::obligation(
                &id,
                "L1",
                "COP",
                "400000",
                "2026-03-10",
                at,
            ));
        }
        let encoded: Vec<(Family, Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|ev| {
                let family = mora_schemas::family_of(&ev.kind).0;
                let key = ev.debtor_id.as_bytes().to_vec();
                (family, key, encode_event(ev, Wire::Confluent).unwrap())
            })
            .collect();
        for (i, (family, key, bytes)) in encoded.iter().enumerate() {
            let keys: Vec<&[u8]> = encoded[i..].iter().map(|(_, k, _)| k.as_slice()).collect();
            hinted.prepare(&keys);
            plain.process(&record(*family, key, bytes, i as i64), &mut a);
            hinted.process(&record(*family, key, bytes, i as i64), &mut b);
        }
        // Weeks later: every debtor's timers fire, loaded ahead in both.
        plain.on_tick(ts("2026-04-30T00:00:00Z"), &mut a);
        hinted.on_tick(ts("2026-04-30T00:00:00Z"), &mut b);
        assert!(a.actions.len() > 12, "steps fired: {}", a.actions.len());
        assert_eq!(a.actions, b.actions);
        assert_eq!(a.audits, b.audits);
        let states = |w: &PartitionWorker| w.debtors().cloned().collect::<Vec<_>>();
        assert_eq!(states(&plain), states(&hinted));
    }

    #[test]
    fn timers_fire_at_their_own_instant_without_events() {
        let (mut w, mut sink) = (worker(), CollectingSink::default());
        let at = ts("2026-03-02T14:00:00Z");
        w.on_event(
            &testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
            &mut sink,
        )
        .unwrap();
        w.on_event(
            &testkit::obligation("D-1", "L1", "COP", "400000", "2026-03-10", at),
            &mut sink,
        )
        .unwrap();
        assert_eq!(w.pending_timers(), 1);
        // The e-mail step is due 2026-03-07 09:00 Bogota (14:00Z); a tick far later fires it at that instant.
        w.on_tick(ts("2026-03-08T00:00:00Z"), &mut sink);
        assert_eq!(sink.actions.len(), 1);
        assert_eq!(sink.actions[0].not_before, ts("2026-03-07T14:00:00Z"));
        assert_eq!(w.clock(), ts("2026-03-08T00:00:00Z"));
        assert_eq!(w.queue_len("dialer"), 0, "not yet past due");
        w.on_tick(ts("2026-03-11T06:00:00Z"), &mut sink);
        assert_eq!(
            w.queue_len("dialer"),
            1,
            "one day past due at local midnight: enters the dialer queue"
        );
        assert_eq!(w.queue_top("dialer", 5)[0].1, "D-1");
    }
}
