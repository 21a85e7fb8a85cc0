//! The engine's state on one instance: a worker per assigned partition, offsets consumed since the last commit,
//! partitions assigned and revoked, and records applied in timestamp order. The transaction cycle is in `commit`,
//! the state store's pacing in `state`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mora_domain::engine::Engine;
use mora_runtime::{
    InputRecord, Operator, PREPARE_AHEAD, PartitionWorker, RegistrySchemas, StateStore,
};
use mora_schemas::{TableView, WriterSchema, schema_id};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, Producer};
use tracing::{info, warn};

use crate::client;
use crate::config::{DeliveryMode, KafkaConfig};
use crate::durable::{Durable, RestoredSlot};
use crate::error::PipelineError;
use crate::sink::{KafkaSink, Outputs, Written};
use crate::slot::Slot;
use crate::stats::RunStats;

mod commit;
mod state;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new owner of partitions retries reading the group's committed offsets before giving up.
const OFFSETS_PATIENCE: Duration = Duration::from_secs(60);
/// Records buffered per topic-partition before fetching from it pauses.
const MAX_BUFFERED: usize = 20_000;

/// How many records `drain` applies between two looks at its deadline.
const DEADLINE_EVERY: u32 = 64;

/// The instance's pipeline state.
pub(crate) struct Pipeline {
    cfg: KafkaConfig,
    engine: Arc<Engine>,
    /// Shared with the thread that runs each transactional call (see `Pipeline::txn_call`).
    producer: Arc<BaseProducer>,
    /// A transactional call never returned: the producer is wedged and the failed transaction replaces it.
    wedged: bool,
    /// The producer's transactional id (exactly-once), kept by every producer that replaces a fenced one.
    txn_id: Option<String>,
    /// When the producer was last replaced (the most recent few), to tell a zombie moment from a twin instance.
    replaced_at: VecDeque<Instant>,
    outputs: Outputs,
    slots: BTreeMap<i32, Slot>,
    /// Next offset to commit per partition and topic, for records handled since the last commit.
    offsets: BTreeMap<i32, HashMap<String, i64>>,
    in_txn: bool,
    written: Written,
    failed: Option<KafkaError>,
    /// The state store, if configured (otherwise partitions are rebuilt by replaying from the beginning).
    durable: Option<Durable>,
    pub stats: RunStats,
    /// Records applied per input topic (metric handles, looked up without allocating).
    records_in: HashMap<String, metrics::Counter>,
    /// The engine thread's index within the instance (the `thread` label of its gauges).
    thread: String,
    /// With a schema registry: its writer schemas (this thread's view) and the registry, for an id that left the
    /// table between the engine loop's check and the record's turn.
    schemas: Option<(TableView, Arc<RegistrySchemas>)>,
    /// Which partition `drain` starts with next (they take turns).
    drain_turn: usize,
    /// How long the engine thread spends building each state flush (`mora_state_flush_build_seconds`).
    flush_build: metrics::Histogram,
    /// Set while partitions are being revoked: a transaction failing then is aborted and the partitions' state
    /// dropped, not rebuilt (they are leaving, and the group is mid-rebalance).
    revoking: bool,
    /// The instance's stop request (shared by its engine threads).
    stop: Arc<AtomicBool>,
    /// The stop's deadline, set when the request is first seen: every wait of the final commit, flush and release
    /// fits before it, and a transaction failing then is given up rather than retried (see
    /// [`Pipeline::stop_deadline`]).
    stop_by: Cell<Option<Instant>>,
}

impl Pipeline {
    pub(crate) fn new(
        cfg: KafkaConfig,
        engine: Arc<Engine>,
        state: Option<Box<dyn StateStore>>,
        thread: usize,
        schemas: Option<Arc<RegistrySchemas>>,
    ) -> Result<Self, PipelineError> {
        let durable = state.map(Durable::new);
        let txn_id = (cfg.mode == DeliveryMode::ExactlyOnce).then(|| {
            cfg.transactional_id
                .clone()
                .or_else(|| {
                    cfg.instance_id
                        .as_ref()
                        .map(|i| format!("mora-{}-{i}", cfg.group_id))
                })
                .unwrap_or_else(|| {
                    // Unique per running instance: host, process, and instance within the process (tests run several).
                    static INSTANCE: std::sync::atomic::AtomicU32 =
                        std::sync::atomic::AtomicU32::new(0);
                    let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
                    format!("mora-{}-{host}-{}-{n}", cfg.group_id, std::process::id())
                })
        });
        let producer: BaseProducer = client::producer(&cfg, txn_id.as_deref()).create()?;
        if txn_id.is_some() {
            producer.init_transactions(TXN_TIMEOUT)?;
        }
        Ok(Self {
            outputs: Outputs::new(&cfg.topics, schemas.as_deref()),
            cfg,
            engine,
            producer: Arc::new(producer),
            wedged: false,
            txn_id,
            replaced_at: VecDeque::new(),
            slots: BTreeMap::new(),
            offsets: BTreeMap::new(),
            in_txn: false,
            written: Written::default(),
            failed: None,
            durable,
            stats: RunStats::default(),
            records_in: HashMap::new(),
            thread: thread.to_string(),
            schemas: schemas.map(|s| (s.view(), s)),
            drain_turn: 0,
            flush_build: metrics::histogram!("mora_state_flush_build_seconds", "thread" => thread.to_string()),
            revoking: false,
            stop: Arc::new(AtomicBool::new(false)),
            stop_by: Cell::new(None),
        })
    }

    /// Shares the instance's stop request with the pipeline, so that waits in progress when it comes are cut short.
    pub(crate) fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    /// When the stop must be done, once one was requested: `kafka.shutdown_timeout` after the pipeline first saw
    /// the request. The final commit, the last flush and the release of the partitions each wait at most until
    /// then. A transaction that cannot commit in time is aborted (or, if the cluster does not answer, left open
    /// for the next producer with this transactional id or the broker's transaction timeout to abort), and the
    /// partitions' state is dropped: their next owner replays from the last commit, so nothing is lost or doubled.
    pub(crate) fn stop_deadline(&self) -> Option<Instant> {
        if self.stop_by.get().is_none() && self.stop.load(Ordering::SeqCst) {
            self.stop_by
                .set(Some(Instant::now() + self.cfg.shutdown_timeout));
        }
        self.stop_by.get()
    }

    /// How long a step may wait: `wanted`, or less while stopping (what is left before the stop's deadline).
    pub(crate) fn budget(&self, wanted: Duration) -> Duration {
        self.stop_deadline().map_or(wanted, |by| {
            wanted.min(by.saturating_duration_since(Instant::now()))
        })
    }

    fn exactly_once(&self) -> bool {
        self.cfg.mode == DeliveryMode::ExactlyOnce
    }

    /// New partitions: each one's state is restored from the state store (resuming from its checkpoint) or, without
    /// one, rebuilt by replaying the partition from its beginning. Records below the committed offsets only rebuild
    /// state (their outputs were committed before). Returns where each topic-partition starts reading.
    pub(crate) fn assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) -> Result<TopicPartitionList, PipelineError> {
        let committed = committed_offsets(consumer, tpl)?;
        let mut starts = TopicPartitionList::new();
        for e in committed.elements() {
            let p = e.partition();
            if !self.slots.contains_key(&p) {
                let restored = match self.durable.as_mut() {
                    Some(d) => d.restore(p, &self.engine, &self.cfg.topics)?,
                    None => RestoredSlot {
                        worker: PartitionWorker::new(p, self.engine.clone()),
                        starts: BTreeMap::new(),
                    },
                };
                let ledger = self
                    .durable
                    .as_ref()
                    .map(Durable::ledger)
                    .unwrap_or_default();
                self.slots
                    .insert(p, Slot::new(restored.worker, restored.starts, ledger));
            }
            let Some(slot) = self.slots.get_mut(&p) else {
                continue;
            };
            let until = match e.offset() {
                Offset::Offset(n) => n,
                _ => 0,
            };
            let start = slot.applied.get(e.topic()).copied();
            if let Some(s) = start.filter(|s| *s > until) {
                warn!(
                    topic = e.topic(),
                    partition = p,
                    stored = s,
                    committed = until,
                    "The state store is ahead of the committed offsets (were the group's offsets reset?); resuming from the store."
                );
            }
            slot.applied.entry(e.topic().to_string()).or_insert(0);
            slot.received
                .insert(e.topic().to_string(), start.unwrap_or(0));
            // Records from the start up to the committed offset only rebuild state; none if it starts there.
            let replay_until = if until > start.unwrap_or(0) { until } else { 0 };
            slot.restore_until
                .insert(e.topic().to_string(), replay_until);
            info!(topic = e.topic(), partition = p, start = ?start, committed = until, "Partition input resumes.");
            starts.add_partition_offset(
                e.topic(),
                p,
                start.map_or(Offset::Beginning, Offset::Offset),
            )?;
        }
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        info!(partitions = ?parts, durable = self.durable.is_some(), "Partitions assigned.");
        self.stats.assigned = parts;
        Ok(starts)
    }

    /// Partitions taken away: commit what was done, then drop their state.
    pub(crate) fn revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), PipelineError> {
        self.revoking = true;
        let result = self.commit(consumer);
        self.revoking = false;
        if result.is_ok() {
            // The next owner restores from the store: give it the latest committed state (none if the transaction
            // was aborted: the partitions' state went with it).
            self.flush_state(true)?;
        }
        self.slots.clear();
        self.offsets.clear();
        self.stats.assigned.clear();
        info!("Partitions revoked after committing.");
        result
    }

    /// Buffers one record for its partition (applied in timestamp order by [`Pipeline::drain`]).
    pub(crate) fn enqueue(&mut self, msg: &BorrowedMessage<'_>) {
        if let Some(slot) = self.slots.get_mut(&msg.partition()) {
            slot.receive(msg.detach(), Instant::now());
        }
    }

    /// As [`Pipeline::enqueue`], for a record taken from the client earlier (held while the registry was away).
    pub(crate) fn enqueue_owned(&mut self, msg: OwnedMessage) {
        if let Some(slot) = self.slots.get_mut(&msg.partition()) {
            slot.receive(msg, Instant::now());
        }
    }

    /// Resumes every assigned topic-partition paused by the engine loop, except those paused for a full buffer or
    /// while the state store holds input back (which resumes them itself when it catches up).
    pub(crate) fn resume_input<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), PipelineError> {
        if self.durable.as_ref().is_some_and(Durable::holding) {
            return Ok(());
        }
        consumer.resume(&self.assigned(consumer, false)?)?;
        Ok(())
    }

    /// The assigned topic-partitions, less those paused for a full buffer unless `with_full`.
    pub(crate) fn assigned<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        with_full: bool,
    ) -> Result<TopicPartitionList, PipelineError> {
        let mut tpl = TopicPartitionList::new();
        for e in consumer.assignment()?.elements() {
            let full = self
                .slots
                .get(&e.partition())
                .and_then(|s| s.inboxes.get(e.topic()))
                .is_some_and(|i| i.paused);
            if with_full || !full {
                tpl.add_partition(e.topic(), e.partition());
            }
        }
        Ok(tpl)
    }

    /// Pauses fetching for topic-partitions whose buffer is full and resumes those drained below half, so memory
    /// stays bounded while another topic of the partition holds it back. Returns how many are paused.
    pub(crate) fn bound_buffers<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<usize, PipelineError> {
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        let mut paused = 0;
        for (p, slot) in &mut self.slots {
            for (t, inbox) in &mut slot.inboxes {
                if !inbox.paused && inbox.queue.len() >= MAX_BUFFERED {
                    pause.add_partition(t, *p);
                    inbox.paused = true;
                } else if inbox.paused && inbox.queue.len() <= MAX_BUFFERED / 2 {
                    resume.add_partition(t, *p);
                    inbox.paused = false;
                }
                paused += usize::from(inbox.paused);
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause)?;
            self.stats.backpressure_waits += 1;
        }
        // While the state store holds input back, resuming waits for it (it resumes everything not full).
        if resume.count() > 0 && !self.durable.as_ref().is_some_and(Durable::holding) {
            consumer.resume(&resume)?;
        }
        Ok(paused)
    }

    /// Records buffered and not yet applied.
    pub(crate) fn buffered(&self) -> usize {
        self.slots.values().map(Slot::buffered).sum()
    }

    /// Applies the buffered records that are ready, in timestamp order per partition, until `until`: the loop
    /// commits at its interval, and a transaction must never stay open for long however much is buffered (after a
    /// stalled topic delivers, hundreds of thousands of records can be ready at once; applied in one go, they kept
    /// a transaction open past the broker's `transaction.timeout.ms`, which fenced the instance). Partitions take
    /// turns at going first, so a deadline does not always fall on the same ones.
    pub(crate) fn drain(
        &mut self,
        ends: &crate::ends::EndOffsets,
        until: Instant,
    ) -> Result<(), PipelineError> {
        if self.durable.as_ref().is_some_and(Durable::holding) {
            // Input is paused for the state store: applying what is buffered would only run ahead of the topics
            // that cannot deliver meanwhile.
            return Ok(());
        }
        // The clock topic never holds a partition back: a clock record that arrives after events with later
        // timestamps changes nothing (those events already moved time past it, and timers fire at their own instants
        // either way), so only event topics are waited for. A clock record at the head is still applied in timestamp
        // order, never ahead of an earlier event.
        let clock_topic = self.cfg.topics.input(mora_schemas::Family::Clock);
        let inputs: Vec<String> = self
            .cfg
            .topics
            .inputs()
            .into_iter()
            .filter(|t| *t != clock_topic)
            .collect();
        let waits = (self.cfg.max_idle, self.cfg.lagging_topic_wait);
        if self.slots.values().all(|s| s.buffered() == 0) {
            return Ok(());
        }
        // Per input topic: whether the broker holds records for it this instance has not received yet. Known for
        // every topic, including those with records buffered now: draining can empty a buffer, and the topic then
        // holds the partition back only if more of it is on the way (an unknown status would make it wait long).
        let mut lagging: BTreeMap<i32, HashMap<String, bool>> = BTreeMap::new();
        let ends = ends.lock().map(|e| e.bounds.clone()).unwrap_or_default();
        for (p, slot) in &self.slots {
            if slot.buffered() == 0 {
                continue;
            }
            for t in &inputs {
                let received = slot.received.get(t).copied().unwrap_or(0);
                let behind = match ends.get(&(t.clone(), *p)) {
                    // Records before the log start are gone: nothing to wait for there.
                    Some((start, end)) => received.max(*start) < *end,
                    None => true, // no statistics yet: assume behind (bounded wait)
                };
                lagging.entry(*p).or_default().insert(t.clone(), behind);
            }
        }
        let mut parts: Vec<i32> = self.slots.keys().copied().collect();
        if !parts.is_empty() {
            let first = self.drain_turn % parts.len();
            parts.rotate_left(first);
            self.drain_turn = self.drain_turn.wrapping_add(1);
        }
        let none_lag = HashMap::new();
        let mut applied = 0u32;
        let mut ahead: Vec<(Instant, OwnedMessage)> = Vec::with_capacity(PREPARE_AHEAD);
        for p in parts {
            let lag = lagging.get(&p).unwrap_or(&none_lag);
            let now = Instant::now();
            loop {
                // The clock is read every few records only: applying one costs a few microseconds.
                if applied >= DEADLINE_EVERY {
                    applied = 0;
                    if Instant::now() >= until {
                        return Ok(());
                    }
                }
                if self.failed.is_some() {
                    // The transaction is lost: the next commit aborts it and rebuilds from the committed offsets
                    // (the buffers with it), so applying more now is wasted work.
                    return Ok(());
                }
                // The next few ready records are taken together (the order is the same as one at a time: what
                // makes a record ready does not depend on applying the ones before it) and the worker loads their
                // debtors side by side before they are applied in turn.
                let Some(slot) = self.slots.get_mut(&p) else {
                    break;
                };
                while ahead.len() < PREPARE_AHEAD
                    && let Ok(next) = slot.next_ready(&inputs, waits, lag, now)
                {
                    ahead.push(next);
                }
                if ahead.is_empty() {
                    break;
                }
                let mut keys: [&[u8]; PREPARE_AHEAD] = [&[]; PREPARE_AHEAD];
                for (k, (_, msg)) in keys.iter_mut().zip(&ahead) {
                    *k = msg.key().unwrap_or_default();
                }
                slot.worker.prepare(&keys[..ahead.len()]);
                for (arrived, msg) in ahead.drain(..) {
                    if self.failed.is_some() {
                        return Ok(()); // as above: the records taken with this one go with the buffers
                    }
                    self.apply(&msg)?;
                    applied += 1;
                    if let Some(slot) = self.slots.get(&p) {
                        slot.latency.record(arrived.elapsed().as_secs_f64());
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies one record.
    fn apply(&mut self, msg: &OwnedMessage) -> Result<(), PipelineError> {
        let topic = msg.topic();
        let Some(family) = self.cfg.topics.family_of(topic) else {
            warn!(
                topic,
                "Record from a topic that is not an input topic; ignored."
            );
            return Ok(());
        };
        let partition = msg.partition();
        let Some(slot) = self.slots.get_mut(&partition) else {
            return Ok(());
        };
        let restoring = msg.offset() < slot.restore_until.get(topic).copied().unwrap_or(0);
        if !restoring && self.cfg.mode == DeliveryMode::ExactlyOnce && !self.in_txn {
            if let Err(e) = self.producer.begin_transaction() {
                // A producer in a fatal state (fenced) cannot begin: the next commit replaces it and rebuilds.
                self.failed.get_or_insert(e);
                return Ok(());
            }
            self.in_txn = true;
        }
        let payload = msg.payload().unwrap_or_default();
        let writer = match (&mut self.schemas, schema_id(payload)) {
            (Some((view, registry)), Some(id)) => {
                if view.get(family, id).is_none() {
                    // The table started again since the engine loop checked this id: fetch it once more.
                    registry
                        .resolve(family, id)
                        .map_err(|e| PipelineError::Registry(e.to_string()))?;
                }
                Some(view.get(family, id).unwrap_or(&UNRESOLVED))
            }
            _ => None,
        };
        let record = InputRecord {
            family,
            topic,
            partition,
            offset: msg.offset(),
            key: msg.key(),
            payload,
            writer,
        };
        let mut sink = KafkaSink {
            producer: &self.producer,
            outputs: &self.outputs,
            restoring,
            written: &mut self.written,
            failed: &mut self.failed,
            ledger: self.durable.is_some().then_some(&mut slot.ledger),
        };
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        // A clock record behind the partition's time changes nothing (the events after it moved time past it), so
        // it is not counted.
        if ts < slot.last_ts && family != mora_schemas::Family::Clock {
            self.stats.out_of_order += 1;
            if self.stats.out_of_order <= 5 {
                let note = format!(
                    "{topic}/{partition}@{} ts {ts} < {}",
                    msg.offset(),
                    slot.last_ts
                );
                tracing::warn!(%note, "Record applied out of timestamp order.");
                self.stats.out_of_order_examples.push(note);
            }
        }
        slot.last_ts = slot.last_ts.max(ts);
        slot.worker.process(&record, &mut sink);
        match slot.applied.get_mut(topic) {
            Some(next) => *next = msg.offset() + 1,
            None => {
                slot.applied.insert(topic.to_string(), msg.offset() + 1);
            }
        }
        if restoring && msg.offset() + 1 >= slot.restore_until.get(topic).copied().unwrap_or(0) {
            slot.restore_until.insert(topic.to_string(), 0); // this topic's replay is complete
            if slot.restore_until.values().all(|u| *u == 0) {
                slot.worker.clear_fences(); // every stored debtor is behind the replay now
            }
        }
        self.stats.records += 1;
        match self.records_in.get(topic) {
            Some(c) => c.increment(1),
            None => {
                let c = metrics::counter!("mora_records_in_total", "topic" => topic.to_string());
                c.increment(1);
                self.records_in.insert(topic.to_string(), c);
            }
        }
        if restoring {
            self.stats.restored += 1;
        } else {
            let next = self.offsets.entry(partition).or_default();
            match next.get_mut(topic) {
                Some(n) => *n = msg.offset() + 1,
                None => {
                    next.insert(topic.to_string(), msg.offset() + 1);
                }
            }
        }
        Ok(())
    }

    /// Sets the gauges: consumer lag per input topic-partition, debtors, state-store lag.
    pub(crate) fn export_gauges(&self, ends: &crate::ends::EndOffsets) {
        let ends = ends.lock().map(|e| e.bounds.clone()).unwrap_or_default();
        for (p, slot) in &self.slots {
            for (t, received) in &slot.received {
                if let Some((_, end)) = ends.get(&(t.clone(), *p)) {
                    metrics::gauge!(
                        "mora_consumer_lag_records",
                        "topic" => t.clone(),
                        "partition" => p.to_string()
                    )
                    .set((*end - *received).max(0) as f64);
                }
            }
        }
        let thread = self.thread.clone();
        metrics::gauge!("mora_debtors", "thread" => thread.clone()).set(self.stats.debtors as f64);
        metrics::gauge!("mora_partitions_owned", "thread" => thread.clone())
            .set(self.slots.len() as f64);
        metrics::gauge!("mora_state_flush_lag_seconds", "thread" => thread)
            .set(self.stats.state_lag_ms as f64 / 1e3);
    }

    pub(crate) fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Swaps the configuration for new partitions and every owned one; returns (debtors, changed).
    pub(crate) fn set_engine(&mut self, engine: Arc<Engine>) -> (u64, u64) {
        self.engine = engine.clone();
        let (mut debtors, mut changed) = (0, 0);
        for slot in self.slots.values_mut() {
            debtors += slot.worker.len() as u64;
            changed += slot.worker.set_engine(engine.clone()) as u64;
        }
        (debtors, changed)
    }

    pub(crate) fn workers(&self) -> impl Iterator<Item = &PartitionWorker> {
        self.slots.values().map(|s| &s.worker)
    }
}

/// What a record whose id is not in the table is read as (not reached: the id is fetched first).
static UNRESOLVED: WriterSchema = WriterSchema::Refused(String::new());

/// The group's committed offsets of `tpl`, retried with backoff for up to [`OFFSETS_PATIENCE`]. They say which
/// records' outputs were already sent: without them a new owner could only replay with nothing suppressed (sending
/// a partition's history again) or skip (losing what was not committed), so it waits, and past the patience the
/// thread stops with the error rather than guess.
fn committed_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
) -> Result<TopicPartitionList, PipelineError> {
    let deadline = Instant::now() + OFFSETS_PATIENCE;
    let mut wait = Duration::from_millis(100);
    loop {
        match consumer.committed_offsets(tpl.clone(), TXN_TIMEOUT) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() + wait < deadline => {
                warn!(error = %e, retry_in = ?wait, "Committed offsets unavailable; retrying.");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(PipelineError::Kafka(e)),
        }
    }
}
