//! The pipeline's side of the state store: restoring an assigned partition, cutting coalesced flushes right after a
//! commit (so that every flushed debtor reflects only committed input) and building them a slice at a time, and
//! pausing input while the database is behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_domain::action::{Action, AuditRecord};
use mora_domain::engine::Engine;
use mora_runtime::{
    Checkpoint, Fences, PartitionFlush, PartitionWorker, StateStore, StoreSettings, StoreStats,
    Sweep,
};
use tracing::{info, warn};

use crate::config::TopicsConfig;
use crate::error::PipelineError;

/// How long a partition waits for the database at assignment before the instance gives up.
const RESTORE_PATIENCE: Duration = Duration::from_secs(120);
/// How long releasing partitions waits for their last flush.
pub(crate) const RELEASE_PATIENCE: Duration = Duration::from_secs(30);

/// Actions and audit records decided since the last flush, for the ledger tables.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub actions: Vec<Action>,
    pub audits: Vec<AuditRecord>,
    /// Whether audit records are kept (`state.audit_ledger`).
    pub keep_audits: bool,
    /// When the partition's summary was last published (`None`: not by this instance yet).
    pub summary_at: Option<Instant>,
    /// Whether the partition changed since its summary was last published.
    pub summary_stale: bool,
    /// The pass rewriting the partition's debtors a few per flush, when the store compacts a log.
    pub sweep: Sweep,
}

/// A partition's worker as restored, and where reading resumes per input topic (`None`: from the beginning).
pub(crate) struct RestoredSlot {
    pub worker: PartitionWorker,
    pub starts: BTreeMap<String, i64>,
}

/// Per-partition bookkeeping the flushes need.
pub(crate) struct FlushSource<'a> {
    pub partition: i32,
    pub worker: &'a mut PartitionWorker,
    pub ledger: &'a mut Ledger,
    /// Next offset per input topic of the records applied.
    pub applied: &'a BTreeMap<String, i64>,
    /// The cut of the previous flush of this partition.
    pub flushed: &'a mut BTreeMap<String, i64>,
}

impl FlushSource<'_> {
    /// Whether anything changed since the last flush: debtors, ledger entries or the applied cut.
    fn changed(&self) -> bool {
        self.worker.changed_count() > 0
            || !self.ledger.actions.is_empty()
            || !self.ledger.audits.is_empty()
            || self.applied != &*self.flushed
    }

    /// Whether the partition's summary should be published again after `interval`.
    fn summary_wanted(&self, interval: Duration) -> bool {
        (self.ledger.summary_stale || self.changed())
            && self
                .ledger
                .summary_at
                .is_none_or(|t| t.elapsed() >= interval)
    }
}

/// The state store as the pipeline uses it.
pub(crate) struct Durable {
    handle: Box<dyn StateStore>,
    settings: StoreSettings,
    last_flush: Instant,
    paused: bool,
    pub pauses: u64,
    /// The flush of the last cut, while its partitions' rows are being encoded.
    round: Option<Round>,
}

/// One flush of every changed partition, cut at a commit and built a slice at a time.
#[derive(Debug, Default)]
struct Round {
    /// Partitions whose flush is still being built.
    waiting: BTreeSet<i32>,
    /// Partitions' flushes built.
    done: Vec<PartitionFlush>,
    /// When the cut was taken.
    cut_at: Option<Instant>,
    /// Calls that built part of it.
    slices: u32,
    /// Per partition, debtors encoded early because they changed before their turn.
    early: BTreeMap<i32, usize>,
}

impl Durable {
    pub(crate) fn new(handle: Box<dyn StateStore>) -> Self {
        Self {
            settings: handle.settings(),
            handle,
            last_flush: Instant::now(),
            paused: false,
            pauses: 0,
            round: None,
        }
    }

    /// Restores partition `p`: its stored debtors and clock, fences for debtors stored ahead of the checkpoint,
    /// and the checkpoint's offsets to resume from.
    pub(crate) fn restore(
        &mut self,
        p: i32,
        engine: &Arc<Engine>,
        topics: &TopicsConfig,
    ) -> Result<RestoredSlot, PipelineError> {
        let r =
            self.handle
                .restore(p, RESTORE_PATIENCE)
                .map_err(|source| PipelineError::Restore {
                    partition: p,
                    source,
                })?;
        let cp = r.checkpoint.unwrap_or_default();
        let mut fences = Fences::new();
        for (id, applied) in r.ahead {
            // Only families the row is ahead in: records at or past the checkpoint elsewhere are new to it.
            let per_family: Vec<_> = applied
                .iter()
                .filter(|(t, o)| **o > cp.offsets.get(*t).copied().unwrap_or(0))
                .filter_map(|(t, o)| topics.family_of(t).map(|f| (f, *o)))
                .collect();
            fences.insert(id, per_family);
        }
        info!(
            partition = p,
            debtors = r.debtors.len(),
            ahead = fences.len(),
            checkpoint = ?cp.offsets,
            "Partition restored from the state store."
        );
        let mut worker = PartitionWorker::restore(p, engine.clone(), cp.clock, r.debtors, fences);
        for (jurisdiction, debtors) in worker.jurisdictions_without_policy() {
            warn!(
                partition = p,
                %jurisdiction,
                debtors,
                "No policy covers this jurisdiction: every contact action for its debtors is blocked \
                 (unknown_jurisdiction). Add a policy file for it."
            );
        }
        let dropped = worker.load_kpi_days(r.kpi_days);
        if dropped > 0 {
            warn!(
                partition = p,
                dropped,
                "Stored KPI counters name segments or strategy arms the configuration no longer has."
            );
        }
        Ok(RestoredSlot {
            worker,
            starts: cp.offsets,
        })
    }

    /// Whether a flush is due: none in flight and the interval passed.
    pub(crate) fn due(&mut self) -> bool {
        let _ = self.handle.poll();
        !self.handle.busy() && self.last_flush.elapsed() >= self.settings.flush_interval
    }

    /// Cuts a flush of every partition's changes since the last one: its checkpoint, ledger entries and KPI days
    /// are taken now, and each changed partition's worker begins encoding its rows as they are now
    /// ([`PartitionWorker::begin_flush`]); [`Durable::build`] encodes them, then gathers the summary if one is due,
    /// a slice at a time, and hands the flush to the store once whole (with `final_flush`, all at once here). Call
    /// right after a commit.
    ///
    /// Partitions changed since their summary was published publish it again every `state.summary_interval`, or
    /// now with `final_flush` (partitions released, or the instance stopping). Outside a final flush one
    /// partition's summary is taken per flush, the one published longest ago among those due: each walks the
    /// partition's debtors while the engine thread waits (tens of milliseconds at a few hundred thousand debtors),
    /// and all of an instance's partitions falling due at once made one pause of their sum.
    ///
    /// Does nothing while the last cut's flush is being built or is still out (a final flush after
    /// [`Durable::settle`] ran out of patience): two flushes side by side could land the second's checkpoint before
    /// the first's ledger, and a stop would then lose what the first decided. The changes stay in the workers for
    /// the next flush, or for the next owner's replay from the last checkpoint stored.
    pub(crate) fn flush(
        &mut self,
        final_flush: bool,
        sources: &mut [FlushSource<'_>],
    ) -> Result<(), PipelineError> {
        let _ = self.handle.poll();
        // One flush at a time, the last cut's built and landed first.
        if self.handle.busy() || self.round.is_some() {
            return Ok(());
        }
        let (interval, depth) = (
            self.settings.summary_interval,
            self.settings.summary_queue_depth,
        );
        let summarised = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.summary_wanted(interval))
            .min_by_key(|(_, s)| s.ledger.summary_at)
            .map(|(i, _)| i);
        let mut round = Round::default();
        for (i, s) in sources.iter_mut().enumerate() {
            let changed = s.changed();
            s.ledger.summary_stale |= changed;
            let summary_due = s.ledger.summary_stale && (final_flush || summarised == Some(i));
            if !changed && !summary_due {
                continue;
            }
            let mut f = PartitionFlush {
                partition: s.partition,
                checkpoint: Arc::new(Checkpoint {
                    offsets: s.applied.clone(),
                    clock: s.worker.clock(),
                }),
                actions: std::mem::take(&mut s.ledger.actions),
                audits: std::mem::take(&mut s.ledger.audits),
                ..PartitionFlush::default()
            };
            // KPI days now (they belong with the checkpoint); the summary over the build's slices.
            f.add_aggregates(s.worker, None)?;
            let sweep = self.settings.sweep.then_some(&mut s.ledger.sweep);
            s.worker.begin_flush(
                f,
                sweep,
                self.settings.membership_views,
                summary_due.then_some(depth),
            );
            round.waiting.insert(s.partition);
            if summary_due {
                s.ledger.summary_at = Some(Instant::now());
                s.ledger.summary_stale = false;
            }
            s.flushed.clone_from(s.applied);
        }
        self.last_flush = Instant::now();
        if !round.waiting.is_empty() {
            round.cut_at = Some(Instant::now());
            self.round = Some(round);
            if final_flush {
                self.build(sources, None)?;
            }
        }
        Ok(())
    }

    /// Encodes more of the flush begun at the last cut ([`Durable::flush`]), partition after partition, until it is
    /// whole or `until` passes (`None`: to the end); once whole it is handed to the store (as soon as none is out).
    pub(crate) fn build(
        &mut self,
        sources: &mut [FlushSource<'_>],
        until: Option<Instant>,
    ) -> Result<(), PipelineError> {
        let Some(round) = self.round.as_mut() else {
            return Ok(());
        };
        let mut present = BTreeSet::new();
        for s in sources.iter_mut() {
            present.insert(s.partition);
            if !round.waiting.contains(&s.partition) {
                continue;
            }
            // Debtors are encoded early between slices: what the cut counts before this one is all of them so far.
            round
                .early
                .insert(s.partition, s.worker.flush_encoded_early());
            if let Some(f) = s.worker.build_flush(until)? {
                round.waiting.remove(&s.partition);
                round.done.push(f);
            } else if until.is_some_and(|u| Instant::now() >= u) {
                round.slices += 1;
                return Ok(());
            }
        }
        round.slices += 1;
        // A partition dropped before its flush was built (never, by the pipeline's own order) loses that flush:
        // its next owner replays from the checkpoint before.
        let gone: Vec<i32> = round.waiting.difference(&present).copied().collect();
        for p in gone {
            warn!(
                partition = p,
                "A partition left before its state flush was built; it is not written."
            );
            round.waiting.remove(&p);
        }
        if !round.waiting.is_empty() || self.handle.busy() {
            return Ok(());
        }
        let Some(mut round) = self.round.take() else {
            return Ok(());
        };
        round.done.sort_by_key(|f| f.partition);
        let rows: usize = round.done.iter().map(|f| f.rows.len()).sum();
        tracing::debug!(
            rows,
            slices = round.slices,
            encoded_early = round.early.values().sum::<usize>(),
            since_cut = ?round.cut_at.map(|t| t.elapsed()),
            "State flush built."
        );
        self.handle.submit(round.done);
        Ok(())
    }

    /// Whether the flush of the last cut is still being built (or waits for the store to take it).
    pub(crate) fn building(&self) -> bool {
        self.round.is_some()
    }

    /// Waits for the flush in flight (releasing partitions, stopping).
    pub(crate) fn settle(&mut self, patience: Duration) -> bool {
        let done = self.handle.wait(patience);
        if !done {
            warn!(
                "The last flush did not complete in time; the next owner replays from the previous checkpoint."
            );
        }
        done
    }

    /// Whether input should be paused (the database is further behind than `max_lag`), and whether that changed.
    pub(crate) fn should_pause(&mut self) -> (bool, bool) {
        let _ = self.handle.poll();
        let behind = self.handle.lag() > self.settings.max_lag;
        let changed = behind != self.paused;
        if changed {
            self.paused = behind;
            if behind {
                self.pauses += 1;
                warn!(lag = ?self.handle.lag(), "The state store is behind; pausing input until it catches up.");
            } else {
                info!("The state store caught up; resuming input.");
            }
        }
        (behind, changed)
    }

    /// An empty ledger for a partition, keeping audit records only if they are stored.
    pub(crate) fn ledger(&self) -> Ledger {
        Ledger {
            keep_audits: self.settings.audit_ledger,
            ..Ledger::default()
        }
    }

    /// Whether input is paused for the store.
    pub(crate) fn holding(&self) -> bool {
        self.paused
    }

    pub(crate) fn stats(&self) -> StoreStats {
        self.handle.stats()
    }

    /// Milliseconds since the last flush completed (the age of the oldest change not yet stored, at most).
    pub(crate) fn lag_ms(&self) -> u64 {
        self.handle.since_last_flush().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    //! The pipeline's side of the port, driven by a test double of the store: what a flush carries, and when
    //! input pauses. The ScyllaDB store itself is tested against the database (`mora-tests`, `services`).

    use std::sync::Mutex;

    use mora_domain::testkit::{self, ts};
    use mora_runtime::{CollectingSink, Restored, StoreError};

    use super::*;

    /// A store that keeps what it is given and is as far behind as the test says.
    #[derive(Debug, Default)]
    struct FakeStore {
        submitted: Arc<Mutex<Vec<PartitionFlush>>>,
        lag: Arc<Mutex<Duration>>,
        busy: Arc<Mutex<bool>>,
        /// `membership_views = false`.
        no_views: bool,
        /// `summary_interval` (`None`: an hour).
        summary_interval: Option<Duration>,
    }

    impl StateStore for FakeStore {
        fn settings(&self) -> StoreSettings {
            StoreSettings {
                flush_interval: Duration::ZERO,
                max_lag: Duration::from_secs(1),
                audit_ledger: true,
                membership_views: !self.no_views,
                summary_interval: self.summary_interval.unwrap_or(Duration::from_secs(3600)),
                summary_queue_depth: 10,
                sweep: false,
            }
        }
        fn restore(&mut self, _: i32, _: Duration) -> Result<Restored, StoreError> {
            Ok(Restored::default())
        }
        fn submit(&mut self, flushes: Vec<PartitionFlush>) {
            self.submitted.lock().unwrap().extend(flushes);
        }
        fn poll(&mut self) -> Option<bool> {
            None
        }
        fn busy(&self) -> bool {
            *self.busy.lock().unwrap()
        }
        fn wait(&mut self, _: Duration) -> bool {
            true
        }
        fn lag(&self) -> Duration {
            *self.lag.lock().unwrap()
        }
        fn since_last_flush(&self) -> Duration {
            Duration::ZERO
        }
        fn stats(&self) -> StoreStats {
            StoreStats::default()
        }
        fn another(&self) -> Box<dyn StateStore> {
            Box::new(FakeStore {
                submitted: self.submitted.clone(),
                lag: self.lag.clone(),
                busy: self.busy.clone(),
                no_views: self.no_views,
                summary_interval: self.summary_interval,
            })
        }
    }

    /// A flush cut and built whole at once.
    fn flush_whole<'a>(
        durable: &mut Durable,
        final_flush: bool,
        sources: impl Iterator<Item = FlushSource<'a>>,
    ) {
        let mut sources: Vec<FlushSource<'a>> = sources.collect();
        durable.flush(final_flush, &mut sources).unwrap();
        durable.build(&mut sources, None).unwrap();
    }

    /// Partition p's flush source from the p-th of each.
    fn sources<'a>(
        workers: &'a mut [PartitionWorker],
        ledgers: &'a mut [Ledger],
        applied: &'a [BTreeMap<String, i64>],
        flushed: &'a mut [BTreeMap<String, i64>],
    ) -> impl Iterator<Item = FlushSource<'a>> {
        workers
            .iter_mut()
            .zip(ledgers.iter_mut())
            .zip(applied.iter())
            .zip(flushed.iter_mut())
            .enumerate()
            .map(|(p, (((worker, ledger), applied), flushed))| FlushSource {
                partition: p as i32,
                worker,
                ledger,
                applied,
                flushed,
            })
    }

    #[test]
    fn a_flush_carries_the_changed_partitions_only_each_with_its_cut() {
        let store = FakeStore::default();
        let submitted = store.submitted.clone();
        let mut durable = Durable::new(Box::new(store));
        let engine = Arc::new(testkit::engine());
        let mut workers = [
            PartitionWorker::new(0, engine.clone()),
            PartitionWorker::new(1, engine.clone()),
        ];
        let at = ts("2026-03-02T14:00:00Z");
        let mut sink = CollectingSink::default();
        workers[0]
            .on_event(
                &testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
                &mut sink,
            )
            .unwrap();
        let mut ledgers = [durable.ledger(), durable.ledger()];
        let applied = [
            BTreeMap::from([("in.account".to_string(), 8)]),
            BTreeMap::new(),
        ];
        let mut flushed = [BTreeMap::new(), BTreeMap::new()];
        flush_whole(
            &mut durable,
            false,
            sources(&mut workers, &mut ledgers, &applied, &mut flushed),
        );
        let got = submitted.lock().unwrap();
        assert_eq!(got.len(), 1, "the untouched partition is not flushed");
        assert_eq!(got[0].partition, 0);
        assert_eq!(got[0].rows.len(), 1);
        assert_eq!(got[0].rows[0].debtor_id, "D-1");
        assert_eq!(got[0].checkpoint.offsets, applied[0]);
        assert_eq!(flushed[0], applied[0], "the cut flushed is remembered");
        assert!(
            !got[0].views.is_empty(),
            "a new debtor joins its segment's view"
        );
    }

    #[test]
    fn one_summary_per_flush_the_oldest_due_first_and_every_one_in_a_final_flush() {
        let store = FakeStore {
            summary_interval: Some(Duration::ZERO),
            ..FakeStore::default()
        };
        let submitted = store.submitted.clone();
        let mut durable = Durable::new(Box::new(store));
        let engine = Arc::new(testkit::engine());
        let mut workers: Vec<PartitionWorker> = (0..3)
            .map(|p| PartitionWorker::new(p, engine.clone()))
            .collect();
        let mut ledgers: Vec<Ledger> = (0..3).map(|_| durable.ledger()).collect();
        let mut flushed = vec![BTreeMap::new(); 3];
        let mut summarised = |round: i64, final_flush: bool| -> Vec<i32> {
            // Every partition moved on since the last flush.
            let applied = vec![BTreeMap::from([("in.account".to_string(), round)]); 3];
            let sources = sources(&mut workers, &mut ledgers, &applied, &mut flushed);
            flush_whole(&mut durable, final_flush, sources);
            let mut got = submitted.lock().unwrap();
            assert_eq!(got.len(), 3, "every changed partition is flushed");
            got.drain(..)
                .filter(|f| f.summary.is_some())
                .map(|f| f.partition)
                .collect()
        };
        let taken: Vec<Vec<i32>> = (1..=6).map(|round| summarised(round, false)).collect();
        assert_eq!(
            taken,
            [[0], [1], [2], [0], [1], [2]],
            "one summary per flush, the one published longest ago, so none is left behind"
        );
        assert_eq!(
            summarised(7, true),
            [0, 1, 2],
            "a final flush publishes them all"
        );
    }

    #[test]
    fn without_membership_views_a_flush_carries_the_rows_and_no_view_changes() {
        let store = FakeStore {
            no_views: true,
            ..FakeStore::default()
        };
        let submitted = store.submitted.clone();
        let mut durable = Durable::new(Box::new(store));
        let engine = Arc::new(testkit::engine());
        let mut worker = PartitionWorker::new(0, engine.clone());
        let at = ts("2026-03-02T14:00:00Z");
        worker
            .on_event(
                &testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
                &mut CollectingSink::default(),
            )
            .unwrap();
        let mut ledger = durable.ledger();
        let applied = BTreeMap::from([("in.account".to_string(), 1)]);
        let mut flushed = BTreeMap::new();
        let source = FlushSource {
            partition: 0,
            worker: &mut worker,
            ledger: &mut ledger,
            applied: &applied,
            flushed: &mut flushed,
        };
        flush_whole(&mut durable, false, std::iter::once(source));
        let got = submitted.lock().unwrap();
        assert_eq!(got[0].rows.len(), 1);
        assert!(got[0].views.is_empty(), "{:?}", got[0].views);
    }

    #[test]
    fn no_flush_starts_beside_one_still_out_and_its_changes_wait_for_the_next() {
        let store = FakeStore::default();
        let (submitted, busy) = (store.submitted.clone(), store.busy.clone());
        let mut durable = Durable::new(Box::new(store));
        let engine = Arc::new(testkit::engine());
        let mut worker = PartitionWorker::new(0, engine.clone());
        let at = ts("2026-03-02T14:00:00Z");
        let mut sink = CollectingSink::default();
        for ev in [
            testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
            testkit::obligation("D-1", "L-1", "COP", "900000", "2026-01-15", at),
        ] {
            worker.on_event(&ev, &mut sink).unwrap();
        }
        let mut ledger = durable.ledger();
        ledger.audits.extend(sink.audits.iter().cloned());
        assert!(
            !ledger.audits.is_empty(),
            "a past-due obligation is decided on"
        );
        let applied = BTreeMap::from([("in.account".to_string(), 1)]);
        let mut flushed = BTreeMap::new();
        let mut flush =
            |durable: &mut Durable, worker: &mut PartitionWorker, ledger: &mut Ledger| {
                let source = FlushSource {
                    partition: 0,
                    worker,
                    ledger,
                    applied: &applied,
                    flushed: &mut flushed,
                };
                flush_whole(durable, true, std::iter::once(source));
            };
        *busy.lock().unwrap() = true;
        flush(&mut durable, &mut worker, &mut ledger);
        assert!(
            submitted.lock().unwrap().is_empty(),
            "nothing submitted while a flush is out"
        );
        assert_eq!(worker.changed_count(), 1, "the change is kept");
        assert!(!ledger.audits.is_empty(), "the decisions are kept");
        *busy.lock().unwrap() = false;
        flush(&mut durable, &mut worker, &mut ledger);
        let got = submitted.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rows.len(), 1);
        assert!(!got[0].audits.is_empty(), "the kept decisions go with it");
    }

    #[test]
    fn input_pauses_while_the_store_is_behind_its_limit_and_resumes_when_it_catches_up() {
        let store = FakeStore::default();
        let lag = store.lag.clone();
        let mut durable = Durable::new(Box::new(store));
        assert_eq!(durable.should_pause(), (false, false));
        *lag.lock().unwrap() = Duration::from_secs(2);
        assert_eq!(durable.should_pause(), (true, true), "past max_lag: pause");
        assert_eq!(durable.should_pause(), (true, false), "still behind");
        assert!(durable.holding());
        *lag.lock().unwrap() = Duration::ZERO;
        assert_eq!(durable.should_pause(), (false, true), "caught up: resume");
        assert_eq!(durable.pauses, 1);
    }
}
