//! A fenced producer on the real broker: another producer initialising the instance's transactional id (what the
//! transaction coordinator does to a producer that stalled past its transaction timeout, or what a successor does
//! to a zombie) fences it; the instance replaces its producer, rebuilds from the committed offsets and goes on, and
//! every expected action is on the action topics exactly once under read_committed.

use std::time::{Duration, Instant};

use mora_connector_kafka::run;
use mora_domain::ids::Channel;
use mora_schemas::decode_action;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::pipeline::{
    actions_out_with, assert_same_actions, engine, fresh, produce, reference, sim_events, wait_for,
};
use crate::servers as utils;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn a_fenced_producer_is_replaced_and_every_action_is_delivered_once() {
    let mut cfg = fresh(2);
    // The instance starts on a backlog, and again after the rebuild: every record it holds arrived long ago, so a
    // topic that runs dry holds a partition back only for `max_idle` unless the client's statistics already show
    // more of it at the broker. On a loaded machine a topic's next fetch came later than the 1 s of `fresh` (CI:
    // a day's obligations applied after six weeks of the other topics, and the actions then differ from the
    // in-memory reference's, which sorts by time). This test is about fencing, not about that race: wait longer.
    cfg.max_idle = Duration::from_secs(5);
    let txn_id = utils::unique("txn");
    cfg.transactional_id = Some(txn_id.clone());
    let events = sim_events(200, 2, 40);
    let (a, b) = events.split_at(events.len() / 2);
    let expected = reference(&events, 2);

    produce(&cfg, 2, a);
    let instance = run(cfg.clone(), engine()).unwrap();
    wait_for(&[&instance], a.len() as u64);

    // The fencing: a new producer of the same transactional id bumps its epoch on the coordinator.
    let fencer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("transactional.id", &txn_id)
        .create()
        .unwrap();
    fencer.init_transactions(Duration::from_secs(30)).unwrap();
    produce(&cfg, 2, b);

    let decode = |bytes: &[u8]| decode_action(bytes).expect("valid action");
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = instance.stats();
        assert!(
            !instance.is_finished(),
            "the instance stopped instead of replacing its producer: {:?}",
            stats.error
        );
        if stats.producer_replacements > 0 && actions_out_with(&cfg, decode).len() >= expected.len()
        {
            break;
        }
        if Instant::now() >= deadline {
            // Whether the missing actions were never produced or sit in a transaction left open (which holds every
            // read_committed reader of its partition back). Committed first: the other count can only grow.
            let out = actions_out_with(&cfg, decode).len();
            let written: usize = Channel::ALL
                .iter()
                .map(|c| {
                    utils::read_to_end(&cfg.brokers, &cfg.topics.actions(*c), "read_uncommitted")
                        .len()
                })
                .sum();
            panic!(
                "after {WAIT:?}: {} producer replacements, {out} of {} actions out ({written} records written, \
                 committed or not); {stats:?}",
                stats.producer_replacements,
                expected.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // One more commit interval: anything written twice would show now.
    std::thread::sleep(Duration::from_millis(600));
    let stats = instance.stop().expect("the instance stops cleanly");
    assert_eq!(stats.producer_replacements, 1, "{stats:?}");
    assert!(
        stats.aborts >= 1,
        "the fenced transaction was given up: {stats:?}"
    );
    assert_same_actions(&actions_out_with(&cfg, decode), &expected);
}
