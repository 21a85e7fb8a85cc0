//! An audit record names what it is about and carries the debtor's figures at the decision, so a risk analyst can
//! reconstruct a decision without running the engine: which promise broke or was kept, which event cancelled queued
//! actions, what a reclassification changed from. No server needed.

use mora_domain::action::{AuditRecord, DecisionKind};
use mora_domain::testkit::{self, Harness, ts};

fn us_debtor() -> Harness {
    let at = ts("2026-03-02T14:00:00Z");
    let mut h = Harness::new(testkit::engine(), "D-1", at);
    h.feed(&testkit::debtor_upserted(
        "D-1",
        "US",
        "America/New_York",
        at,
    ))
    .unwrap();
    h.feed(&testkit::obligation(
        "D-1",
        "L1",
        "USD",
        "500",
        "2026-03-02",
        at.plus_ms(1000),
    ))
    .unwrap();
    h
}

fn of_kind(h: &Harness, kind: DecisionKind) -> Vec<&AuditRecord> {
    h.out.audits.iter().filter(|a| a.kind == kind).collect()
}

#[test]
fn a_debtor_with_two_promises_can_tell_which_broke_and_which_was_kept() {
    let mut h = us_debtor();
    h.feed(&testkit::promise(
        "D-1",
        "PR-small",
        "USD",
        "100",
        "2026-03-10",
        ts("2026-03-04T15:00:00Z"),
    ))
    .unwrap();
    h.feed(&testkit::promise(
        "D-1",
        "PR-late",
        "USD",
        "400",
        "2026-03-20",
        ts("2026-03-04T15:05:00Z"),
    ))
    .unwrap();
    // 100 keeps the first promise; the second's deadline passes unpaid.
    h.feed(&testkit::payment(
        "D-1",
        "P-1",
        "USD",
        "100",
        None,
        ts("2026-03-06T15:00:00Z"),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-25T00:00:00Z"));
    let kept = of_kind(&h, DecisionKind::PromiseKept);
    let broken = of_kind(&h, DecisionKind::PromiseBroken);
    assert_eq!(kept.len(), 1);
    assert_eq!(broken.len(), 1);
    assert_eq!(kept[0].subject.as_deref(), Some("PR-small"));
    assert_eq!(broken[0].subject.as_deref(), Some("PR-late"));
    let at = broken[0].debtor.as_ref().expect("the debtor's figures");
    assert!(at.dpd > 0, "{at:?}");
    assert_eq!(at.bucket, "1-30");
    assert!(!at.segment.is_empty() && !at.stage.is_empty());
}

#[test]
fn a_cancellation_names_the_payment_that_caused_it() {
    // Colombia: no contact on Sundays. The SMS due on Sunday 8 March waits for Monday; a payment on Sunday
    // afternoon cancels it.
    let at = ts("2026-03-02T14:00:00Z");
    let mut h = Harness::new(testkit::engine(), "D-1", at);
    h.feed(&testkit::debtor_upserted("D-1", "CO", "America/Bogota", at))
        .unwrap();
    h.feed(&testkit::obligation(
        "D-1",
        "L1",
        "COP",
        "400000",
        "2026-03-07",
        at.plus_ms(1000),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-08T16:00:00Z"));
    assert!(
        !of_kind(&h, DecisionKind::Deferred).is_empty(),
        "Sunday's step waits"
    );
    let pay = testkit::payment(
        "D-1",
        "P-9",
        "COP",
        "400000",
        None,
        ts("2026-03-08T20:00:00Z"),
    );
    h.feed(&pay).unwrap();
    let cancelled = of_kind(&h, DecisionKind::Cancelled);
    assert!(!cancelled.is_empty());
    for c in cancelled {
        assert_eq!(c.subject.as_deref(), Some(pay.event_id.as_str()), "{c:?}");
    }
    // Every record of the run carries the debtor's figures.
    assert!(h.out.audits.iter().all(|a| a.debtor.is_some()));
}

#[test]
fn a_reclassification_says_what_it_was_before() {
    let mut h = us_debtor();
    h.advance_to(ts("2026-03-05T12:00:00Z"));
    let stage: Vec<&AuditRecord> = of_kind(&h, DecisionKind::Reclassified)
        .into_iter()
        .filter(|a| a.rule == "aging")
        .collect();
    assert!(!stage.is_empty());
    assert_eq!(stage[0].previous.as_deref(), Some("stage:preventive"));
    assert_eq!(stage[0].reason, "stage:administrative");
    assert_eq!(
        stage[0].debtor.as_ref().map(|d| d.stage.as_str()),
        Some("administrative")
    );
}

#[test]
fn an_outcome_for_an_action_never_sent_is_accepted_and_noted() {
    use mora_domain::event::{EventKind, Outcome};
    use mora_domain::ids::Channel;
    let mut h = us_debtor();
    h.advance_to(ts("2026-03-03T14:30:00Z"));
    let sent = h.out.actions[0].clone();
    let outcome = |id: &str, at: &str| {
        testkit::event(
            "D-1",
            &format!("outcome-{id}"),
            ts(at),
            EventKind::ContactOutcome {
                action_id: id.into(),
                channel: Channel::Dialer,
                outcome: Outcome::RightPartyContact,
            },
        )
    };
    // The outcome of an action it was sent: nothing noted.
    h.feed(&outcome(&sent.action_id.0, "2026-03-03T15:00:00Z"))
        .unwrap();
    assert!(of_kind(&h, DecisionKind::Noted).is_empty());
    // A manual call's outcome, under an id mora never issued: accepted (the conversation counts) and noted.
    h.feed(&outcome("manual-call-77", "2026-03-04T15:00:00Z"))
        .unwrap();
    let noted = of_kind(&h, DecisionKind::Noted);
    assert_eq!(noted.len(), 1);
    assert_eq!(noted[0].reason, "unmatched_action");
    assert_eq!(noted[0].subject.as_deref(), Some("manual-call-77"));
    assert_eq!(noted[0].channel, Some(Channel::Dialer));
    let conversations = h
        .debtor
        .cold()
        .contacts
        .iter()
        .filter(|m| m.kind == mora_domain::debtor::MarkKind::Conversation)
        .count();
    assert_eq!(
        conversations, 2,
        "both conversations start the quiet period"
    );
}
