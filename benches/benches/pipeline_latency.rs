//! A first look at the Kafka pipeline: event→action latency (wall clock, from producing an event to its action
//! being readable by a `read_committed` consumer) and sustained throughput, in both delivery modes.
//!
//! Needs the broker: `deploy/services.sh up`, then `cargo bench -p mora-benches --bench pipeline_latency`.
//! Figures are printed, never asserted. The benchmark issue's harness measures this properly under load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_connector_kafka::{DeliveryMode, KafkaConfig, create_topics, run};
use mora_domain::ids::Channel;
use mora_domain::testkit;
use mora_runtime::partition_for;
use mora_schemas::{Wire, encode_event, family_of};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The engine's allocator (as in the `mora` binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PARTITIONS: i32 = 6;

fn config(mode: DeliveryMode, tag: &str) -> KafkaConfig {
    let brokers = std::env::var("MORA_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut cfg = KafkaConfig::new(brokers);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = format!("bench{tag}{nanos}");
    cfg.mode = mode;
    if let Some(ms) = std::env::var("BENCH_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.commit_interval = Duration::from_millis(ms);
    }
    if let Ok(raw) = std::env::var("BENCH_RAW") {
        for kv in raw.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                cfg.librdkafka_options.insert(k.into(), v.into());
            }
        }
    }
    if let Ok(ms) = std::env::var("BENCH_STATS_MS") {
        cfg.librdkafka_options
            .insert("statistics.interval.ms".into(), ms);
    }
    if let Some(ms) = std::env::var("BENCH_MAX_IDLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.max_idle = Duration::from_millis(ms);
    }
    cfg.group_id = format!("{p}-g");
    cfg.topics.input_prefix = format!("{p}.in.");
    cfg.topics.actions_prefix = format!("{p}.actions.");
    cfg.topics.audit = format!("{p}.audit");
    cfg.topics.dead_letter = format!("{p}.dlq");
    create_topics(&cfg, PARTITIONS, 1).expect("topics (is the broker up? deploy/services.sh up)");
    cfg
}

fn engine() -> Arc<mora_domain::engine::Engine> {
    Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    )
}

fn producer(cfg: &KafkaConfig) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, cfg: &KafkaConfig, ev: &mora_domain::event::Envelope) {
    let topic = cfg.topics.input(family_of(&ev.kind).0);
    let bytes = encode_event(ev, Wire::Confluent).expect("encode");
    let part = partition_for(ev.debtor_id.as_bytes(), PARTITIONS as u32) as i32;
    let mut rec = BaseRecord::to(&topic)
        .partition(part)
        .key(ev.debtor_id.as_bytes())
        .payload(&bytes);
    rec = rec.timestamp(ev.occurred_at.0);
    while let Err((e, r)) = p.send(rec) {
        assert!(
            matches!(e, rdkafka::error::KafkaError::MessageProduction(_)),
            "{e}"
        );
        p.poll(Duration::from_millis(10));
        rec = r;
    }
}

/// A `read_committed` consumer that fetches eagerly, for timing.
fn reader(cfg: &KafkaConfig) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", format!("{}-reader", cfg.group_id))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("reader")
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Latency: per debtor, a payment in full produces a thank-you SMS at once (`on_paid_in_full`).
#[allow(clippy::print_stdout)]
fn latency(mode: DeliveryMode) {
    let cfg = config(mode, "lat");
    let handle = run(cfg.clone(), engine()).expect("engine");
    let p = producer(&cfg);
    let reader = reader(&cfg);
    reader
        .subscribe(&[&cfg.topics.actions(Channel::Sms)])
        .expect("subscribe");
    let t0 = testkit::ts("2026-03-02T14:00:00Z");
    let n = 60;
    for i in 0..n {
        let id = format!("L{i}");
        send(
            &p,
            &cfg,
            &testkit::debtor_upserted(&id, "US", "America/New_York", t0),
        );
        send(
            &p,
            &cfg,
            &testkit::obligation(
                &id,
                &format!("{id}-o"),
                "USD",
                "50",
                "2026-03-01",
                t0.plus_ms(1),
            ),
        );
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    std::thread::sleep(Duration::from_secs(3)); // engine assigned and caught up
    while reader.poll(Duration::from_millis(200)).is_some() {}
    let mut lat = Vec::new();
    for i in 0..n {
        let id = format!("L{i}");
        // 15:00Z is 10:00 in New York: inside the window, so the thank-you goes at once.
        let ev = testkit::payment(
            &id,
            &format!("{id}-pay"),
            "USD",
            "50",
            None,
            testkit::ts("2026-03-02T15:00:00Z").plus_ms(i),
        );
        // Timed from the send; no flush (librdkafka's flush returns on a 100 ms cadence and would hide the engine).
        let started = Instant::now();
        send(&p, &cfg, &ev);
        p.poll(Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(1)) {
                let a = m
                    .payload()
                    .and_then(|b| mora_schemas::decode_action(b).ok());
                if a.is_some_and(|a| {
                    a.debtor_id == id.as_str() && a.reason.step == "on_paid_in_full"
                }) {
                    lat.push(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
            }
            if Instant::now() > deadline {
                eprintln!("no action within 10 s for {id}");
                break;
            }
        }
    }
    handle.stop().expect("stop");
    lat.sort_by(f64::total_cmp);
    if !lat.is_empty() {
        println!(
            "{mode:?}: event→action latency over {} events: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
}

/// The harness alone: produce straight to a topic and time the same reader (broker and client round trip).
#[allow(clippy::print_stdout)]
fn baseline() {
    let cfg = config(DeliveryMode::AtLeastOnce, "base");
    let topic = cfg.topics.actions(Channel::Sms);
    let p = producer(&cfg);
    let reader = reader(&cfg);
    reader.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let _ = reader.poll(Duration::from_millis(50));
    }
    let mut lat = Vec::new();
    for i in 0..40 {
        let started = Instant::now();
        let key = format!("k{i}");
        p.send(BaseRecord::to(&topic).key(&key).payload("x"))
            .map_err(|(e, _)| e)
            .expect("send");
        p.poll(Duration::ZERO);
        let produced = started.elapsed().as_secs_f64() * 1000.0;
        while !matches!(reader.poll(Duration::from_millis(1)), Some(Ok(_))) {}
        lat.push((produced, started.elapsed().as_secs_f64() * 1000.0));
    }
    let mut total: Vec<f64> = lat.iter().map(|l| l.1).collect();
    let mut prod: Vec<f64> = lat.iter().map(|l| l.0).collect();
    total.sort_by(f64::total_cmp);
    prod.sort_by(f64::total_cmp);
    println!(
        "harness alone (no engine): send {:.2} ms; send→read p50 {:.1} ms, p90 {:.1} ms",
        pct(&prod, 0.5),
        pct(&total, 0.5),
        pct(&total, 0.9)
    );
}

/// Throughput: a backlog of simulated events, processed from the start by one instance.
#[allow(clippy::print_stdout)]
fn throughput(mode: DeliveryMode) {
    let cfg = config(mode, "tput");
    let sim = SimConfig {
        debtors: 20_000,
        days: 60,
        partitions: PARTITIONS as u32,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    let p = producer(&cfg);
    let mut n = 0u64;
    for part in 0..PARTITIONS as u32 {
        let mut s = PartitionSim::new(&sim, part);
        while let Some(rec) = s.pop_until(sim.end()) {
            if let SimRecord::Event(ev) = rec {
                send(&p, &cfg, &ev);
                n += 1;
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let started = Instant::now();
    let handle = run(cfg.clone(), engine()).expect("engine");
    while handle.stats().records < n {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "backlog not processed in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = handle.stop().expect("stop");
    println!(
        "{mode:?}: {n} events in {secs:.1} s from start (group join included): {:.0} events/s, {} actions, {} commits, {} out of order {:?}",
        n as f64 / secs,
        stats.actions,
        stats.commits,
        stats.out_of_order,
        stats.out_of_order_examples
    );
}

#[allow(clippy::print_stdout)] // a benchmark prints its figures
fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` runs bench targets in test mode: this one needs a broker, so skip there
    }
    baseline();
    let only_latency = std::env::var("BENCH_ONLY_LATENCY").is_ok();
    for mode in [DeliveryMode::ExactlyOnce, DeliveryMode::AtLeastOnce] {
        latency(mode);
        if !only_latency {
            throughput(mode);
        }
    }
}
