//! Time as data: a partition's time moves with the clock records in its log, and every timer fires at its own
//! instant, with no event for the debtor. Records go through `Operator::process` exactly as the pipeline and a
//! replay deliver them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use mora_domain::action::DecisionKind;
use mora_domain::event::Envelope;
use mora_domain::testkit::{self, debtor_upserted, obligation, promise, ts};
use mora_domain::time::Ts;
use mora_runtime::{CollectingSink, InputRecord, Operator, PartitionWorker};
use mora_schemas::{ClockTick, Family, Wire, encode_clock, encode_event, family_of};

struct Log {
    worker: PartitionWorker,
    sink: CollectingSink,
    offset: i64,
}

impl Log {
    fn new() -> Self {
        Self {
            worker: PartitionWorker::new(0, Arc::new(testkit::engine())),
            sink: CollectingSink::default(),
            offset: 0,
        }
    }

    fn event(&mut self, ev: &Envelope) {
        let (family, _) = family_of(&ev.kind);
        let bytes = encode_event(ev, Wire::Confluent).unwrap();
        self.record(family, Some(ev.debtor_id.as_bytes()), &bytes);
    }

    fn clock(&mut self, at: Ts) {
        let bytes = encode_clock(
            &ClockTick {
                source: "test".into(),
                partition: 0,
                at,
            },
            Wire::Confluent,
        )
        .unwrap();
        self.record(Family::Clock, Some(b"0"), &bytes);
    }

    fn record(&mut self, family: Family, key: Option<&[u8]>, payload: &[u8]) {
        self.offset += 1;
        let rec = InputRecord {
            family,
            topic: "in",
            partition: 0,
            offset: self.offset,
            key,
            payload,
            writer: None,
        };
        self.worker.process(&rec, &mut self.sink);
        assert!(
            self.sink.dead_letters.is_empty(),
            "{:?}",
            self.sink.dead_letters
        );
    }

    fn audits(&self, kind: DecisionKind) -> Vec<(Ts, String)> {
        self.sink
            .audits
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.at, r.reason.to_string()))
            .collect()
    }
}

/// A debtor falls one day past due at the first instant of its local day after the due date: the clock record one
/// millisecond earlier changes nothing; a later one fires the debtor's timer at that instant.
#[test]
fn midnight_crossings_in_four_zones_including_dst_come_from_clock_records() {
    let cases = [
        // Bogotá, UTC-5 all year.
        ("America/Bogota", "CO", "2026-06-30", "2026-07-01T05:00:00Z"),
        // Mexico City, UTC-6 all year since 2022 (no DST on the first Sunday of April any more).
        (
            "America/Mexico_City",
            "MX",
            "2026-04-04",
            "2026-04-05T06:00:00Z",
        ),
        // Santiago: clocks jump from 00:00 to 01:00 on 2026-09-06; that day starts at 01:00 -03 = 04:00Z.
        (
            "America/Santiago",
            "CL",
            "2026-09-05",
            "2026-09-06T04:00:00Z",
        ),
        // New York, the day clocks spring forward (starts at 00:00 EST) ...
        (
            "America/New_York",
            "US",
            "2026-03-07",
            "2026-03-08T05:00:00Z",
        ),
        // ... the day after (00:00 EDT) ...
        (
            "America/New_York",
            "US",
            "2026-03-08",
            "2026-03-09T04:00:00Z",
        ),
        // ... and the day after clocks fall back (00:00 EST again).
        (
            "America/New_York",
            "US",
            "2026-11-01",
            "2026-11-02T05:00:00Z",
        ),
    ];
    for (zone, country, due, midnight) in cases {
        let midnight = ts(midnight);
        let mut log = Log::new();
        let start = ts("2026-01-02T12:00:00Z");
        log.event(&debtor_upserted("D-1", country, zone, start));
        log.event(&obligation("D-1", "L1", "USD", "100", due, start));
        log.clock(midnight.minus_ms(1));
        assert_eq!(
            log.worker.debtor("D-1").unwrap().derived.dpd,
            0,
            "{zone}: still current one millisecond before local midnight"
        );
        let before = log.sink.audits.len();
        let later = midnight.plus_ms(6 * 3_600_000);
        log.clock(later);
        let d = log.worker.debtor("D-1").unwrap();
        assert_eq!(d.derived.dpd, 1, "{zone}");
        let reclassified: Vec<Ts> = log.sink.audits[before..]
            .iter()
            .filter(|r| r.kind == DecisionKind::Reclassified)
            .map(|r| r.at)
            .collect();
        assert!(
            !reclassified.is_empty() && reclassified.iter().all(|t| *t == midnight),
            "{zone}: reclassified at {reclassified:?}, expected {midnight}"
        );
        assert_eq!(log.worker.clock(), later);
    }
}

/// A promise for Friday breaks at Saturday 00:00 Bogotá with no further event; its follow-up call, outside the
/// contact window then, is deferred and released when Saturday's window opens at 08:00.
#[test]
fn a_promise_breaks_at_its_deadline_and_the_deferred_call_goes_out_when_the_window_opens() {
    let mut log = Log::new();
    let start = ts("2026-02-20T14:00:00Z");
    log.event(&debtor_upserted("D-1", "CO", "America/Bogota", start));
    log.event(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-02",
        start,
    ));
    log.event(&promise(
        "D-1",
        "P1",
        "COP",
        "400000",
        "2026-03-06",
        ts("2026-03-03T15:00:00Z"),
    ));
    let deadline = ts("2026-03-07T05:00:00Z"); // Saturday 00:00 in Bogotá
    let opens = ts("2026-03-07T13:00:00Z"); // Saturday 08:00
    log.clock(deadline.minus_ms(1));
    assert!(log.audits(DecisionKind::PromiseBroken).is_empty());
    log.clock(deadline);
    assert_eq!(
        log.audits(DecisionKind::PromiseBroken),
        vec![(deadline, "deadline_passed".to_string())],
        "broken exactly at the deadline, by a clock record alone"
    );
    let deferred: Vec<_> = log
        .sink
        .audits
        .iter()
        .filter(|r| r.kind == DecisionKind::Deferred && r.at == deadline)
        .collect();
    assert_eq!(deferred.len(), 1, "the follow-up waits for the window");
    assert_eq!(deferred[0].until, Some(opens));
    let calls = |log: &Log| {
        log.sink
            .actions
            .iter()
            .filter(|a| a.reason.step == "on_broken_promise")
            .count()
    };
    log.clock(opens.minus_ms(1));
    assert_eq!(calls(&log), 0);
    log.clock(opens.plus_ms(30 * 60_000));
    let a = log
        .sink
        .actions
        .iter()
        .find(|a| a.reason.step == "on_broken_promise")
        .expect("released when the window opens");
    assert_eq!(a.not_before, opens);
    assert_eq!(a.arm, "champion");
    assert_eq!(calls(&log), 1);
}

/// A clock record for another partition is refused (dead-lettered), and an older one changes nothing.
#[test]
fn clock_records_are_checked_and_never_move_time_back() {
    let mut w = PartitionWorker::new(3, Arc::new(testkit::engine()));
    let mut sink = CollectingSink::default();
    let ticks = [
        (3, "2026-03-02T10:00:00Z"),
        (4, "2026-03-02T11:00:00Z"),
        (3, "2026-03-02T09:00:00Z"),
        (3, "2026-03-02T12:00:00Z"),
    ];
    for (offset, (p, at)) in ticks.into_iter().enumerate() {
        let payload = encode_clock(
            &ClockTick {
                source: "t".into(),
                partition: p,
                at: ts(at),
            },
            Wire::Raw,
        )
        .unwrap();
        w.process(
            &InputRecord {
                family: Family::Clock,
                topic: "in.clock",
                partition: 3,
                offset: offset as i64,
                key: None,
                payload: &payload,
                writer: None,
            },
            &mut sink,
        );
    }
    assert_eq!(w.clock(), ts("2026-03-02T12:00:00Z"));
    assert_eq!(sink.dead_letters.len(), 1);
    assert!(sink.dead_letters[0].reason.contains("partition 4"));
    assert_eq!(w.stats().clock_records, 3);
}
