//! Endpoints of the real servers `deploy/services.sh` starts, and helpers for the tests that use them.

/// How to get the servers the Kafka and CQL tests need.
const HOW_TO_START: &str = "start them with `deploy/services.sh up` (or run `deploy/test.sh`), or point \
MORA_KAFKA_BROKERS / MORA_CQL_NODES at running servers";

/// The Kafka bootstrap servers: `MORA_KAFKA_BROKERS`, else the services script's 127.0.0.1:9092.
pub(crate) fn kafka_brokers() -> String {
    capture_logs();
    let brokers = std::env::var("MORA_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    require_reachable("Kafka", &brokers);
    brokers
}

/// The CQL contact points: `MORA_CQL_NODES`, else the services script's 127.0.0.1:9042.
pub(crate) fn cql_nodes() -> Vec<String> {
    let nodes = std::env::var("MORA_CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".into());
    require_reachable("CQL", &nodes);
    nodes.split(',').map(str::to_string).collect()
}

/// Sends the engine's log (tracing) to the test harness's output capture, so that a failing test prints what its
/// instances logged (threads a test starts inherit its capture; the client library's own threads log nothing here).
/// `RUST_LOG` filters it, `info` by default. Every test that talks to Kafka calls this through [`kafka_brokers`].
fn capture_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,apache_avro=error"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_thread_names(true)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    });
}

/// Fails the test, saying how to start the server, when none of `endpoints` accepts a TCP connection.
fn require_reachable(what: &str, endpoints: &str) {
    use std::net::ToSocketAddrs;
    let reachable = endpoints.split(',').any(|e| {
        e.to_socket_addrs().ok().into_iter().flatten().any(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        })
    });
    assert!(
        reachable,
        "no {what} server reachable at {endpoints}: {HOW_TO_START}"
    );
}

/// A name no other test (or earlier run) uses: `prefix_<pid>_<nanos>_<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every record of `topic` (all partitions, assigned explicitly), read until the client reports each partition's
/// end: the last stable offset with `read_committed`, the high watermark with `read_uncommitted`. The result never
/// depends on how quickly records arrive.
pub(crate) fn read_to_end(
    brokers: &str,
    topic: &str,
    isolation: &str,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use std::time::{Duration, Instant};
    // One consumer per topic: an end-of-partition report names the partition only.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut open = std::collections::BTreeSet::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
        open.insert(p.id());
    }
    assert!(!open.is_empty(), "topic {topic} has no partitions");
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{topic}: partitions {open:?} not read to their end"
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            // A broker restarting or a leader moving (the cluster's fault tests): the client retries; the deadline
            // above bounds it.
            Some(Err(e)) => eprintln!("reading {topic}: {e}; going on"),
            None => {}
        }
    }
    out
}
