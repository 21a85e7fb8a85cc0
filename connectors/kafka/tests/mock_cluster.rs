//! The pipeline's client paths on librdkafka's in-process mock cluster: fast, server-free checks of the transaction
//! cycle and a failed transaction's abort and rewind. The proof that these hold against a real broker is in the
//! integration tests (`mora-tests`, `services` feature); these run on every `cargo test` and fail in seconds when a
//! change breaks the client paths.
//!
//! Rebalancing is proven only against a real broker (the integration tests' two-instance takeover): the mock broker
//! keeps no transaction markers and answers a committed-offset fetch during another member's open transaction
//! differently, so a member taking a partition over cannot tell there what was committed from what was not.

// Helpers outside #[test] functions panic on failure by design: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_connector_kafka::{ClockSource, KafkaConfig, RunHandle, run};
use mora_domain::action::Action;
use mora_domain::engine::Engine;
use mora_domain::event::{Envelope, EventKind};
use mora_domain::ids::Channel;
use mora_domain::testkit::{self, ts};
use mora_runtime::{CollectingSink, PartitionWorker, partition_for};
use mora_schemas::{Wire, decode_action, encode_event, family_of};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const PARTITIONS: i32 = 2;

/// One test at a time: each runs an engine, a mock broker and readers, and their group and transaction timings are
/// what is under test, so they are not left to compete for the machine's cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
const WAIT: Duration = Duration::from_secs(60);

/// A mock cluster with every topic of the pipeline, and a configuration pointing at it.
fn cluster(name: &str) -> (MockCluster<'static, DefaultProducerContext>, KafkaConfig) {
    let mock = MockCluster::new(1).unwrap();
    let mut cfg = KafkaConfig::new(mock.bootstrap_servers());
    cfg.group_id = format!("{name}-group");
    cfg.topics.input_prefix = format!("{name}.in.");
    cfg.topics.actions_prefix = format!("{name}.actions.");
    cfg.topics.audit = format!("{name}.audit");
    cfg.topics.dead_letter = format!("{name}.dlq");
    cfg.clock.source = ClockSource::Log;
    cfg.max_idle = Duration::from_millis(500);
    // The mock coordinator completes a rebalance when every member has rejoined or its session expired: short
    // sessions and heartbeats keep joins and departures to seconds.
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ] {
        cfg.librdkafka_options.insert(k.into(), v.into());
    }
    let mut topics = cfg.topics.inputs();
    topics.extend(Channel::ALL.iter().map(|c| cfg.topics.actions(*c)));
    topics.extend([cfg.topics.audit.clone(), cfg.topics.dead_letter.clone()]);
    for t in &topics {
        mock.create_topic(t, PARTITIONS, 1).unwrap();
    }
    (mock, cfg)
}

/// `debtors` debtors in four jurisdictions with an obligation each, then a later event each so that their
/// scheduled steps fall due.
fn events(debtors: usize) -> Vec<Envelope> {
    let zones = [
        ("CO", "America/Bogota"),
        ("MX", "America/Mexico_City"),
        ("US", "America/New_York"),
        ("PE", "America/Lima"),
    ];
    let t0 = ts("2026-03-02T14:00:00Z");
    let mut evs = Vec::new();
    for i in 0..debtors {
        let (country, tz) = zones[i % zones.len()];
        let id = format!("M{i}");
        let at = t0.plus_ms(i as i64 * 1000);
        evs.push(testkit::debtor_upserted(&id, country, tz, at));
        let loan = format!("{id}-L1");
        evs.push(testkit::obligation(
            &id,
            &loan,
            "USD",
            "250",
            "2026-03-10",
            at.plus_ms(60_000),
        ));
    }
    evs.extend(ticks(debtors, "2026-03-25T15:00:00Z"));
    evs
}

/// One event per debtor from `from` on, a second apart, that moves each debtor's time forward.
fn ticks(debtors: usize, from: &str) -> Vec<Envelope> {
    (0..debtors)
        .map(|i| {
            let id = format!("M{i}");
            let kind = EventKind::ConsentChanged {
                channel: Channel::Letter,
                granted: true,
            };
            let at = ts(from).plus_ms(i as i64 * 1000);
            testkit::event(&id, &format!("{id}-tick-{from}"), at, kind)
        })
        .collect()
}

fn produce(cfg: &KafkaConfig, events: &[Envelope]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    for ev in events {
        let topic = cfg.topics.input(family_of(&ev.kind).0);
        let bytes = encode_event(ev, Wire::Confluent).unwrap();
        let p = partition_for(ev.debtor_id.as_bytes(), PARTITIONS as u32) as i32;
        let rec = BaseRecord::to(&topic)
            .partition(p)
            .key(ev.debtor_id.as_bytes())
            .payload(&bytes)
            .timestamp(ev.occurred_at.0);
        producer.send(rec).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn engine() -> Arc<Engine> {
    Arc::new(testkit::engine())
}

/// What the engine decides for `events` in memory: one worker per partition, events in time order.
fn reference(events: &[Envelope]) -> Vec<String> {
    let mut by_partition: BTreeMap<u32, Vec<&Envelope>> = BTreeMap::new();
    for ev in events {
        let p = partition_for(ev.debtor_id.as_bytes(), PARTITIONS as u32);
        by_partition.entry(p).or_default().push(ev);
    }
    let mut actions = Vec::new();
    for (p, mut evs) in by_partition {
        evs.sort_by_key(|e| e.occurred_at);
        let mut worker = PartitionWorker::new(p as i32, engine());
        let mut sink = CollectingSink::default();
        for ev in evs {
            let _ = worker.on_event(ev, &mut sink);
        }
        actions.extend(sink.actions);
    }
    ids(&actions)
}

/// Action ids, sorted, duplicates kept.
fn ids(actions: &[Action]) -> Vec<String> {
    let mut v: Vec<String> = actions.iter().map(|a| a.action_id.0.to_string()).collect();
    v.sort();
    v
}

/// Every action on the action topics, read with `read_committed` to each partition's end.
fn actions_out(cfg: &KafkaConfig) -> Vec<String> {
    let mut out = Vec::new();
    for channel in Channel::ALL {
        let topic = cfg.topics.actions(channel);
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", format!("{topic}-reader"))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut open: std::collections::BTreeSet<i32> = (0..PARTITIONS).collect();
        let deadline = Instant::now() + WAIT;
        while !open.is_empty() {
            assert!(Instant::now() < deadline, "{topic} not read to its end");
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(decode_action(m.payload().unwrap()).unwrap()),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
    }
    ids(&out)
}

/// Waits until the instances together applied `n` records outside replays and committed them.
fn wait_for(handles: &[&RunHandle], n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let applied: u64 = handles
            .iter()
            .map(|h| h.stats().records - h.stats().restored)
            .sum();
        let uncommitted = handles.iter().any(|h| h.stats().buffered > 0);
        if applied >= n && !uncommitted {
            std::thread::sleep(Duration::from_millis(300)); // one more commit interval
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {applied} of {n} records applied within {WAIT:?}"
        );
        for h in handles {
            assert!(
                !h.is_finished(),
                "an instance stopped: {:?}",
                h.stats().error
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exactly_once_sends_what_the_engine_decides_and_commits_offsets_with_it() {
    let _serial = serial();
    let (_mock, cfg) = cluster("eos");
    let evs = events(12);
    produce(&cfg, &evs);
    let expected = reference(&evs);
    assert!(expected.len() >= 12, "the scenario decides actions");
    let h = run(cfg.clone(), engine()).unwrap();
    wait_for(&[&h], evs.len() as u64);
    let stats = h.stop().unwrap();
    assert!(stats.commits > 0 && stats.aborts == 0, "{stats:?}");
    assert_eq!(actions_out(&cfg), expected);
    // The offsets committed with the transactions: a restart replays nothing as new input.
    let again = run(cfg.clone(), engine()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let stats = again.stop().unwrap();
    assert_eq!(stats.records, stats.restored, "{stats:?}");
    assert_eq!(actions_out(&cfg), expected, "a restart sends nothing twice");
}

#[test]
fn a_transaction_whose_outputs_fail_is_aborted_and_its_input_applied_again() {
    let _serial = serial();
    let (mock, cfg) = cluster("abort");
    let evs = events(12);
    produce(&cfg, &evs);
    let expected = reference(&evs);
    // The broker refuses the first produce request for good: the transaction holding them can only abort.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1],
    );
    let h = run(cfg.clone(), engine()).unwrap();
    // The mock broker writes no transaction markers and reports no aborted transactions, so its `read_committed`
    // readers also see what an aborted transaction wrote (the real-broker tests prove that filter): wait until
    // every expected action is there, then compare distinct ids.
    let distinct = |v: Vec<String>| {
        let mut v = v;
        v.dedup();
        v
    };
    let deadline = Instant::now() + WAIT;
    while distinct(actions_out(&cfg)) != expected && Instant::now() < deadline {
        assert!(
            !h.is_finished(),
            "the instance stopped: {:?}",
            h.stats().error
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = h.stop().unwrap();
    assert!(stats.aborts >= 1, "a transaction was aborted: {stats:?}");
    assert!(stats.commits >= 1, "and later ones committed: {stats:?}");
    assert_eq!(
        distinct(actions_out(&cfg)),
        expected,
        "after the abort the input is applied again and every action is sent"
    );
}
