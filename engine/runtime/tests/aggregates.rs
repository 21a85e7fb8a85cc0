//! What a partition publishes for other instances and keeps across owners: KPI days survive a restore exactly, and
//! a summary carries the same portfolio and queue order as the worker it was taken from.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use mora_domain::testkit::{self, debtor_upserted, obligation, payment, promise, ts};
use mora_runtime::{CollectingSink, Operator, PartitionWorker, dim_label, dim_of_label};

/// A partition with 60 debtors: obligations falling due, some paid, some promised, a month of time.
fn busy_worker() -> PartitionWorker {
    let mut w = PartitionWorker::new(2, Arc::new(testkit::engine()));
    let mut sink = CollectingSink::default();
    let at = ts("2026-03-02T14:00:00Z");
    for i in 0..60 {
        let id = format!("D-{i:03}");
        let amount = format!("{}", 50_000 + i * 7_919);
        w.on_event(&debtor_upserted(&id, "CO", "America/Bogota", at), &mut sink)
            .unwrap();
        w.on_event(
            &obligation(&id, "L1", "COP", &amount, "2026-03-05", at),
            &mut sink,
        )
        .unwrap();
    }
    w.on_tick(ts("2026-03-12T15:00:00Z"), &mut sink);
    for i in (0..60).step_by(3) {
        let id = format!("D-{i:03}");
        let at = ts("2026-03-12T16:00:00Z");
        w.on_event(
            &payment(&id, "P1", "COP", "50000", Some("L1"), at),
            &mut sink,
        )
        .unwrap();
    }
    for i in (1..60).step_by(4) {
        let id = format!("D-{i:03}");
        let at = ts("2026-03-13T16:00:00Z");
        w.on_event(
            &promise(&id, "PR1", "COP", "20000", "2026-03-16", at),
            &mut sink,
        )
        .unwrap();
    }
    w.on_tick(ts("2026-04-02T15:00:00Z"), &mut sink);
    w
}

#[test]
fn kpi_days_survive_a_restore_exactly() {
    let mut w = busy_worker();
    let days = w.take_kpi_days();
    assert!(days.len() > 3, "counted on several days: {}", days.len());
    let debtors: Vec<_> = w.debtors().cloned().collect();
    let mut restored = PartitionWorker::restore(
        2,
        Arc::new(testkit::engine()),
        w.clock(),
        debtors,
        Default::default(),
    );
    assert_ne!(
        restored.kpis(90),
        w.kpis(90),
        "nothing counted before loading"
    );
    assert_eq!(restored.load_kpi_days(days), 0);
    assert_eq!(restored.kpis(90), w.kpis(90));
    assert_eq!(restored.kpis(7), w.kpis(7));
    assert!(
        restored.take_kpi_days().is_empty(),
        "loading is not a change"
    );
}

#[test]
fn every_dimension_label_names_its_dimension_again() {
    let w = busy_worker();
    let engine = testkit::engine();
    let dims = w.kpis(90);
    assert!(dims.len() >= 3, "all, a segment and an arm");
    for dim in dims.keys() {
        assert_eq!(dim_of_label(&engine, &dim_label(&engine, *dim)), Some(*dim));
    }
    assert_eq!(dim_of_label(&engine, "segment:no-such-segment"), None);
}

#[test]
fn a_summary_is_the_portfolio_and_the_head_of_each_queue() {
    let w = busy_worker();
    let s = w.summary(7);
    assert_eq!((s.partition, s.clock), (2, w.clock()));
    assert_eq!(s.portfolio, w.portfolio());
    let mut checked = 0;
    for (name, head) in &s.queues {
        assert_eq!(head.len as usize, w.queue_len(name));
        let top: Vec<_> = w
            .queue_top(name, 7)
            .into_iter()
            .map(|(rank, id)| (rank, id.to_string()))
            .collect();
        let published: Vec<_> = head
            .entries
            .iter()
            .map(|e| (e.rank, e.debtor_id.clone()))
            .collect();
        assert_eq!(published, top, "queue {name}");
        checked += usize::from(head.truncated());
    }
    assert!(checked > 0, "some queue is longer than the head");
}
