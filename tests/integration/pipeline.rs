//! The streaming engine on the real broker: what goes in, what comes out (read_committed), dead letters,
//! cancellations, two instances sharing and handing over partitions, and topics that are not co-partitioned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_connector_kafka::{
    ClockSource, KafkaConfig, PipelineError, RunHandle, create_topics, run, run_with_state,
};
use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::engine::Engine;
use mora_domain::event::{Envelope, EventKind};
use mora_domain::ids::Channel;
use mora_domain::testkit::{self, ts};
use mora_runtime::{CollectingSink, PartitionWorker, partition_for};
use mora_schemas::{
    Family, Wire, decode_action, decode_audit, decode_clock, decode_dead_letter, encode_event,
    family_of,
};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::servers as utils;

const WAIT: Duration = Duration::from_secs(90);

pub(crate) fn engine() -> Arc<Engine> {
    Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    )
}

/// A configuration on fresh, uniquely named topics with `partitions` partitions (created here).
pub(crate) fn fresh(partitions: i32) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(utils::kafka_brokers());
    let p = utils::unique("t");
    cfg.group_id = format!("{p}-group");
    cfg.topics.input_prefix = format!("{p}.in.");
    cfg.topics.actions_prefix = format!("{p}.actions.");
    cfg.topics.audit = format!("{p}.audit");
    cfg.topics.dead_letter = format!("{p}.dlq");
    // The tests produce whole batches while the engine runs; their topics reach the consumer up to a few hundred
    // milliseconds apart. A longer idle wait keeps cross-topic order exact, so outputs can be compared one to one
    // with the in-memory reference (production trades this against latency; see `max_idle`).
    cfg.max_idle = Duration::from_millis(1000);
    // Simulated history: time comes from the log, not from this machine's clock.
    cfg.clock.source = ClockSource::Log;
    create_topics(&cfg, partitions, 1).expect("topics created");
    cfg
}

/// Produces events (keyed by debtor, on the partition Kafka's murmur2 partitioner picks, stamped with event time).
pub(crate) fn produce(cfg: &KafkaConfig, partitions: u32, events: &[Envelope]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    for ev in events {
        let topic = cfg.topics.input(family_of(&ev.kind).0);
        let bytes = encode_event(ev, Wire::Confluent).unwrap();
        let p = partition_for(ev.debtor_id.as_bytes(), partitions) as i32;
        let rec = BaseRecord::to(&topic)
            .partition(p)
            .key(ev.debtor_id.as_bytes())
            .payload(&bytes)
            .timestamp(ev.occurred_at.0);
        producer.send(rec).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

pub(crate) fn produce_raw(
    cfg: &KafkaConfig,
    topic: &str,
    partition: i32,
    key: &str,
    payload: &[u8],
    at: i64,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    let rec = BaseRecord::to(topic)
        .partition(partition)
        .key(key.as_bytes())
        .payload(payload)
        .timestamp(at);
    producer.send(rec).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// What the engine decides for `events`, computed in memory: one worker per partition, events in time order.
pub(crate) fn reference(events: &[Envelope], partitions: u32) -> Vec<Action> {
    let engine = engine();
    let mut by_partition: BTreeMap<u32, Vec<&Envelope>> = BTreeMap::new();
    for ev in events {
        by_partition
            .entry(partition_for(ev.debtor_id.as_bytes(), partitions))
            .or_default()
            .push(ev);
    }
    let mut actions = Vec::new();
    for (p, mut evs) in by_partition {
        evs.sort_by_key(|e| e.occurred_at);
        let mut worker = PartitionWorker::new(p as i32, engine.clone());
        let mut sink = CollectingSink::default();
        for ev in evs {
            let _ = worker.on_event(ev, &mut sink);
        }
        actions.extend(sink.actions);
    }
    actions
}

/// Waits until the instances together applied `n` non-replayed records and committed them.
pub(crate) fn wait_for(handles: &[&RunHandle], n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let applied: u64 = handles
            .iter()
            .map(|h| h.stats().records - h.stats().restored)
            .sum();
        if applied >= n {
            std::thread::sleep(Duration::from_millis(400)); // one more commit interval
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {applied} of {n} records applied within {WAIT:?}"
        );
        for h in handles {
            assert!(
                !h.is_finished(),
                "an engine instance stopped unexpectedly: {:?}",
                h.stats().error
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything on `topics`, read with read_committed to each partition's end.
pub(crate) fn read_committed(cfg: &KafkaConfig, topics: &[String]) -> Vec<(String, Vec<u8>)> {
    topics
        .iter()
        .flat_map(|t| utils::read_to_end(&cfg.brokers, t, "read_committed"))
        .map(|m| {
            (
                m.topic().to_string(),
                m.payload().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

/// Every action on the action topics (read_committed), decoded by `decode`.
pub(crate) fn actions_out_with(cfg: &KafkaConfig, decode: impl Fn(&[u8]) -> Action) -> Vec<Action> {
    let topics: Vec<String> = Channel::ALL
        .iter()
        .map(|c| cfg.topics.actions(*c))
        .collect();
    read_committed(cfg, &topics)
        .into_iter()
        .map(|(_, b)| decode(&b))
        .collect()
}

fn actions_out(cfg: &KafkaConfig) -> Vec<Action> {
    let topics: Vec<String> = Channel::ALL
        .iter()
        .map(|c| cfg.topics.actions(*c))
        .collect();
    read_committed(cfg, &topics)
        .into_iter()
        .map(|(_, b)| decode_action(&b).expect("valid action"))
        .collect()
}

fn audits_out(cfg: &KafkaConfig) -> Vec<AuditRecord> {
    read_committed(cfg, std::slice::from_ref(&cfg.topics.audit))
        .into_iter()
        .map(|(_, b)| decode_audit(&b).unwrap())
        .collect()
}

/// Action ids, sorted, duplicates kept (a multiset).
fn ids(actions: &[Action]) -> Vec<String> {
    let mut v: Vec<String> = actions.iter().map(|a| a.action_id.0.to_string()).collect();
    v.sort();
    v
}

/// The same actions (as a multiset of ids); on failure, shows only the differences.
pub(crate) fn assert_same_actions(out: &[Action], expected: &[Action]) {
    let (got, want) = (ids(out), ids(expected));
    if got == want {
        return;
    }
    let describe = |a: &Action| {
        format!(
            "{} {} {}/{} at {}",
            a.action_id.0, a.debtor_id, a.reason.strategy, a.reason.step, a.not_before
        )
    };
    let missing: Vec<String> = expected
        .iter()
        .filter(|a| !got.contains(&a.action_id.0.to_string()))
        .map(describe)
        .take(10)
        .collect();
    let extra: Vec<String> = out
        .iter()
        .filter(|a| !want.contains(&a.action_id.0.to_string()))
        .map(describe)
        .take(10)
        .collect();
    panic!(
        "{} actions out, {} expected; missing (first 10): {missing:#?}; unexpected (first 10): {extra:#?}",
        out.len(),
        expected.len()
    );
}

pub(crate) fn scenario() -> Vec<Envelope> {
    let t0 = ts("2026-03-02T14:00:00Z");
    let mut evs = Vec::new();
    for (i, (country, tz)) in [
        ("CO", "America/Bogota"),
        ("MX", "America/Mexico_City"),
        ("US", "America/New_York"),
        ("PE", "America/Lima"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("S{i}");
        let at = t0.plus_ms(i as i64 * 1000);
        evs.push(testkit::debtor_upserted(&id, country, tz, at));
        evs.push(testkit::obligation(
            &id,
            &format!("{id}-L1"),
            "USD",
            "250",
            "2026-03-10",
            at.plus_ms(60_000),
        ));
    }
    // Time moves on for every debtor (a later, harmless event each), so their scheduled steps fall due.
    for i in 0..4 {
        let id = format!("S{i}");
        let kind = EventKind::ConsentChanged {
            channel: Channel::Letter,
            granted: true,
        };
        evs.push(testkit::event(
            &id,
            &format!("{id}-tick"),
            ts("2026-03-25T15:00:00Z").plus_ms(i * 1000),
            kind,
        ));
    }
    evs
}

#[test]
fn scenario_events_in_exactly_the_expected_actions_out() {
    let cfg = fresh(3);
    let events = scenario();
    produce(&cfg, 3, &events);
    let expected = reference(&events, 3);
    assert!(
        expected.len() >= 8,
        "the scenario produces actions ({})",
        expected.len()
    );
    let handle = run(cfg.clone(), engine()).expect("engine starts");
    wait_for(&[&handle], events.len() as u64);
    let stats = handle.stop().expect("clean stop");
    let out = actions_out(&cfg);
    assert_same_actions(&out, &expected);
    assert_eq!(stats.aborts, 0);
    assert!(stats.commits >= 1);
    assert_eq!(stats.out_of_order, 0, "{:?}", stats.out_of_order_examples);
}

#[test]
fn a_poison_record_goes_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let cfg = fresh(1);
    let at = ts("2026-03-02T14:00:00Z");
    let payment_topic = cfg.topics.input(mora_schemas::Family::Payment);
    produce_raw(&cfg, &payment_topic, 0, "P1", b"\x02not avro at all", at.0);
    let events = vec![
        testkit::debtor_upserted("P1", "CO", "America/Bogota", at.plus_ms(1000)),
        testkit::obligation("P1", "P1-L1", "USD", "100", "2026-03-03", at.plus_ms(2000)),
    ];
    produce(&cfg, 1, &events);
    let handle = run(cfg.clone(), engine()).expect("engine starts");
    wait_for(&[&handle], 3);
    handle.stop().unwrap();
    let dead: Vec<_> = read_committed(&cfg, std::slice::from_ref(&cfg.topics.dead_letter))
        .into_iter()
        .map(|(_, b)| decode_dead_letter(&b).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].topic.as_str(), dead[0].partition, dead[0].offset),
        (payment_topic.as_str(), 0, 0)
    );
    assert_eq!(dead[0].error_kind, "decode");
    assert!(!dead[0].reason.is_empty());
    assert_eq!(dead[0].payload, b"\x02not avro at all");
    // The records after it were applied: the debtor exists and its decisions were audited.
    assert!(audits_out(&cfg).iter().any(|a| a.debtor_id == "P1"));
}

#[test]
fn a_payment_cancels_an_action_waiting_for_its_window() {
    let cfg = fresh(1);
    let t0 = ts("2026-03-02T14:00:00Z");
    // Due Thursday 2026-03-05; the D+3 WhatsApp falls on Sunday (blocked in Colombia) and waits.
    let mut events = vec![
        testkit::debtor_upserted("C1", "CO", "America/Bogota", t0),
        testkit::obligation("C1", "C1-L1", "USD", "100", "2026-03-05", t0.plus_ms(1000)),
    ];
    // Saturday night: the debtor pays in full.
    events.push(testkit::payment(
        "C1",
        "C1-P1",
        "USD",
        "100",
        None,
        ts("2026-03-08T01:00:00Z"),
    ));
    // Two weeks later something else happens, so time has certainly passed every release instant.
    events.push(testkit::event(
        "C1",
        "C1-later",
        ts("2026-03-20T15:00:00Z"),
        EventKind::ConsentChanged {
            channel: Channel::Letter,
            granted: true,
        },
    ));
    produce(&cfg, 1, &events);
    let handle = run(cfg.clone(), engine()).unwrap();
    wait_for(&[&handle], events.len() as u64);
    handle.stop().unwrap();
    let paid_at = ts("2026-03-08T01:00:00Z");
    let after: Vec<_> = actions_out(&cfg)
        .into_iter()
        .filter(|a| a.not_before > paid_at && a.reason.step != "on_paid_in_full")
        .collect();
    assert!(
        after.is_empty(),
        "actions sent after the payment: {after:?}"
    );
    let audits = audits_out(&cfg);
    assert!(
        audits
            .iter()
            .any(|a| a.kind == DecisionKind::Cancelled && a.reason == "payment_received"),
        "the deferred action's cancellation is audited"
    );
}

pub(crate) fn sim_events(debtors: u64, partitions: u32, days: u32) -> Vec<Envelope> {
    let cfg = SimConfig {
        debtors,
        days,
        partitions,
        poison_rate: 0.0,
        seed: 5,
        ..SimConfig::default()
    };
    let mut all = Vec::new();
    for p in 0..partitions {
        let mut sim = PartitionSim::new(&cfg, p);
        while let Some(rec) = sim.pop_until(cfg.end()) {
            if let SimRecord::Event(ev) = rec {
                all.push(ev);
            }
        }
    }
    all
}

fn applied(h: &RunHandle) -> u64 {
    let s = h.stats();
    s.records - s.restored
}

#[test]
#[ignore = "timing-sensitive under a loaded machine: deploy/test.sh runs it on its own after the suite"]
fn two_instances_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    takeover(1);
}

/// As above with two engine threads per instance: four group members, then two taking over.
#[test]
#[ignore = "timing-sensitive under a loaded machine: deploy/test.sh runs it on its own after the suite"]
fn two_instances_of_two_engine_threads_each_hand_over_without_duplicates() {
    takeover(2);
}

fn takeover(threads: usize) {
    let mut cfg = fresh(4);
    // A rebalance restarts the fetches of every reassigned topic-partition; on this two-core machine, with two
    // instances, the broker and the database busy, one input topic of a partition has been seen to arrive more than
    // the suite's 1 s after the others (a CI run applied 148 records out of order that way). The hand-over is what is
    // tested here, so the instances may wait longer for a topic that is behind.
    cfg.max_idle = Duration::from_secs(5);
    let events = sim_events(400, 4, 50);
    let third = events.len() / 3;
    let (a, rest) = events.split_at(third);
    let (b, c) = rest.split_at(third);
    let engine = engine();

    produce(&cfg, 4, a);
    let first = run_with_state(cfg.clone(), engine.clone(), None, threads).unwrap();
    assert_eq!(first.threads(), threads);
    wait_for(&[&first], a.len() as u64);
    let second = run_with_state(cfg.clone(), engine.clone(), None, threads).unwrap();
    let deadline = Instant::now() + WAIT;
    while second.stats().assigned.is_empty()
        || first.stats().assigned.len() + second.stats().assigned.len() != 4
    {
        assert!(
            Instant::now() < deadline,
            "the partitions were not split between the two instances"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What an operator's admin client sees: every engine thread of both instances is a member of the group.
    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    let members = || {
        let groups = admin
            .fetch_group_list(Some(&cfg.group_id), Duration::from_secs(10))
            .unwrap();
        groups
            .groups()
            .iter()
            .find(|g| g.name() == cfg.group_id)
            .map(|g| (g.state().to_string(), g.members().len()))
    };
    // The group may still be settling (a member's join answered before the broker reports it stable).
    let deadline = Instant::now() + WAIT;
    let mut seen = members();
    while seen.as_ref().map(|(state, n)| (state.as_str(), *n)) != Some(("Stable", 2 * threads)) {
        assert!(
            Instant::now() < deadline,
            "one group member per engine thread: expected {} in a stable group, saw {seen:?}",
            2 * threads
        );
        std::thread::sleep(Duration::from_millis(200));
        seen = members();
    }
    produce(&cfg, 4, b);
    wait_for(&[&first, &second], (a.len() + b.len()) as u64);

    let first_applied = applied(&first);
    let first_stats = first.stop().expect("the first instance stops cleanly");
    assert_eq!(
        first_stats.out_of_order, 0,
        "{:?}",
        first_stats.out_of_order_examples
    );
    let deadline = Instant::now() + WAIT;
    while second.stats().assigned.len() != 4 {
        assert!(
            Instant::now() < deadline,
            "the remaining instance did not take over every partition"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    produce(&cfg, 4, c);
    let deadline = Instant::now() + WAIT;
    while first_applied + applied(&second) < events.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "not every record was applied after the hand-over"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(400));
    let second_stats = second.stop().unwrap();
    assert_eq!(
        second_stats.out_of_order, 0,
        "{:?}",
        second_stats.out_of_order_examples
    );
    assert!(
        second_stats.restored > 0,
        "the instance that took over rebuilt state by replaying"
    );
    let out = actions_out(&cfg);
    let mut seen = BTreeMap::new();
    for a in &out {
        *seen.entry(a.action_id.0.to_string()).or_insert(0) += 1;
    }
    let twice: Vec<_> = out
        .iter()
        .filter(|a| seen[a.action_id.0.as_str()] > 1)
        .map(|a| (&a.debtor_id, &a.reason, a.not_before, a.created_at))
        .collect();
    assert!(twice.is_empty(), "actions written twice: {twice:#?}");
    let expected = reference(&events, 4);
    assert_same_actions(&out, &expected);
}

#[test]
fn topics_that_are_not_co_partitioned_are_refused_at_start() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    let cfg = fresh(3);
    let topic = cfg.topics.input(mora_schemas::Family::Payment);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for r in rt
        .block_on(admin.create_partitions(&[NewPartitions::new(&topic, 5)], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
    // Wait until the broker's metadata shows the new partitions.
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while probe
        .fetch_metadata(Some(&topic), Duration::from_secs(5))
        .unwrap()
        .topics()[0]
        .partitions()
        .len()
        != 5
    {
        assert!(Instant::now() < deadline, "partitions not added");
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = run(cfg.clone(), engine()).err();
    assert!(
        matches!(&err, Some(PipelineError::Topics(m)) if m.contains("not co-partitioned") && m.contains(&format!("{topic}=5"))),
        "{err:?}"
    );
}

/// With `kafka.clock.source = "wall"`, an instance writes its wall time to the clock topic for each partition it
/// owns every interval and applies those records like any input: time moves with no event at all, within about the
/// interval of wall time.
#[test]
fn wall_clock_records_keep_time_moving_with_no_events() {
    let mut cfg = fresh(2);
    cfg.clock.source = ClockSource::Wall;
    cfg.clock.interval = Duration::from_millis(200);
    let h = run(cfg.clone(), engine()).expect("engine starts");
    let deadline = Instant::now() + WAIT;
    while h.stats().assigned.len() != 2 {
        assert!(Instant::now() < deadline, "partitions not assigned");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let now = mora_connector_kafka::system_time();
    let stats = h.stop().expect("clean stop");
    assert!(
        stats.clock_records_written >= 2 * 8,
        "{} clock records written in 3 s at 200 ms for 2 partitions",
        stats.clock_records_written
    );
    assert!(stats.records > 0, "the clock records were applied");
    let records = utils::read_to_end(
        &cfg.brokers,
        &cfg.topics.input(Family::Clock),
        "read_committed",
    );
    for p in 0..2 {
        let ticks: Vec<_> = records
            .iter()
            .filter(|m| m.partition() == p)
            .map(|m| decode_clock(m.payload().unwrap_or_default()).expect("valid clock record"))
            .collect();
        assert!(ticks.len() >= 8, "partition {p}: {} ticks", ticks.len());
        assert!(ticks.iter().all(|t| t.partition == p && t.source == "wall"));
        let gaps: Vec<i64> = ticks.windows(2).map(|w| w[1].at.0 - w[0].at.0).collect();
        assert!(
            gaps.iter().all(|g| *g > 0 && *g < 1_000),
            "partition {p}: gaps between wall-clock records {gaps:?} ms"
        );
        let last = ticks.iter().map(|t| t.at).max().unwrap();
        assert!(
            now.0 - last.0 < 1_000,
            "partition {p}: time lagged wall time by {} ms when the stop was asked",
            now.0 - last.0
        );
    }
}
