//! The real Kafka broker is there and behaves as the engine needs: keyed produce and consume on a fresh topic, and
//! transactions that a `read_committed` consumer sees only once committed (never when aborted).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use crate::servers as utils;

const TIMEOUT: Duration = Duration::from_secs(30);

fn create_topic(brokers: &str, partitions: i32) -> String {
    let topic = utils::unique("mora_test");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .expect("create_topics request");
    for r in results {
        r.expect("topic created");
    }
    topic
}

fn consumer(brokers: &str, topic: &str, isolation: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", utils::unique("mora_test_group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Polls until `want` values arrived or `wait` passed; returns (key, value) pairs.
fn drain(c: &BaseConsumer, want: usize, wait: Duration) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    while got.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            got.push((text(m.key()), text(m.payload())));
        }
    }
    got
}

#[test]
fn keyed_records_round_trip_through_a_fresh_topic() {
    let brokers = utils::kafka_brokers();
    let topic = create_topic(&brokers, 3);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..30 {
        let (key, value) = (format!("D{:03}", i % 7), format!("event-{i}"));
        producer
            .send(BaseRecord::to(&topic).key(&key).payload(&value))
            .expect("enqueue");
    }
    producer.flush(Timeout::After(TIMEOUT)).expect("flush");
    let got = drain(&consumer(&brokers, &topic, "read_uncommitted"), 30, TIMEOUT);
    assert_eq!(got.len(), 30, "all records consumed");
    let values: BTreeSet<_> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values.len(), 30);
    // Records of one key keep their order (one key, one partition).
    let d0: Vec<_> = got
        .iter()
        .filter(|(k, _)| k == "D000")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(
        d0,
        vec!["event-0", "event-7", "event-14", "event-21", "event-28"]
    );
}

fn transactional_producer(brokers: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", utils::unique("mora_test_tx"))
        .create()
        .expect("transactional producer");
    p.init_transactions(Timeout::After(TIMEOUT))
        .expect("init_transactions (transactions work on one node)");
    p
}

#[test]
fn read_committed_sees_a_transaction_only_after_commit() {
    let brokers = utils::kafka_brokers();
    let topic = create_topic(&brokers, 1);
    let producer = transactional_producer(&brokers);
    let committed = consumer(&brokers, &topic, "read_committed");
    let uncommitted = consumer(&brokers, &topic, "read_uncommitted");

    producer.begin_transaction().expect("begin");
    for i in 0..5 {
        producer
            .send(BaseRecord::to(&topic).key("D1").payload(&format!("tx-{i}")))
            .expect("enqueue");
    }
    producer
        .flush(Timeout::After(TIMEOUT))
        .expect("flush inside the transaction");
    // The records are in the log (a read_uncommitted consumer sees them) but not committed.
    assert_eq!(
        drain(&uncommitted, 5, TIMEOUT).len(),
        5,
        "records written before commit"
    );
    assert!(
        drain(&committed, 1, Duration::from_secs(3)).is_empty(),
        "read_committed saw uncommitted records"
    );

    producer
        .commit_transaction(Timeout::After(TIMEOUT))
        .expect("commit");
    let got = drain(&committed, 5, TIMEOUT);
    assert_eq!(
        got.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        ["tx-0", "tx-1", "tx-2", "tx-3", "tx-4"]
    );
}

#[test]
fn read_committed_never_sees_an_aborted_transaction() {
    let brokers = utils::kafka_brokers();
    let topic = create_topic(&brokers, 1);
    let producer = transactional_producer(&brokers);
    producer.begin_transaction().expect("begin");
    producer
        .send(BaseRecord::to(&topic).key("D1").payload("aborted"))
        .expect("enqueue");
    producer.flush(Timeout::After(TIMEOUT)).expect("flush");
    producer
        .abort_transaction(Timeout::After(TIMEOUT))
        .expect("abort");
    producer.begin_transaction().expect("begin again");
    producer
        .send(BaseRecord::to(&topic).key("D1").payload("kept"))
        .expect("enqueue");
    producer
        .commit_transaction(Timeout::After(TIMEOUT))
        .expect("commit");
    let got = drain(
        &consumer(&brokers, &topic, "read_committed"),
        2,
        Duration::from_secs(8),
    );
    assert_eq!(got, vec![("D1".to_string(), "kept".to_string())]);
}
