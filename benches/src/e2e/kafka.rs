//! The harness's Kafka clients: topics, the paced producer, and progress read from a group's committed offsets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use mora_schemas::Family;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::log::Log;

/// Creates `topics` with `partitions` partitions each (existing ones are kept) and waits until the broker lists them.
pub(super) fn create_topics(
    brokers: &str,
    topics: &[String],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .context("creating topics (is the broker up? deploy/services.sh up)")?;
    for r in results {
        if let Err((topic, code)) = r
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            anyhow::bail!("creating {topic}: {code}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    for t in topics {
        loop {
            let md = probe.fetch_metadata(Some(t), Duration::from_secs(5))?;
            if md
                .topics()
                .first()
                .is_some_and(|m| m.partitions().len() == partitions as usize)
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "topic {t} not listed after 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Where each produced record went and when: per partition, (simulated instant, wall-clock microseconds, step),
/// appended in production order. An action is timed from the first record of its partition at or after its
/// decision instant: the event it answers, or the record that moved the partition's time past the timer it fired.
#[derive(Debug, Default)]
pub(super) struct SendIndex {
    partitions: Vec<Mutex<Vec<Sent>>>,
}

/// A record produced: (simulated instant, produce time µs, step, hash of the record's key).
type Sent = (i64, u64, u8, u64);

/// Step of records produced as the warm-up backlog (never timed).
pub(super) const WARMUP: u8 = u8::MAX;

/// A paced sender sleeps only once it is this far ahead of its schedule, and then sends what fell due in one go.
/// Every record is still timed at its own send. Shorter sleeps cost the generator more CPU than sending does (a
/// wake-up per few records on a virtual machine), CPU taken from the system under test on a shared host.
const PACING_SLICE: Duration = Duration::from_millis(2);

/// What set off an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Trigger {
    /// When the record that triggered it was produced (µs since the harness started).
    pub sent_us: u64,
    /// Its load step.
    pub step: u8,
    /// Whether it is an event of the action's own debtor at the action's instant (the action answers it); if not,
    /// time released the action (a timer, a window opening, a day starting), and the record is the one that moved
    /// the partition's time there.
    pub by_event: bool,
}

/// The hash of a record key the index keeps.
pub(super) fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

impl SendIndex {
    pub(super) fn new(partitions: usize) -> Self {
        Self {
            partitions: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn push(&self, partition: i32, sim: i64, wall_us: u64, step: u8, key: u64) {
        if let Some(p) = self.partitions.get(partition as usize) {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((sim, wall_us, step, key));
        }
    }

    /// The record that triggered a decision at `sim` in `partition` for the debtor whose key hashes to `debtor`.
    pub(super) fn trigger(&self, partition: usize, sim: i64, debtor: u64) -> Option<Trigger> {
        let p = self.partitions.get(partition)?;
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        let i = p.partition_point(|e| e.0 < sim);
        let first = p.get(i)?;
        let by_event = p[i..]
            .iter()
            .take_while(|e| e.0 == sim)
            .any(|e| e.3 == debtor);
        Some(Trigger {
            sent_us: first.1,
            step: first.2,
            by_event,
        })
    }
}

/// Microseconds since the harness started (the same clock for producing and reading).
pub(super) fn now_us(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

/// Sends the log's records to the input topics `<prefix><family>`.
pub(super) struct Sender {
    producer: BaseProducer,
    topics: BTreeMap<Family, String>,
    pub index: Arc<SendIndex>,
    origin: Instant,
}

impl Sender {
    pub(super) fn new(
        brokers: &str,
        prefix: &str,
        partitions: usize,
        origin: Instant,
    ) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // The Java producer's default since Kafka 4.0, as an upstream system's producer would batch; each
            // record is still timed from its own send.
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()?;
        let topics = Family::ALL
            .iter()
            .map(|f| (*f, format!("{prefix}{}", f.name())))
            .collect();
        Ok(Self {
            producer,
            topics,
            index: Arc::new(SendIndex::new(partitions)),
            origin,
        })
    }

    /// Sends `log.records[range]` tagged with `step`: as fast as possible without `rate`, otherwise `rate` records
    /// per second (sent in small bursts against the wall clock). `tick` is called about every 100 ms with the count
    /// sent so far. Returns when every record is acknowledged.
    pub(super) fn send(
        &self,
        log: &Log,
        range: std::ops::Range<usize>,
        step: u8,
        rate: Option<f64>,
        mut tick: impl FnMut(u64),
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last_tick = Instant::now();
        let total = range.len();
        for (k, rec) in log.records[range].iter().enumerate() {
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(k as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed())
                    && wait > PACING_SLICE
                {
                    std::thread::sleep(wait);
                }
            }
            let topic = &self.topics[&rec.family];
            let wall = now_us(self.origin);
            self.index
                .push(rec.partition, rec.at.0, wall, step, key_hash(&rec.key));
            let mut record = BaseRecord::to(topic)
                .partition(rec.partition)
                .key(rec.key.as_bytes())
                .payload(&rec.payload)
                .timestamp(
                    (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis()) as i64,
                );
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        self.producer.poll(Duration::from_millis(5));
                        record = r;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
            self.producer.poll(Duration::ZERO);
            if last_tick.elapsed() >= Duration::from_millis(100) || k + 1 == total {
                tick(k as u64 + 1);
                last_tick = Instant::now();
            }
        }
        self.producer.flush(Duration::from_secs(120))?;
        Ok(())
    }
}

/// Reads how far a consumer group got: the sum of its committed offsets over `topics`' partitions.
pub(super) struct GroupProgress {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
    /// The last count read: a lookup that fails (the broker busy past the timeout) repeats it rather than reading
    /// as zero, which drew a drop to nothing and a spike in the throughput plot.
    last: std::cell::Cell<u64>,
}

impl GroupProgress {
    pub(super) fn new(
        brokers: &str,
        group: &str,
        topics: &[String],
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..partitions {
                tpl.add_partition(t, p);
            }
        }
        Ok(Self {
            consumer,
            tpl,
            last: std::cell::Cell::new(0),
        })
    }

    /// Records the group has committed (0 before its first commit; the last count read if the lookup fails).
    pub(super) fn committed(&self) -> u64 {
        if let Ok(c) = self
            .consumer
            .committed_offsets(self.tpl.clone(), Duration::from_secs(5))
        {
            let n = c
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) if o > 0 => o as u64,
                    _ => 0,
                })
                .sum();
            self.last.set(n);
        }
        self.last.get()
    }
}
