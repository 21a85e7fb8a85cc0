//! # mora-loadgen
//!
//! `mora loadgen`: the simulator's realistic event mix produced to the input topics (Confluent wire format).
//!
//! Each topic partition is simulated by its own generator with an engine in the loop, so the log holds contact
//! outcomes, promises and payments that follow contacts, as production does. The same seed and partition count
//! give the same log. After each simulated hour, every partition gets a clock record with the simulated time, so
//! time moves in the engine for debtors with no events, as it did in the generator (time is data in the log).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_domain::engine::Engine;
use mora_domain::time::{HOUR_MS, MINUTE_MS, Ts};
use mora_runtime::{CollectingSink, Operator, PartitionWorker};
use mora_schemas::{ClockTick, Family, Wire, encode_clock, encode_event};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

use mora_connector_kafka::{KafkaConfig, PipelineError, check_co_partitioned, client_config};

/// What can stop the load generator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadgenError {
    /// The input topics are missing or not co-partitioned, or the broker could not be reached.
    #[error("input topics: {0}")]
    Topics(#[from] PipelineError),
    /// The producer failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// A simulated record could not be encoded (a simulator bug).
    #[error("encoding a simulated record: {0}")]
    Encode(#[from] mora_schemas::EncodeError),
    /// The record consumer passed to [`generate`] stopped it.
    #[error("{0}")]
    Emit(String),
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct LoadgenOptions {
    /// Debtors in the portfolio.
    pub debtors: u64,
    /// Stop after this many records.
    pub events: u64,
    /// Records per second at most (`None`: as fast as the broker takes them).
    pub rate: Option<u64>,
    /// Seed.
    pub seed: u64,
    /// Simulated days available (generation stops earlier once `events` are written).
    pub days: u32,
}

/// What was written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadgenReport {
    /// Records per topic.
    pub per_topic: BTreeMap<String, u64>,
    /// Total records.
    pub total: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Simulated instant of the last record.
    pub last_event_at: Option<Ts>,
    /// Clock records written (not counted in `total`).
    pub clock_records: u64,
}

/// One record of the simulated log, ready to produce.
#[derive(Clone, Debug)]
pub struct GeneratedRecord {
    /// Topic partition (every input topic is co-partitioned).
    pub partition: i32,
    /// Input family: the topic is `cfg.topics.input(family)`.
    pub family: Family,
    /// Record key: the debtor id (the partition number for clock records).
    pub key: String,
    /// Confluent-framed Avro.
    pub payload: Vec<u8>,
    /// Simulated instant (the record's timestamp in `mora loadgen`).
    pub at: Ts,
}

/// Generates the simulated log of `partitions` partitions in time order (15-minute slices, partition by partition
/// inside each), with a clock record per partition after every simulated hour, and hands each record to `emit`
/// until it returns `false` or the simulated days run out. Returns the records generated, clock records included.
pub fn generate(
    opts: &LoadgenOptions,
    partitions: u32,
    engine: Arc<Engine>,
    mut emit: impl FnMut(GeneratedRecord) -> Result<bool, LoadgenError>,
) -> Result<u64, LoadgenError> {
    let sim_cfg = SimConfig {
        debtors: opts.debtors,
        days: opts.days,
        seed: opts.seed,
        partitions,
        ..SimConfig::default()
    };
    let mut parts: Vec<(PartitionSim, PartitionWorker)> = (0..partitions)
        .map(|p| {
            (
                PartitionSim::new(&sim_cfg, p),
                PartitionWorker::new(p as i32, engine.clone()),
            )
        })
        .collect();
    let mut n = 0u64;
    let mut t = sim_cfg.start_ts();
    let mut sink = CollectingSink::default();
    while t < sim_cfg.end() {
        let tick = t.plus_ms(15 * MINUTE_MS);
        for (p, (sim, worker)) in parts.iter_mut().enumerate() {
            while let Some(rec) = sim.pop_until(tick) {
                let family = rec.family();
                let (key, payload) = match &rec {
                    SimRecord::Event(ev) => {
                        let _ = worker.on_event(ev, &mut sink);
                        let bytes = encode_event(ev, Wire::Confluent)?;
                        (ev.debtor_id.to_string(), bytes)
                    }
                    SimRecord::Poison { key, bytes, .. } => (key.to_string(), bytes.clone()),
                };
                n += 1;
                let go_on = emit(GeneratedRecord {
                    partition: p as i32,
                    family,
                    key,
                    payload,
                    at: rec.at(),
                })?;
                if !go_on {
                    return Ok(n);
                }
                for a in sink.actions.drain(..) {
                    sim.react(&a);
                }
                sink.audits.clear();
            }
            worker.on_tick(tick, &mut sink);
            if (tick.0 - sim_cfg.start_ts().0) % HOUR_MS == 0 {
                let payload = encode_clock(
                    &ClockTick {
                        source: "sim".into(),
                        partition: p as i32,
                        at: tick,
                    },
                    Wire::Confluent,
                )?;
                n += 1;
                let go_on = emit(GeneratedRecord {
                    partition: p as i32,
                    family: Family::Clock,
                    key: p.to_string(),
                    payload,
                    at: tick,
                })?;
                if !go_on {
                    return Ok(n);
                }
            }
            for a in sink.actions.drain(..) {
                sim.react(&a);
            }
            sink.audits.clear();
        }
        t = tick;
    }
    Ok(n)
}

/// Produces the simulated log to the input topics of `cfg` (which must exist and be co-partitioned).
pub fn loadgen(
    cfg: &KafkaConfig,
    opts: &LoadgenOptions,
    engine: Arc<Engine>,
) -> Result<LoadgenReport, LoadgenError> {
    loadgen_with_ids(cfg, opts, engine, &std::collections::HashMap::new())
}

/// As [`loadgen`], framing each family's records with the schema id a schema registry gave it (`ids`) instead of
/// mora's built-in one, as a producer using the registry does. Families missing from `ids` keep the built-in id.
pub fn loadgen_with_ids(
    cfg: &KafkaConfig,
    opts: &LoadgenOptions,
    engine: Arc<Engine>,
    ids: &std::collections::HashMap<Family, u32>,
) -> Result<LoadgenReport, LoadgenError> {
    let builtin = |f: Family| {
        mora_schemas::Registry::global()
            .current(mora_schemas::SchemaKind::Event(f))
            .0
    };
    let partitions = check_co_partitioned(cfg)?;
    let producer: BaseProducer = client_config(cfg)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let topics: Vec<String> = Family::ALL.iter().map(|f| cfg.topics.input(*f)).collect();
    let mut report = LoadgenReport::default();
    let started = Instant::now();
    generate(opts, partitions as u32, engine, |mut rec| {
        if rec.family != Family::Clock && report.total >= opts.events {
            return Ok(false);
        }
        // Only records framed with the family's current built-in id: a poison record keeps its bytes.
        if let Some(id) = ids.get(&rec.family)
            && mora_schemas::schema_id(&rec.payload) == Some(builtin(rec.family))
        {
            mora_schemas::set_schema_id(&mut rec.payload, *id);
        }
        let topic = &topics[family_index(rec.family)];
        let record = BaseRecord::to(topic)
            .partition(rec.partition)
            .key(rec.key.as_bytes())
            .payload(&rec.payload)
            .timestamp(rec.at.0);
        send(&producer, record)?;
        if rec.family == Family::Clock {
            report.clock_records += 1;
            return Ok(true);
        }
        *report.per_topic.entry(topic.clone()).or_default() += 1;
        report.total += 1;
        report.last_event_at = Some(rec.at);
        if let Some(rate) = opts.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(report.total as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(true)
    })?;
    producer.flush(Duration::from_secs(60))?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn family_index(f: Family) -> usize {
    Family::ALL.iter().position(|x| *x == f).unwrap_or(0)
}

fn send(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, [u8], Vec<u8>>,
) -> Result<(), LoadgenError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(20));
                record = r;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}
