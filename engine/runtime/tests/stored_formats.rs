//! Debtor states stored by earlier versions are still read: each fixture holds the bytes a released format wrote
//! for one debtor of a fixed scenario, and decoding them gives the state this version builds from the same events.
//!
//! The fixtures were written once by the version that introduced their format; regenerate a fixture only for a new
//! format (`MORA_WRITE_FIXTURES=1 cargo test -p mora-runtime --test stored_formats` writes the current format's).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use mora_domain::debtor::Debtor;
use mora_domain::event::EventKind;
use mora_domain::testkit::{self, ts};
use mora_runtime::durable::codec;
use mora_runtime::{CollectingSink, PartitionWorker};

const DEBTORS: [&str; 3] = ["D-1", "D-2", "D-3"];

/// Three debtors whose states use every part of the stored form: a profile, obligations in two currencies, a
/// payment and its reversal, credit, a promise, a dispute, contact marks, deferred actions and issued fingerprints.
fn scenario() -> PartitionWorker {
    let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
    let mut sink = CollectingSink::default();
    let at = ts("2026-03-02T14:00:00Z");
    let events = [
        testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
        testkit::obligation("D-1", "L1", "COP", "400000.50", "2026-03-10", at),
        testkit::debtor_upserted("D-2", "US", "America/New_York", at),
        testkit::obligation("D-2", "C1", "USD", "1250.75", "2026-03-05", at),
        testkit::obligation("D-2", "C2", "USD", "310.10", "2026-03-25", at),
        testkit::payment(
            "D-2",
            "P1",
            "USD",
            "200.25",
            None,
            ts("2026-03-12T15:00:00Z"),
        ),
        testkit::promise(
            "D-2",
            "PR1",
            "USD",
            "500",
            "2026-03-30",
            ts("2026-03-12T16:00:00Z"),
        ),
        testkit::debtor_upserted("D-3", "CL", "America/Santiago", at),
        testkit::obligation("D-3", "K1", "CLP", "750000", "2026-02-20", at),
        testkit::obligation("D-3", "K2", "USD", "99.99", "2026-03-01", at),
        testkit::payment(
            "D-3",
            "P9",
            "CLP",
            "800000",
            None,
            ts("2026-03-03T12:00:00Z"),
        ),
        testkit::reversal("D-3", "P9", ts("2026-03-06T12:00:00Z")),
        testkit::payment(
            "D-3",
            "P10",
            "USD",
            "120",
            Some("K2"),
            ts("2026-03-07T12:00:00Z"),
        ),
        testkit::event(
            "D-3",
            "D-3-disp",
            ts("2026-03-08T12:00:00Z"),
            EventKind::DisputeOpened {
                dispute_id: "DS-1".into(),
                obligation_id: Some("K1".into()),
                reason: "not mine".into(),
            },
        ),
    ];
    for ev in &events {
        w.advance_to(ev.occurred_at, &mut sink);
        w.on_event(ev, &mut sink).unwrap();
    }
    // Sunday afternoon in Bogotá: the step due today waits for Monday's contact window.
    w.advance_to(ts("2026-03-15T20:00:00Z"), &mut sink);
    w
}

fn fixture(format: i16, debtor: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/state-format-{format}-{debtor}.bin"))
}

fn state(w: &PartitionWorker, id: &str) -> Debtor {
    w.debtor(id).unwrap().clone()
}

#[test]
fn the_scenario_covers_the_stored_form() {
    let w = scenario();
    let all: Vec<Debtor> = DEBTORS.iter().map(|d| state(&w, d)).collect();
    assert!(
        all.iter()
            .all(|d| d.profile.is_some() && !d.obligations.is_empty())
    );
    assert!(all.iter().any(|d| !d.cold().payments.is_empty()));
    assert!(all.iter().any(|d| !d.cold().promises.is_empty()));
    assert!(all.iter().any(|d| !d.cold().disputes.is_empty()));
    assert!(all.iter().any(|d| !d.cold().contacts.is_empty()));
    assert!(all.iter().any(|d| !d.cold().issued.is_empty()));
    assert!(all.iter().any(|d| !d.cold().pending.is_empty()));
    assert!(all.iter().any(|d| !d.cold().credit.is_empty()));
}

#[test]
fn states_written_in_every_known_format_are_read() {
    let w = scenario();
    if std::env::var_os("MORA_WRITE_FIXTURES").is_some() {
        for id in DEBTORS {
            std::fs::write(
                fixture(codec::FORMAT, id),
                codec::encode(&state(&w, id)).unwrap(),
            )
            .unwrap();
        }
    }
    for format in 1..=codec::FORMAT {
        for id in DEBTORS {
            let bytes = std::fs::read(fixture(format, id)).unwrap();
            let read = codec::decode(id, format, &bytes)
                .unwrap_or_else(|e| panic!("format {format}, {id}: {e}"));
            assert_eq!(read, state(&w, id), "format {format}, {id}");
        }
    }
}
