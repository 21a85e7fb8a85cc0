//! Work-queue order does not depend on when each debtor was last evaluated: queues are ordered by a rank whose
//! days-past-due term does not decay, so re-evaluating everyone at one instant moves no one; and a debtor enters a
//! queue when its DPD reaches the queue's `min_dpd`, with no event needed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use mora_domain::engine::Engine;
use mora_domain::event::EventKind;
use mora_domain::ids::Channel;
use mora_domain::queues::QueueConfig;
use mora_domain::testkit::{self, debtor_upserted, event, obligation, ts};
use mora_domain::time::Ts;
use mora_runtime::{CollectingSink, Operator, PartitionWorker};

/// Twenty past-due debtors, due on different days with different amounts, each last evaluated on a different day
/// (a harmless event on day 20 + i for debtor i): their stored priorities carry DPD terms of different ages.
fn staggered() -> PartitionWorker {
    let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
    let mut sink = CollectingSink::default();
    let at = ts("2026-03-02T14:00:00Z");
    for i in 0..20u32 {
        let id = format!("D-{i:02}");
        let due = format!("2026-03-{:02}", 5 + i % 7);
        let amount = format!("{}", 300_000 + (19 - i) * 23_000);
        w.on_event(&debtor_upserted(&id, "CO", "America/Bogota", at), &mut sink)
            .unwrap();
        w.on_event(&obligation(&id, "L1", "COP", &amount, &due, at), &mut sink)
            .unwrap();
    }
    for i in 0..20u32 {
        let id = format!("D-{i:02}");
        let kind = EventKind::ConsentChanged {
            channel: Channel::Letter,
            granted: true,
        };
        let when = Ts(ts("2026-03-20T20:00:00Z").0 + i64::from(i) * 86_400_000);
        w.on_event(&event(&id, &format!("{id}-c"), when, kind), &mut sink)
            .unwrap();
    }
    w
}

fn stale_priority_order(w: &PartitionWorker, ids: &[String]) -> Vec<String> {
    let mut by: Vec<(i64, String)> = ids
        .iter()
        .map(|id| (w.debtor(id).unwrap().derived.priority, id.clone()))
        .collect();
    by.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    by.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn re_evaluating_everyone_at_one_instant_leaves_the_queue_order_and_ranks_unchanged() {
    let mut w = staggered();
    let before = w.queue_top("dialer", usize::MAX);
    assert_eq!(before.len(), 20, "every debtor is past due and queued");
    let ids: Vec<String> = before.iter().map(|(_, id)| id.to_string()).collect();
    let stale = stale_priority_order(&w, &ids);
    let priorities: Vec<i64> = ids
        .iter()
        .map(|id| w.debtor(id).unwrap().derived.priority)
        .collect();

    // The same configuration swapped in re-derives every debtor at the partition's clock: DPD and priority as of now.
    let engine = Arc::new(testkit::engine());
    let refreshed = w.set_engine(engine);
    assert!(refreshed > 0, "some stored priorities were stale");
    let after = w.queue_top("dialer", usize::MAX);
    assert_eq!(before, after, "order and ranks unchanged by re-evaluation");
    let fresh: Vec<i64> = ids
        .iter()
        .map(|id| w.debtor(id).unwrap().derived.priority)
        .collect();
    assert_ne!(priorities, fresh, "the refresh moved priorities");
    // The queue order is the order of the priorities as of now, which the stale priorities did not give.
    let now_order = stale_priority_order(&w, &ids);
    assert_eq!(now_order, ids, "queue order = order by current priority");
    assert_ne!(
        stale, ids,
        "ordering by stored priorities would have been wrong here"
    );
}

#[test]
fn a_debtor_enters_a_queue_when_its_dpd_reaches_the_queue_minimum_with_no_event() {
    let mut cfg = testkit::engine_config();
    cfg.queues.push(QueueConfig {
        name: "late".into(),
        stages: vec![],
        segments: vec![],
        min_dpd: 12, // no bucket or stage edge there
    });
    let engine = Engine::new(&cfg, &testkit::policies(), &testkit::calendars()).unwrap();
    let mut w = PartitionWorker::new(0, Arc::new(engine));
    let mut sink = CollectingSink::default();
    let at = ts("2026-03-02T14:00:00Z");
    w.on_event(
        &debtor_upserted("D-1", "CO", "America/Bogota", at),
        &mut sink,
    )
    .unwrap();
    w.on_event(
        &obligation("D-1", "L1", "COP", "400000", "2026-03-05", at),
        &mut sink,
    )
    .unwrap();
    // 11 days past due at Bogota's midnight of 2026-03-16 (05:00Z); 12 at that of 2026-03-17.
    w.on_tick(ts("2026-03-17T04:00:00Z"), &mut sink);
    assert_eq!(w.queue_len("late"), 0);
    w.on_tick(ts("2026-03-17T06:00:00Z"), &mut sink);
    assert_eq!(w.queue_len("late"), 1, "woken at the threshold");
    assert_eq!(w.debtor("D-1").unwrap().derived.dpd, 12);
}
