//! The reader at the end of the line: a `read_committed` consumer of the system's output topics that times every
//! action from the produce time of the record that triggered it to the moment it became readable.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mora_runtime::partition_for;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use super::kafka::{SendIndex, WARMUP, key_hash, now_us};

/// How to read an output record: the debtor, the simulated instant it was sent at, and an identity for duplicates.
#[derive(Clone, Copy, Debug)]
pub(super) enum OutputFormat {
    /// mora's contact actions (Avro).
    MoraAction,
    /// The peer's JSON actions: `{"debtor_id", "at", "bucket", "segment"}`.
    PeerJson,
}

/// What to read and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProbeSpec<'a> {
    pub brokers: &'a str,
    pub group: &'a str,
    pub topics: &'a [String],
    pub format: OutputFormat,
    /// Input partitions (an action's debtor maps to one).
    pub partitions: u32,
    /// Load steps to keep histograms for.
    pub steps: usize,
}

/// One step's latencies (microseconds).
#[derive(Debug, Clone)]
pub(super) struct StepLatency {
    /// Every timed action.
    pub all: Histogram<u64>,
    /// Actions answering an event of their own debtor.
    pub by_event: Histogram<u64>,
    /// Actions time released (timers, window openings, a day starting).
    pub by_time: Histogram<u64>,
    /// mora's actions of `by_event`: from the trigger's produce time to the action's own, its record's create time
    /// (set by the engine's producer; millisecond resolution). The engine's share: the rest is the commit and the
    /// reader.
    pub by_event_produced: Histogram<u64>,
    /// Time-released actions grouped by the instant (and partition) that released them: a batch.
    pub batches: HashMap<(usize, i64), Batch>,
}

/// Actions released together: one partition's time moving past one instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batch {
    /// When the record that released them was produced (µs).
    pub sent_us: u64,
    /// When the first and the last of them became readable (µs).
    pub first_us: u64,
    pub last_us: u64,
    /// When the engine produced the last of them (µs; mora only, from the records' create time).
    pub last_produced_us: Option<u64>,
    pub actions: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

impl StepLatency {
    fn new() -> Self {
        Self {
            all: histogram(),
            by_event: histogram(),
            by_time: histogram(),
            by_event_produced: histogram(),
            batches: HashMap::new(),
        }
    }
}

/// Latencies per step (microseconds), and counts.
#[derive(Debug)]
pub(super) struct Probe {
    pub steps: Vec<Mutex<StepLatency>>,
    pub actions: AtomicU64,
    pub duplicates: AtomicU64,
    pub untimed: AtomicU64,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Probe {
    /// Starts reading `spec.topics` from the beginning.
    pub(super) fn start(
        spec: ProbeSpec<'_>,
        index: Arc<SendIndex>,
        origin: Instant,
    ) -> anyhow::Result<Arc<Self>> {
        let ProbeSpec {
            brokers,
            group,
            topics,
            format,
            partitions,
            steps,
        } = spec;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set(
                "isolation.level",
                std::env::var("E2E_ISOLATION").unwrap_or_else(|_| "read_committed".into()),
            )
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let probe = Arc::new(Self {
            steps: (0..steps).map(|_| Mutex::new(StepLatency::new())).collect(),
            actions: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            untimed: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        });
        let p = probe.clone();
        let thread = std::thread::Builder::new()
            .name("e2e-probe".into())
            .spawn(move || p.read(consumer, format, partitions, &index, origin))?;
        *probe.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(probe)
    }

    fn read(
        &self,
        consumer: BaseConsumer,
        format: OutputFormat,
        partitions: u32,
        index: &SendIndex,
        origin: Instant,
    ) {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        // The wall clock at `origin` (µs since the epoch), to place the engine's create times on the harness's clock.
        let origin_wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
            .saturating_sub(now_us(origin));
        // Every timed action as a CSV line (read µs, produced µs, step, debtor, decision instant, event or time), for
        // digging.
        let mut dump = std::env::var("E2E_DUMP")
            .ok()
            .and_then(|p| std::fs::File::create(p).ok())
            .map(std::io::BufWriter::new);
        while !self.stop.load(Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let read_at = now_us(origin);
            let produced_at = match (format, m.timestamp()) {
                (OutputFormat::MoraAction, rdkafka::Timestamp::CreateTime(ms)) if ms > 0 => {
                    (ms as u64 * 1000).checked_sub(origin_wall_us)
                }
                _ => None,
            };
            let Some(payload) = m.payload() else { continue };
            let Some((debtor, at, identity)) = parse(format, payload) else {
                self.untimed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.actions.fetch_add(1, Ordering::Relaxed);
            if !seen.insert(identity) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let partition = partition_for(debtor.as_bytes(), partitions) as usize;
            match index.trigger(partition, at, key_hash(&debtor)) {
                Some(t) if t.step != WARMUP => {
                    if let Some(f) = dump.as_mut() {
                        use std::io::Write;
                        let _ = writeln!(
                            f,
                            "{read_at},{},{},{debtor},{at},{}",
                            t.sent_us,
                            t.step,
                            if t.by_event { "event" } else { "time" }
                        );
                    }
                    if let Some(h) = self.steps.get(t.step as usize) {
                        let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
                        let us = read_at.saturating_sub(t.sent_us).max(1);
                        let _ = h.all.record(us);
                        if t.by_event {
                            let _ = h.by_event.record(us);
                            if let Some(p) = produced_at {
                                let _ = h
                                    .by_event_produced
                                    .record(p.saturating_sub(t.sent_us).max(1));
                            }
                        } else {
                            let _ = h.by_time.record(us);
                            let b = h.batches.entry((partition, at)).or_insert(Batch {
                                sent_us: t.sent_us,
                                first_us: read_at,
                                last_us: read_at,
                                last_produced_us: None,
                                actions: 0,
                            });
                            b.first_us = b.first_us.min(read_at);
                            b.last_us = b.last_us.max(read_at);
                            b.last_produced_us = b.last_produced_us.max(produced_at);
                            b.actions += 1;
                        }
                    }
                }
                Some(_) => {}
                None => {
                    self.untimed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A copy of step `i`'s latencies.
    pub(super) fn latency(&self, i: usize) -> Option<StepLatency> {
        self.steps
            .get(i)
            .map(|h| h.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Stops reading.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Debtor, decision instant (ms) and identity of an output record.
fn parse(format: OutputFormat, payload: &[u8]) -> Option<(String, i64, Vec<u8>)> {
    match format {
        OutputFormat::MoraAction => {
            let a = mora_schemas::decode_action(payload).ok()?;
            // Sent at `not_before`: the decision instant, or for an action the compliance guard deferred, the instant
            // it was released (`created_at` stays the original decision's).
            Some((
                a.debtor_id.to_string(),
                a.not_before.0,
                a.action_id.0.as_bytes().to_vec(),
            ))
        }
        OutputFormat::PeerJson => {
            let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
            let debtor = v.get("debtor_id")?.as_str()?.to_string();
            let at = v.get("at")?.as_i64()?;
            Some((debtor, at, payload.to_vec()))
        }
    }
}
