//! Scenario tests of the decision core: one debtor driven through events and time, checking what a collections
//! manager or a regulator would check.

use rust_decimal_macros::dec;

use crate::action::DecisionKind;
use crate::event::{DisputeOutcome, EventKind, Outcome};
use crate::ids::Channel;
use crate::testkit::{
    self, Harness, cur, date, debtor_upserted, event, obligation, payment, promise, reversal, ts,
};

fn bogota(start: &str) -> Harness {
    let mut h = Harness::new(testkit::engine(), "D-1", ts(start));
    h.feed(&debtor_upserted("D-1", "CO", "America/Bogota", ts(start)))
        .unwrap();
    h
}

fn steps(h: &Harness) -> Vec<(String, String)> {
    h.sent()
        .into_iter()
        .map(|(_, step, at)| (step, at))
        .collect()
}

#[test]
fn strategy_path_follows_offsets_and_colombian_windows() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    // Due Tuesday 2026-03-10; D+5 is a Sunday, which Ley 2300 blocks.
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-10",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-25T12:00:00Z"));
    assert_eq!(
        steps(&h),
        vec![
            ("email-d-3".into(), "2026-03-07 09:00".into()),
            ("sms-d1".into(), "2026-03-11 09:00".into()),
            ("whatsapp-d5".into(), "2026-03-16 07:00".into()),
            ("dialer-d10".into(), "2026-03-20 09:00".into()),
        ]
    );
    assert_eq!(h.reasons(DecisionKind::Deferred), vec!["blocked_day"]);
    assert_eq!(h.debtor.days_past_due(h.now), 15);
    assert_eq!(h.debtor.derived.stage, crate::stage::Stage::Administrative);
    assert_eq!(h.debtor.derived.outstanding_base.get(), dec!(100.00));
}

#[test]
fn public_holiday_defers_to_the_next_business_day() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    // D+1 is Monday 2026-03-23, San José (moved to Monday): a festivo.
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-22",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-25T00:00:00Z"));
    assert!(
        steps(&h).contains(&("sms-d1".into(), "2026-03-24 07:00".into())),
        "{:?}",
        steps(&h)
    );
    assert!(
        h.reasons(DecisionKind::Deferred)
            .contains(&"holiday".to_string())
    );
}

#[test]
fn daily_cap_defers_to_the_next_allowed_window() {
    let mut h = bogota("2026-02-20T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-02",
        ts("2026-02-20T14:00:00Z"),
    ))
    .unwrap();
    // Promise made the day after the SMS, for Friday; it breaks at Saturday 00:00 local.
    h.feed(&promise(
        "D-1",
        "P1",
        "COP",
        "400000",
        "2026-03-06",
        ts("2026-03-03T15:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-13T00:00:00Z"));
    assert_eq!(
        steps(&h),
        vec![
            ("email-d-3".into(), "2026-02-27 09:00".into()),
            ("sms-d1".into(), "2026-03-03 09:00".into()),
            // Broken at 00:00 Saturday, outside the window: sent when Saturday's window opens.
            ("on_broken_promise".into(), "2026-03-07 08:00".into()),
            // Due 09:00 Saturday but one contact a day is spent; 24 h later is Sunday: Monday 07:00.
            ("whatsapp-d5".into(), "2026-03-09 07:00".into()),
            ("dialer-d10".into(), "2026-03-12 09:00".into()),
        ]
    );
    assert!(
        h.reasons(DecisionKind::Deferred)
            .contains(&"frequency_cap".to_string())
    );
    assert_eq!(h.reasons(DecisionKind::PromiseBroken).len(), 1);
}

#[test]
fn promise_kept_one_millisecond_before_its_deadline() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-02",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.feed(&promise(
        "D-1",
        "P1",
        "COP",
        "100000",
        "2026-03-05",
        ts("2026-03-03T15:00:00Z"),
    ))
    .unwrap();
    // Bogota is UTC-5: the promise's day ends at 2026-03-06T05:00:00Z.
    h.feed(&payment(
        "D-1",
        "PAY1",
        "COP",
        "100000",
        None,
        ts("2026-03-06T04:59:59.999Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-08T00:00:00Z"));
    assert_eq!(h.reasons(DecisionKind::PromiseKept).len(), 1);
    assert!(h.reasons(DecisionKind::PromiseBroken).is_empty());
    assert_eq!(h.debtor.history.promises_kept, 1);
}

#[test]
fn promise_broken_exactly_at_its_deadline_with_no_further_event() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-02",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.feed(&promise(
        "D-1",
        "P1",
        "COP",
        "100000",
        "2026-03-05",
        ts("2026-03-03T15:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-06T05:00:00Z"));
    let broken: Vec<_> = h
        .out
        .audits
        .iter()
        .filter(|a| a.kind == DecisionKind::PromiseBroken)
        .collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].at, ts("2026-03-06T05:00:00Z"));
    // A payment arriving at the deadline no longer keeps it.
    h.feed(&payment(
        "D-1",
        "PAY1",
        "COP",
        "100000",
        None,
        ts("2026-03-06T05:00:00Z"),
    ))
    .unwrap();
    assert!(h.reasons(DecisionKind::PromiseKept).is_empty());
    assert_eq!(h.debtor.history.promises_broken, 1);
}

#[test]
fn payment_cancels_a_deferred_action() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-10",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    // whatsapp-d5 is deferred from Sunday 15 to Monday 16 07:00; a partial payment arrives on Sunday.
    h.advance_to(ts("2026-03-15T20:00:00Z"));
    assert_eq!(h.debtor.cold().pending.len(), 1);
    h.feed(&payment(
        "D-1",
        "PAY1",
        "COP",
        "100000",
        None,
        ts("2026-03-15T21:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-17T00:00:00Z"));
    assert!(h.debtor.cold().pending.is_empty());
    assert!(!h.sent().iter().any(|(c, _, _)| *c == Channel::Whatsapp));
    assert_eq!(h.reasons(DecisionKind::Cancelled), vec!["payment_received"]);
}

#[test]
fn dispute_holds_all_contact_until_resolved() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-10",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-15T20:00:00Z"));
    let open = EventKind::DisputeOpened {
        dispute_id: "R1".into(),
        obligation_id: Some("L1".into()),
        reason: "not mine".into(),
    };
    h.feed(&event("D-1", "ev-r1", ts("2026-03-15T21:00:00Z"), open))
        .unwrap();
    h.advance_to(ts("2026-03-21T00:00:00Z"));
    assert_eq!(h.reasons(DecisionKind::Cancelled), vec!["dispute_opened"]);
    assert_eq!(h.reasons(DecisionKind::Dropped), vec!["hold_dispute_open"]); // dialer-d10 on the 20th
    assert_eq!(
        h.debtor.derived.queues, 0,
        "a disputed debtor leaves the work queues"
    );
    let resolved = EventKind::DisputeResolved {
        dispute_id: "R1".into(),
        outcome: DisputeOutcome::Rejected,
    };
    h.feed(&event(
        "D-1",
        "ev-r1-done",
        ts("2026-03-21T01:00:00Z"),
        resolved,
    ))
    .unwrap();
    assert_ne!(h.debtor.derived.queues, 0);
}

#[test]
fn partial_and_over_payments_allocate_oldest_first_and_keep_credit() {
    let mut h = Harness::new(testkit::engine(), "D-2", ts("2026-03-02T14:00:00Z"));
    h.feed(&debtor_upserted(
        "D-2",
        "US",
        "America/New_York",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    let at = ts("2026-03-02T15:00:00Z");
    h.feed(&obligation("D-2", "B", "USD", "100", "2026-04-01", at))
        .unwrap();
    h.feed(&obligation("D-2", "A", "USD", "100", "2026-03-01", at))
        .unwrap();
    h.feed(&payment("D-2", "P1", "USD", "150", None, at))
        .unwrap();
    let out = |h: &Harness, id: &str| {
        h.debtor
            .obligations
            .iter()
            .find(|o| o.id == id)
            .unwrap()
            .outstanding
            .get()
    };
    assert_eq!((out(&h, "A"), out(&h, "B")), (dec!(0), dec!(50)));
    h.feed(&payment("D-2", "P2", "USD", "80", None, at))
        .unwrap();
    assert_eq!(h.debtor.cold().credit.get(cur("USD")), dec!(30));
    h.feed(&obligation("D-2", "C", "USD", "100", "2026-05-01", at))
        .unwrap();
    assert_eq!(
        (out(&h, "C"), h.debtor.cold().credit.get(cur("USD"))),
        (dec!(70), dec!(0))
    );
    // A targeted payment goes to its target even when older debt is open.
    h.feed(&obligation("D-2", "D", "USD", "100", "2026-02-01", at))
        .unwrap();
    h.feed(&payment("D-2", "P3", "USD", "20", Some("C"), at))
        .unwrap();
    assert_eq!((out(&h, "C"), out(&h, "D")), (dec!(50), dec!(100)));
    // A redelivered payment is applied once.
    h.feed(&payment("D-2", "P3", "USD", "20", Some("C"), at))
        .unwrap();
    assert_eq!(out(&h, "C"), dec!(50));

    // Amounts past what an obligation holds (four decimal places, 10^14 units) are refused naming the field, and
    // change nothing.
    let before = h.debtor.clone();
    for (what, amount) in [
        ("five places", "10.00001"),
        ("too large", "100000000000001"),
    ] {
        let err = h
            .feed(&obligation("D-2", "E", "USD", amount, "2026-05-01", at))
            .expect_err(what);
        assert!(err.to_string().contains("`amount`"), "{what}: {err}");
        let err = h
            .feed(&payment("D-2", "P9", "USD", amount, None, at))
            .expect_err(what);
        assert!(err.to_string().contains("`amount`"), "{what}: {err}");
    }
    assert_eq!(h.debtor, before);
}

#[test]
fn reversal_after_a_cure_reopens_the_debt_with_its_original_age() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-02",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-09T15:00:00Z"));
    assert_eq!(h.debtor.days_past_due(h.now), 7);
    h.feed(&payment(
        "D-1",
        "PAY1",
        "COP",
        "400000",
        None,
        ts("2026-03-09T16:00:00Z"),
    ))
    .unwrap();
    assert_eq!((h.debtor.derived.dpd, h.debtor.history.cures), (0, 1));
    assert!(
        h.sent()
            .iter()
            .any(|(_, step, _)| step == "on_paid_in_full"),
        "thank-you sent"
    );
    h.feed(&reversal("D-1", "PAY1", ts("2026-03-10T16:00:00Z")))
        .unwrap();
    assert_eq!(h.debtor.derived.dpd, 8);
    assert_eq!(h.debtor.derived.outstanding_base.get(), dec!(100.00));
    assert_eq!(h.debtor.history.episodes, 2);
    // Back in arrears with the same due date: steps already taken for it are not taken again.
    h.advance_to(ts("2026-03-20T00:00:00Z"));
    let mut ids: Vec<_> = h.out.actions.iter().map(|a| a.action_id.clone()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an action id was issued twice");
    assert!(
        h.reasons(DecisionKind::Suppressed)
            .contains(&"already_issued".to_string())
    );
    // Reversing again, or reversing an unknown payment, is refused and changes nothing.
    let before = h.debtor.clone();
    assert!(
        h.feed(&reversal("D-1", "PAY1", ts("2026-03-10T17:00:00Z")))
            .is_err()
    );
    assert!(
        h.feed(&reversal("D-1", "NOPE", ts("2026-03-10T17:00:00Z")))
            .is_err()
    );
    assert_eq!(h.debtor.obligations, before.obligations);
}

#[test]
fn mixed_currencies_are_kept_apart_and_valued_in_base() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    let at = ts("2026-03-02T14:00:00Z");
    h.feed(&obligation("D-1", "L1", "COP", "400000", "2026-03-02", at))
        .unwrap();
    h.feed(&obligation("D-1", "L2", "USD", "50", "2026-03-01", at))
        .unwrap();
    assert_eq!(h.debtor.derived.outstanding_base.get(), dec!(150.00));
    h.feed(&payment("D-1", "P1", "USD", "50", None, at))
        .unwrap();
    let o = h.debtor.outstanding();
    assert_eq!(o.get(cur("COP")), dec!(400000));
    assert_eq!(o.get(cur("USD")), dec!(0));
    assert_eq!(h.debtor.derived.outstanding_base.get(), dec!(100.00));
    // A currency with no FX rate is refused: its value would be unknown.
    assert!(
        h.feed(&obligation("D-1", "L3", "ARS", "10", "2026-03-01", at))
            .is_err()
    );
}

#[test]
fn days_past_due_over_month_ends_and_leap_days() {
    let mut h = bogota("2028-01-20T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2028-01-31",
        ts("2028-01-20T14:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2028-02-29T17:00:00Z"));
    assert_eq!(h.debtor.days_past_due(h.now), 29);
    h.advance_to(ts("2028-03-01T17:00:00Z"));
    assert_eq!(h.debtor.days_past_due(h.now), 30);
    assert_eq!(
        h.engine.aging.bucket_names()[h.debtor.derived.bucket as usize],
        "1-30"
    );
    // The bucket edge is a timer at the debtor's local midnight (05:00Z in Bogota): no event needed.
    h.advance_to(ts("2028-03-02T04:59:59.999Z"));
    assert_eq!(
        h.engine.aging.bucket_names()[h.debtor.derived.bucket as usize],
        "1-30"
    );
    h.advance_to(ts("2028-03-02T05:00:00Z"));
    assert_eq!(h.debtor.derived.dpd, 31);
    assert_eq!(
        h.engine.aging.bucket_names()[h.debtor.derived.bucket as usize],
        "31-60"
    );
    // 2028 is outside the test holiday calendar: whether a day is a holiday is unknown, so contact is denied.
    assert!(
        h.reasons(DecisionKind::Dropped)
            .iter()
            .all(|r| r == "calendar_not_covered")
    );
    assert!(h.sent().is_empty());
}

fn dpd_at(zone: &str, country: &str, due: &str, at: &str) -> u16 {
    let start = ts("2026-01-01T12:00:00Z");
    let mut h = Harness::new(testkit::engine(), "Z", start);
    h.feed(&debtor_upserted("Z", country, zone, start)).unwrap();
    h.feed(&obligation("Z", "L", "USD", "10", due, start))
        .unwrap();
    h.advance_to(ts(at));
    h.debtor.days_past_due(ts(at))
}

#[test]
fn days_past_due_change_at_local_midnight_across_zones_and_dst() {
    // New York, EST (UTC-5): due 2026-03-07 becomes 1 DPD at 05:00Z on the 8th.
    assert_eq!(
        dpd_at(
            "America/New_York",
            "US",
            "2026-03-07",
            "2026-03-08T04:59:59.999Z"
        ),
        0
    );
    assert_eq!(
        dpd_at(
            "America/New_York",
            "US",
            "2026-03-07",
            "2026-03-08T05:00:00Z"
        ),
        1
    );
    // After the spring-forward on the 8th, midnight is 04:00Z (EDT).
    assert_eq!(
        dpd_at(
            "America/New_York",
            "US",
            "2026-03-07",
            "2026-03-09T03:59:59.999Z"
        ),
        1
    );
    assert_eq!(
        dpd_at(
            "America/New_York",
            "US",
            "2026-03-07",
            "2026-03-09T04:00:00Z"
        ),
        2
    );
    // Santiago jumps from 00:00 to 01:00 on 2026-09-06: the day starts at 01:00 -03 = 04:00Z.
    assert_eq!(
        dpd_at(
            "America/Santiago",
            "CL",
            "2026-09-05",
            "2026-09-06T03:59:59.999Z"
        ),
        0
    );
    assert_eq!(
        dpd_at(
            "America/Santiago",
            "CL",
            "2026-09-05",
            "2026-09-06T04:00:00Z"
        ),
        1
    );
    // Mexico City has kept UTC-6 all year since 2022.
    assert_eq!(
        dpd_at(
            "America/Mexico_City",
            "MX",
            "2026-04-04",
            "2026-04-05T05:59:59.999Z"
        ),
        0
    );
    assert_eq!(
        dpd_at(
            "America/Mexico_City",
            "MX",
            "2026-04-04",
            "2026-04-05T06:00:00Z"
        ),
        1
    );
    assert_eq!(
        dpd_at(
            "America/Mexico_City",
            "MX",
            "2026-11-01",
            "2026-11-02T06:00:00Z"
        ),
        1
    );
    // Bogota, UTC-5, no DST.
    assert_eq!(
        dpd_at(
            "America/Bogota",
            "CO",
            "2026-06-30",
            "2026-07-01T04:59:59.999Z"
        ),
        0
    );
    assert_eq!(
        dpd_at("America/Bogota", "CO", "2026-06-30", "2026-07-01T05:00:00Z"),
        1
    );
}

#[test]
fn bucket_change_wakes_the_debtor_at_local_midnight_with_no_event() {
    let start = ts("2026-03-01T12:00:00Z");
    let mut h = Harness::new(testkit::engine(), "Z", start);
    h.feed(&debtor_upserted("Z", "US", "America/New_York", start))
        .unwrap();
    h.feed(&obligation("Z", "L", "USD", "10", "2026-03-07", start))
        .unwrap();
    h.advance_to(ts("2026-03-07T12:00:00Z"));
    assert_eq!(h.debtor.next_wake, ts("2026-03-08T05:00:00Z"));
}

#[test]
fn opt_out_removes_the_channel() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-10",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    let opt_out = EventKind::ContactOutcome {
        action_id: "x".into(),
        channel: Channel::Sms,
        outcome: Outcome::OptOut,
    };
    h.feed(&event("D-1", "ev-oo", ts("2026-03-08T14:00:00Z"), opt_out))
        .unwrap();
    h.advance_to(ts("2026-03-12T00:00:00Z"));
    assert!(!h.sent().iter().any(|(c, _, _)| *c == Channel::Sms));
    assert_eq!(h.reasons(DecisionKind::Dropped), vec!["no_consent"]);
    // A later master-data update listing SMS consent does not override the debtor's opt-out.
    h.feed(&debtor_upserted(
        "D-1",
        "CO",
        "America/Bogota",
        ts("2026-03-12T01:00:00Z"),
    ))
    .unwrap();
    assert_eq!(
        h.debtor.consent_for(Channel::Sms),
        crate::debtor::Consent::Revoked
    );
}

#[test]
fn unknown_jurisdiction_and_unknown_profile_deny() {
    let start = ts("2026-03-02T14:00:00Z");
    let mut h = Harness::new(testkit::engine(), "AR-1", start);
    h.feed(&debtor_upserted(
        "AR-1",
        "AR",
        "America/Argentina/Buenos_Aires",
        start,
    ))
    .unwrap();
    h.feed(&obligation("AR-1", "L", "USD", "10", "2026-03-10", start))
        .unwrap();
    h.advance_to(ts("2026-03-12T00:00:00Z"));
    assert!(h.sent().is_empty());
    assert_eq!(
        h.reasons(DecisionKind::Dropped),
        vec!["unknown_jurisdiction"; 2]
    );

    let mut h = Harness::new(testkit::engine(), "X", start);
    h.feed(&obligation("X", "L", "USD", "10", "2026-03-10", start))
        .unwrap();
    h.advance_to(ts("2026-03-12T00:00:00Z"));
    assert!(h.sent().is_empty());
    assert_eq!(h.reasons(DecisionKind::Dropped), vec!["unknown_profile"; 2]);
}

#[test]
fn massachusetts_overlay_is_stricter_than_federal_rules() {
    use crate::debtor::{ContactMark, Debtor, MarkKind};
    use crate::policy::{BlockReason, Verdict};
    let engine = testkit::engine();
    let mut d = Debtor::new("M".into());
    let mut p = testkit::profile("US", "America/New_York");
    p.region = Some("MA".into());
    d.profile = Some(p);
    let now = ts("2026-03-04T15:00:00Z");
    d.cold_mut().contacts = thin_vec::thin_vec![
        ContactMark {
            at: ts("2026-03-02T15:00:00Z"),
            channel: Channel::Sms,
            kind: MarkKind::Attempt,
        },
        ContactMark {
            at: ts("2026-03-03T15:00:00Z"),
            channel: Channel::Dialer,
            kind: MarkKind::Attempt,
        },
    ];
    let ma = engine.policies.lookup("US", Some("MA")).unwrap();
    assert_eq!(
        ma.check(&d, Channel::Dialer, now),
        Verdict::Defer {
            until: ts("2026-03-09T15:00:00Z"),
            reason: BlockReason::FrequencyCap
        }
    );
    let us = engine.policies.lookup("US", None).unwrap();
    assert!(matches!(
        us.check(&d, Channel::Dialer, now),
        Verdict::Allow { .. }
    ));
    // Outside 08:00-21:00 local the federal window applies to the overlay too.
    let late = ts("2026-03-05T02:30:00Z"); // 21:30 EST
    d.cold_mut().contacts.clear();
    assert_eq!(
        ma.check(&d, Channel::Sms, late),
        Verdict::Defer {
            until: ts("2026-03-05T13:00:00Z"),
            reason: BlockReason::OutsideWindow
        }
    );
    // A conversation starts the US seven-day quiet period for calls.
    d.cold_mut().contacts.push(ContactMark {
        at: ts("2026-03-04T14:00:00Z"),
        channel: Channel::Dialer,
        kind: MarkKind::Conversation,
    });
    assert_eq!(
        us.check(&d, Channel::Dialer, now),
        Verdict::Defer {
            until: ts("2026-03-11T14:00:00Z"),
            reason: BlockReason::ConversationQuiet
        }
    );
}

#[test]
fn action_ids_are_deterministic_and_distinct() {
    let run = || {
        let mut h = bogota("2026-03-02T14:00:00Z");
        h.feed(&obligation(
            "D-1",
            "L1",
            "COP",
            "400000",
            "2026-03-10",
            ts("2026-03-02T14:00:00Z"),
        ))
        .unwrap();
        h.advance_to(ts("2026-03-25T12:00:00Z"));
        h.out
            .actions
            .iter()
            .map(|a| a.action_id.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    let mut uniq = a.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), a.len());
}

#[test]
fn payment_plan_replaces_overdue_debt() {
    let mut h = bogota("2026-03-02T14:00:00Z");
    h.feed(&obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-02-01",
        ts("2026-03-02T14:00:00Z"),
    ))
    .unwrap();
    assert!(h.debtor.derived.dpd > 0);
    let plan = EventKind::PaymentPlanAgreed {
        plan_id: "PL1".into(),
        currency: cur("COP"),
        installments: vec![
            crate::event::Installment {
                due_date: date("2026-03-15"),
                amount: dec!(200000),
            },
            crate::event::Installment {
                due_date: date("2026-04-15"),
                amount: dec!(200000),
            },
        ],
    };
    h.feed(&event("D-1", "ev-plan", ts("2026-03-03T14:00:00Z"), plan))
        .unwrap();
    assert_eq!(h.debtor.derived.dpd, 0);
    assert_eq!(h.debtor.status().plan.as_deref(), Some("PL1"));
    assert_eq!(h.debtor.oldest_unpaid_due(), Some(date("2026-03-15")));
}

mod properties {
    use chrono::{Datelike, Timelike};
    use proptest::prelude::*;

    use super::*;
    use crate::time::HOUR_MS;

    #[derive(Clone, Debug)]
    enum Step {
        Wait(u16),
        Obligation(u16, i16),
        Pay(u16),
        Promise(u8),
        Dispute,
        Resolve,
        Outcome(u8, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1u16..96).prop_map(Step::Wait),
            2 => (1u16..2000, -5i16..40).prop_map(|(a, d)| Step::Obligation(a, d)),
            2 => (1u16..2000).prop_map(Step::Pay),
            1 => (0u8..6).prop_map(Step::Promise),
            1 => Just(Step::Dispute),
            1 => Just(Step::Resolve),
            1 => (0u8..4, 0u8..9).prop_map(|(c, o)| Step::Outcome(c, o)),
        ]
    }

    fn run(steps: &[Step]) -> Harness {
        let start = ts("2026-02-02T12:00:00Z");
        let mut h = Harness::new(testkit::engine(), "P", start);
        h.feed(&debtor_upserted("P", "CO", "America/Bogota", start))
            .unwrap();
        let mut t = start;
        for (n, s) in steps.iter().enumerate() {
            let id = format!("e{n}");
            let today = t.local_date(chrono_tz::America::Bogota);
            let day = |off: i64| {
                (today + chrono::Duration::days(off))
                    .format("%Y-%m-%d")
                    .to_string()
            };
            let ev = match s {
                Step::Wait(hours) => {
                    t = t.plus_ms(i64::from(*hours) * HOUR_MS);
                    h.advance_to(t);
                    continue;
                }
                Step::Obligation(amount, due) => obligation(
                    "P",
                    &id,
                    "USD",
                    &amount.to_string(),
                    &day(i64::from(*due)),
                    t,
                ),
                Step::Pay(amount) => payment("P", &id, "USD", &amount.to_string(), None, t),
                Step::Promise(days) => promise("P", &id, "USD", "100", &day(i64::from(*days)), t),
                Step::Dispute => event(
                    "P",
                    &id,
                    t,
                    EventKind::DisputeOpened {
                        dispute_id: "R".into(),
                        obligation_id: None,
                        reason: "x".into(),
                    },
                ),
                Step::Resolve => event(
                    "P",
                    &id,
                    t,
                    EventKind::DisputeResolved {
                        dispute_id: "R".into(),
                        outcome: DisputeOutcome::Rejected,
                    },
                ),
                Step::Outcome(c, o) => event(
                    "P",
                    &id,
                    t,
                    EventKind::ContactOutcome {
                        action_id: "a".into(),
                        channel: Channel::ALL[usize::from(*c)],
                        outcome: Outcome::ALL[usize::from(*o)],
                    },
                ),
            };
            let _ = h.feed(&ev);
        }
        h.advance_to(t.plus_ms(30 * 24 * HOUR_MS));
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// No action leaves outside Colombia's windows, on a Sunday or holiday, or within 24 h of another contact.
        #[test]
        fn no_action_outside_the_window_or_over_the_cap(steps in prop::collection::vec(step(), 1..60)) {
            let h = run(&steps);
            let co = testkit::calendars()[0].years["2026"].clone();
            let mut last: Option<crate::time::Ts> = None;
            for a in h.out.actions.iter().filter(|a| a.channel.is_direct_contact()) {
                let local = a.not_before.in_tz(chrono_tz::America::Bogota);
                let minutes = local.hour() * 60 + local.minute();
                let ok = match local.weekday() {
                    chrono::Weekday::Sun => false,
                    chrono::Weekday::Sat => (8 * 60..15 * 60).contains(&minutes),
                    _ => (7 * 60..19 * 60).contains(&minutes),
                };
                prop_assert!(ok, "action at {local}");
                prop_assert!(!co.contains(&local.date_naive()), "action on holiday {local}");
                if let Some(prev) = last {
                    prop_assert!(a.not_before.0 - prev.0 >= 24 * HOUR_MS, "cap broken: {prev:?} then {:?}", a.not_before);
                }
                last = Some(a.not_before);
            }
        }

        /// The same events give the same actions, audit trail and state.
        #[test]
        fn same_events_same_decisions(steps in prop::collection::vec(step(), 1..40)) {
            let (a, b) = (run(&steps), run(&steps));
            prop_assert_eq!(&a.out.actions, &b.out.actions);
            prop_assert_eq!(&a.out.audits, &b.out.audits);
            prop_assert_eq!(&a.debtor, &b.debtor);
        }
    }
}

#[test]
#[ignore = "prints type sizes for memory work"]
fn print_sizes() {
    use std::mem::size_of;
    println!(
        "Debtor {} Cold {} Profile {} Obligation {} PaymentRecord {} Promise {} ContactMark {} PendingAction {} Derived {} Action {}",
        size_of::<crate::debtor::Debtor>(),
        size_of::<crate::debtor::Cold>(),
        size_of::<crate::event::Profile>(),
        size_of::<crate::debtor::Obligation>(),
        size_of::<crate::debtor::PaymentRecord>(),
        size_of::<crate::debtor::Promise>(),
        size_of::<crate::debtor::ContactMark>(),
        size_of::<crate::debtor::PendingAction>(),
        size_of::<crate::debtor::Derived>(),
        size_of::<crate::action::Action>(),
    );
}

#[test]
fn priority_weights_and_policy_spans_are_bounded_and_say_their_limits() {
    use crate::engine::Engine;
    use crate::testkit::{calendars, engine_config, policies};
    let mut cfg = engine_config();
    cfg.priority.debt = 1e308;
    let err = Engine::new(&cfg, &policies(), &calendars())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("priority.debt") && err.contains("-1000000 to 1000000"),
        "{err}"
    );
    let mut cfg = engine_config();
    cfg.priority.open_disputes = -1e6;
    assert!(
        Engine::new(&cfg, &policies(), &calendars()).is_ok(),
        "the bound itself is allowed"
    );

    let mut p = policies();
    p[0].caps[0].per = std::time::Duration::from_secs(400 * 86_400);
    let err = Engine::new(&engine_config(), &p, &calendars())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("caps[0].per") && err.contains("366 days"),
        "{err}"
    );
    let mut p = policies();
    p[0].max_defer = std::time::Duration::from_secs(10 * 366 * 86_400);
    let err = Engine::new(&engine_config(), &p, &calendars())
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_defer"), "{err}");
}

#[test]
fn a_cold_part_gives_back_spare_room_and_goes_when_empty() {
    let mut d = crate::debtor::Debtor::new("D1".into());
    let cold = d.cold_mut();
    cold.issued = thin_vec::ThinVec::with_capacity(16);
    cold.issued.extend([1, 2, 3]);
    d.release_cold();
    assert_eq!(d.cold().issued, vec![1, 2, 3]);
    assert!(
        d.cold().issued.capacity() <= 5,
        "shrunk to within half again"
    );
    let cap = d.cold().issued.capacity();
    crate::debtor::push_tight(&mut d.cold_mut().issued, 4);
    let grown = d.cold().issued.capacity();
    d.release_cold();
    assert_eq!(
        d.cold().issued.capacity(),
        grown,
        "what push_tight leaves is kept"
    );
    assert!(grown >= cap);
    d.cold_mut().issued.clear();
    d.release_cold();
    assert!(d.cold().is_empty());
    assert_eq!(d.cold().issued.capacity(), 0, "an empty cold part is freed");
}
