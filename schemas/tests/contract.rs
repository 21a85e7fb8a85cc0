//! The Avro contract: round trips, schema evolution, and malformed input never panicking.

use apache_avro::types::Value;
use mora_domain::action::{Action, ActionId, AuditRecord, DecisionKind, Reason};
use mora_domain::event::{CustomerType, DisputeOutcome, Envelope, EventKind, Installment, Outcome};
use mora_domain::ids::Channel;
use mora_domain::stage::Stage;
use mora_domain::testkit::{self, cur, date, ts};
use mora_schemas::*;
use proptest::prelude::*;
use rust_decimal_macros::dec;

fn every_event() -> Vec<Envelope> {
    let at = ts("2026-03-02T14:00:00.123Z");
    let mut upserted = testkit::debtor_upserted("D-1", "US", "America/New_York", at);
    if let EventKind::DebtorUpserted(p) = &mut upserted.kind {
        p.region = Some("MA".into());
        p.flags.vip = true;
        p.flags.attorney = true;
        p.preferred_channel = None;
        p.credit_limit = mora_domain::amount::Amount::new(dec!(12345.6789)).expect("within bounds");
    }
    let ev = |id: &str, kind| testkit::event("D-1", id, at, kind);
    vec![
        upserted,
        testkit::debtor_upserted("D-2", "CO", "America/Bogota", at),
        ev(
            "c1",
            EventKind::ConsentChanged {
                channel: Channel::Whatsapp,
                granted: false,
            },
        ),
        testkit::obligation("D-1", "L1", "COP", "400000.5", "2026-03-10", at),
        ev(
            "u1",
            EventKind::ObligationUpdated {
                obligation_id: "L1".into(),
                amount: Some(dec!(1.25)),
                due_date: None,
            },
        ),
        ev(
            "u2",
            EventKind::ObligationUpdated {
                obligation_id: "L1".into(),
                amount: None,
                due_date: Some(date("2026-04-01")),
            },
        ),
        testkit::payment("D-1", "P1", "USD", "0.0001", Some("L1"), at),
        testkit::payment("D-1", "P2", "USD", "99999999999999.9999", None, at),
        testkit::reversal("D-1", "P1", at),
        ev(
            "n1",
            EventKind::CreditNote {
                note_id: "N1".into(),
                currency: cur("MXN"),
                amount: dec!(10),
                obligation_id: None,
            },
        ),
        testkit::promise("D-1", "PR1", "PEN", "120.40", "2026-03-12", at),
        ev(
            "pl",
            EventKind::PaymentPlanAgreed {
                plan_id: "PLAN".into(),
                currency: cur("CLP"),
                installments: vec![
                    Installment {
                        due_date: date("2026-04-01"),
                        amount: dec!(50000),
                    },
                    Installment {
                        due_date: date("2026-05-01"),
                        amount: dec!(50000),
                    },
                ],
            },
        ),
        ev(
            "d1",
            EventKind::DisputeOpened {
                dispute_id: "R".into(),
                obligation_id: Some("L1".into()),
                reason: "fraud".into(),
            },
        ),
        ev(
            "d2",
            EventKind::DisputeResolved {
                dispute_id: "R".into(),
                outcome: DisputeOutcome::Withdrawn,
            },
        ),
        ev(
            "o1",
            EventKind::ContactOutcome {
                action_id: "a".into(),
                channel: Channel::Dialer,
                outcome: Outcome::RightPartyContact,
            },
        ),
        ev(
            "o2",
            EventKind::ContactOutcome {
                action_id: "a".into(),
                channel: Channel::Sms,
                outcome: Outcome::OptOut,
            },
        ),
        ev(
            "x1",
            EventKind::ChargedOff {
                reason: "uncollectible".into(),
            },
        ),
        ev(
            "a1",
            EventKind::AgencyPlaced {
                agency_id: "AG-1".into(),
            },
        ),
        ev(
            "a2",
            EventKind::AgencyRecalled {
                agency_id: "AG-1".into(),
            },
        ),
    ]
}

#[test]
fn every_event_kind_round_trips_in_both_framings() {
    let events = every_event();
    let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds.len(), 15, "one of each event kind");
    for ev in events {
        let (family, _) = family_of(&ev.kind);
        for wire in [Wire::Raw, Wire::Confluent] {
            let bytes = encode_event(&ev, wire).unwrap();
            assert_eq!(
                decode_event(family, &bytes).unwrap(),
                ev,
                "{wire:?} {}",
                ev.kind.name()
            );
        }
    }
}

fn action() -> Action {
    let mut amounts = mora_domain::money::Balances::default();
    amounts.add(cur("COP"), dec!(400000));
    amounts.add(cur("USD"), dec!(-3.5));
    Action {
        action_id: ActionId::derive(&[b"x"]),
        debtor_id: "D-1".into(),
        channel: Channel::Legal,
        template: "t".into(),
        amounts_due: amounts,
        overdue_base: dec!(100.25),
        dpd: 400,
        stage: Stage::Judicial,
        segment: "high".into(),
        priority: -12345,
        reason: Reason {
            strategy: "s".into(),
            step: "on_paid_in_full".into(),
            trigger: "paid_in_full".into(),
        },
        jurisdiction: "US-MA".into(),
        created_at: ts("2026-03-02T14:00:00Z"),
        not_before: ts("2026-03-02T14:00:00Z"),
        not_after: Some(ts("2026-03-03T02:00:00Z")),
        arm: "sms-first".into(),
    }
}

#[test]
fn outputs_round_trip() {
    let a = action();
    assert_eq!(
        decode_action(&encode_action(&a, Wire::Confluent).unwrap()).unwrap(),
        a
    );
    let a2 = Action {
        not_after: None,
        ..a
    };
    assert_eq!(
        decode_action(&encode_action(&a2, Wire::Raw).unwrap()).unwrap(),
        a2
    );
    let r = AuditRecord {
        debtor_id: "D-1".into(),
        at: ts("2026-03-02T14:00:00Z"),
        kind: DecisionKind::Deferred,
        action_id: Some(a2.action_id.clone()),
        channel: Some(Channel::Whatsapp),
        rule: "policy/CO".into(),
        reason: "blocked_day".into(),
        until: Some(ts("2026-03-03T12:00:00Z")),
        strategy: Some("early-digital".into()),
        arm: Some("champion".into()),
        subject: Some("PAY-9".into()),
        previous: Some("stage:preventive".into()),
        debtor: Some(mora_domain::action::DebtorAtDecision {
            dpd: 12,
            bucket: "1-30".into(),
            stage: "administrative".into(),
            segment: "standard".into(),
            priority: -7,
        }),
    };
    assert_eq!(
        decode_audit(&encode_audit(&r, Wire::Confluent).unwrap()).unwrap(),
        r
    );
    let bare = AuditRecord {
        action_id: None,
        channel: None,
        until: None,
        kind: DecisionKind::Reclassified,
        strategy: None,
        arm: None,
        subject: None,
        previous: None,
        debtor: None,
        ..r
    };
    assert_eq!(
        decode_audit(&encode_audit(&bare, Wire::Raw).unwrap()).unwrap(),
        bare
    );
    let dl = DeadLetter {
        topic: "mora.in.payment".into(),
        partition: 3,
        offset: 42,
        key: Some(b"D-1".to_vec()),
        payload: vec![0, 1, 2],
        error_kind: "decode".into(),
        reason: "empty payload".into(),
        at: ts("2026-03-02T14:00:00Z"),
    };
    assert_eq!(
        decode_dead_letter(&encode_dead_letter(&dl, Wire::Confluent).unwrap()).unwrap(),
        dl
    );
}

#[test]
fn outputs_written_before_the_arm_existed_still_read() {
    // A version-1 body is the current body without the trailing fields: an empty `arm` string is one zero byte,
    // and two null unions are two.
    let a = Action {
        arm: "".into(),
        ..action()
    };
    let raw = encode_action(&a, Wire::Raw).unwrap();
    let mut v1 = vec![0, 0, 0, 0, 7];
    v1.extend(&raw[..raw.len() - 1]);
    let read = decode_action(&v1).unwrap();
    assert_eq!(read.arm, "champion", "the schema default");
    assert_eq!(read.action_id, a.action_id);
    let r = AuditRecord {
        debtor_id: "D-1".into(),
        at: ts("2026-03-02T14:00:00Z"),
        kind: DecisionKind::Emitted,
        action_id: None,
        channel: None,
        rule: "aging".into(),
        reason: "stage:administrative".into(),
        until: None,
        strategy: None,
        arm: None,
        subject: None,
        previous: None,
        debtor: None,
    };
    let raw = encode_audit(&r, Wire::Raw).unwrap();
    let mut v1 = vec![0, 0, 0, 0, 8];
    v1.extend(&raw[..raw.len() - 5]);
    assert_eq!(decode_audit(&v1).unwrap(), r);
    // Version 2 (strategy and arm, before subject, previous and the debtor's figures): three null unions fewer.
    let mut v2 = vec![0, 0, 0, 0, 13];
    v2.extend(&raw[..raw.len() - 3]);
    assert_eq!(decode_audit(&v2).unwrap(), r);
}

#[test]
fn a_reader_on_the_previous_audit_schema_reads_the_current_records() {
    // Old readers keep working: a consumer compiled against version 2 resolves version-3 records, ignoring the
    // fields it does not know. (Records of the kind added in version 3, `noted`, are the exception: an enum symbol a
    // reader does not know cannot be resolved; docs/contract.md says so.)
    let v2 = apache_avro::Schema::parse_str(include_str!("../avro/compat/decision_audit.v2.avsc"))
        .unwrap();
    let (_, v3) = mora_schemas::Registry::global().current(mora_schemas::SchemaKind::Audit);
    let r = AuditRecord {
        debtor_id: "D-1".into(),
        at: ts("2026-03-02T14:00:00Z"),
        kind: DecisionKind::PromiseBroken,
        action_id: None,
        channel: None,
        rule: "promise".into(),
        reason: "deadline_passed".into(),
        until: None,
        strategy: Some("early-digital".into()),
        arm: Some("champion".into()),
        subject: Some("PR-2".into()),
        previous: None,
        debtor: Some(mora_domain::action::DebtorAtDecision {
            dpd: 40,
            bucket: "31-60".into(),
            stage: "administrative".into(),
            segment: "standard".into(),
            priority: 1234,
        }),
    };
    let raw = encode_audit(&r, Wire::Raw).unwrap();
    let old = apache_avro::from_avro_datum(v3, &mut &raw[..], Some(&v2)).unwrap();
    let apache_avro::types::Value::Record(fields) = old else {
        panic!("a record")
    };
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "debtor_id",
            "at",
            "kind",
            "action_id",
            "channel",
            "rule",
            "reason",
            "until",
            "strategy",
            "arm"
        ]
    );
    assert_eq!(
        fields[6].1,
        apache_avro::types::Value::String("deadline_passed".into())
    );
}

#[test]
fn amounts_finer_than_the_schema_scale_are_refused_not_rounded() {
    let ev = testkit::payment(
        "D-1",
        "P1",
        "USD",
        "1.00001",
        None,
        ts("2026-03-02T14:00:00Z"),
    );
    assert_eq!(
        encode_event(&ev, Wire::Raw),
        Err(EncodeError::Precision("amount"))
    );
}

#[test]
fn a_record_written_with_schema_version_1_reads_under_version_2() {
    let v1 =
        apache_avro::Schema::parse_str(include_str!("../avro/compat/account.v1.avsc")).unwrap();
    let channel = |i: u32, s: &str| Value::Enum(i, s.into());
    let rec = |fields: Vec<(&str, Value)>| {
        Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    };
    let body = rec(vec![
        ("country", Value::String("CO".into())),
        ("time_zone", Value::String("America/Bogota".into())),
        ("zone", Value::String("north".into())),
        ("customer_type", Value::Enum(1, "SMALL_BUSINESS".into())),
        (
            "credit_limit",
            Value::Decimal(apache_avro::Decimal::from(&[0x30, 0x39][..])),
        ), // 12345 → 1.2345
        ("credit_currency", Value::String("COP".into())),
        ("risk_score", Value::Int(700)),
        (
            "preferred_channel",
            Value::Union(1, Box::new(channel(2, "WHATSAPP"))),
        ),
        (
            "consent",
            Value::Array(vec![channel(1, "SMS"), channel(2, "WHATSAPP")]),
        ),
        (
            "flags",
            rec([
                "deceased",
                "bankruptcy",
                "cease_and_desist",
                "lawsuit_served",
                "attorney",
                "vip",
            ]
            .into_iter()
            .map(|f| (f, Value::Boolean(f == "vip")))
            .collect()),
        ),
    ]);
    let envelope = rec(vec![
        ("event_id", Value::String("e-1".into())),
        ("debtor_id", Value::String("D-9".into())),
        ("occurred_at", Value::TimestampMillis(1_772_460_000_000)),
        ("payload", Value::Union(0, Box::new(body))),
    ]);
    let mut bytes = vec![0, 0, 0, 0, 10]; // schema id 10: account events, version 1
    bytes.extend(apache_avro::to_avro_datum(&v1, envelope).unwrap());
    let ev = decode_event(Family::Account, &bytes).unwrap();
    let EventKind::DebtorUpserted(p) = ev.kind else {
        panic!("wrong kind {:?}", ev.kind)
    };
    assert_eq!(
        p.region, None,
        "the field added in version 2 takes its default"
    );
    assert_eq!(p.credit_limit.get(), dec!(1.2345));
    assert_eq!(
        p.consent.iter().collect::<Vec<_>>(),
        vec![Channel::Sms, Channel::Whatsapp]
    );
    assert!(p.flags.vip);
}

#[test]
fn empty_truncated_and_mismatched_payloads_give_typed_errors() {
    assert_eq!(decode_event(Family::Payment, &[]), Err(DecodeError::Empty));
    assert_eq!(
        decode_event(Family::Payment, &[0, 0, 0]),
        Err(DecodeError::TruncatedHeader(3))
    );
    assert_eq!(
        decode_event(Family::Payment, &[0, 0, 0, 0x30, 0x39, 2]),
        Err(DecodeError::UnknownSchemaId(12345))
    );
    assert!(matches!(
        decode_event(Family::Payment, &[0, 0, 0, 0, 1, 2]),
        Err(DecodeError::WrongSchema {
            id: 1,
            found: "account",
            expected: "payment"
        })
    ));
    let ev = testkit::payment("D-1", "P1", "USD", "12.5", None, ts("2026-03-02T14:00:00Z"));
    let bytes = encode_event(&ev, Wire::Confluent).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            decode_event(Family::Payment, &bytes[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    let mut longer = bytes.clone();
    longer.push(7);
    assert_eq!(
        decode_event(Family::Payment, &longer),
        Err(DecodeError::TrailingBytes(1))
    );
    // A payment read as a promise: the union branch exists but its fields do not match.
    let raw = encode_event(&ev, Wire::Raw).unwrap();
    assert!(decode_event(Family::Promise, &raw).is_err());
}

#[test]
fn invalid_values_are_refused() {
    let mut ev =
        testkit::debtor_upserted("D-1", "CO", "America/Bogota", ts("2026-03-02T14:00:00Z"));
    ev.event_id = "".into();
    let bytes = encode_event(&ev, Wire::Confluent).unwrap();
    assert!(matches!(
        decode_event(Family::Account, &bytes),
        Err(DecodeError::Invalid {
            field: "event_id",
            ..
        })
    ));
    // Raw, an empty first string reads as a Confluent magic byte: refused as well, never misread.
    assert!(decode_event(Family::Account, &encode_event(&ev, Wire::Raw).unwrap()).is_err());
}

fn all_decoders(bytes: &[u8]) {
    for f in Family::ALL {
        let _ = decode_event(f, bytes);
    }
    let _ = decode_action(bytes);
    let _ = decode_audit(bytes);
    let _ = decode_dead_letter(bytes);
    let _ = mora_schemas::decode_clock(bytes);
}

/// The fast path (current schema, straight from the binary) and the generic path (apache-avro values) agree: the
/// same event, or both refuse.
fn paths_agree(family: Family, bytes: &[u8]) {
    let fast = decode_event(family, bytes);
    let generic = mora_schemas::decode_event_generic(family, bytes);
    match (&fast, &generic) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("fast {fast:?} but generic {generic:?} for {family:?} {bytes:02x?}"),
    }
}

#[test]
fn fast_and_generic_paths_agree_on_every_event_kind() {
    for ev in every_event() {
        let (family, _) = family_of(&ev.kind);
        for wire in [Wire::Raw, Wire::Confluent] {
            let bytes = encode_event(&ev, wire).unwrap();
            paths_agree(family, &bytes);
            assert_eq!(decode_event(family, &bytes).unwrap(), ev);
            // Every truncation, and a byte too many.
            for cut in 0..bytes.len() {
                paths_agree(family, &bytes[..cut]);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            paths_agree(family, &longer);
        }
    }
}

/// Every symbol of the enums an input record carries (channels, outcomes, dispute outcomes, customer types) reads
/// as the same value on both paths: the fast path reads them by index, the generic one by name.
#[test]
fn fast_and_generic_paths_agree_on_every_enum_symbol() {
    let at = ts("2026-03-02T14:00:00.123Z");
    let ev = |id: &str, kind| testkit::event("D-1", id, at, kind);
    let mut events = Vec::new();
    for channel in Channel::ALL {
        events.push(ev(
            "c",
            EventKind::ConsentChanged {
                channel,
                granted: true,
            },
        ));
        for outcome in Outcome::ALL {
            events.push(ev(
                "o",
                EventKind::ContactOutcome {
                    action_id: "a".into(),
                    channel,
                    outcome,
                },
            ));
        }
        let mut upserted = testkit::debtor_upserted("D-1", "US", "America/New_York", at);
        if let EventKind::DebtorUpserted(p) = &mut upserted.kind {
            p.preferred_channel = Some(channel);
            p.consent = [channel].into_iter().collect();
        }
        events.push(upserted);
    }
    for outcome in [
        DisputeOutcome::Upheld,
        DisputeOutcome::Rejected,
        DisputeOutcome::Withdrawn,
    ] {
        events.push(ev(
            "d",
            EventKind::DisputeResolved {
                dispute_id: "R".into(),
                outcome,
            },
        ));
    }
    for customer_type in [
        CustomerType::Individual,
        CustomerType::SmallBusiness,
        CustomerType::Corporate,
    ] {
        let mut upserted = testkit::debtor_upserted("D-1", "US", "America/New_York", at);
        if let EventKind::DebtorUpserted(p) = &mut upserted.kind {
            p.customer_type = customer_type;
        }
        events.push(upserted);
    }
    for ev in events {
        let (family, _) = family_of(&ev.kind);
        let bytes = encode_event(&ev, Wire::Confluent).unwrap();
        assert_eq!(
            mora_schemas::decode_event_generic(family, &bytes).unwrap(),
            ev
        );
        assert_eq!(decode_event(family, &bytes).unwrap(), ev);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Valid records with one byte changed: both paths give the same event or both refuse it.
    #[test]
    fn fast_and_generic_paths_agree_on_corrupted_records(idx in 0usize..19, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let ev = &every_event()[idx];
        let (family, _) = family_of(&ev.kind);
        let mut bytes = encode_event(ev, Wire::Confluent).unwrap();
        let at = 5 + pos.index(bytes.len() - 5);
        bytes[at] = byte;
        paths_agree(family, &bytes);
    }

    /// Random bodies behind the current schema id of each family: the same answers on both paths.
    #[test]
    fn fast_and_generic_paths_agree_on_random_bodies(f in 0usize..6, body in prop::collection::vec(any::<u8>(), 0..128)) {
        let family = Family::ALL[f];
        let mut bytes = vec![0];
        bytes.extend(Registry::global().current(SchemaKind::Event(family)).0.to_be_bytes());
        bytes.extend(body);
        paths_agree(family, &bytes);
    }

    /// Random bytes never panic any decoder.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        all_decoders(&bytes);
    }

    /// Random bodies behind every valid schema id never panic either (they reach deep into the Avro reader).
    #[test]
    fn random_bodies_behind_valid_headers_never_panic(id in 1u32..=13, body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = vec![0];
        bytes.extend(id.to_be_bytes());
        bytes.extend(body);
        all_decoders(&bytes);
    }

    /// Valid records with random bytes flipped never panic.
    #[test]
    fn corrupted_records_never_panic(idx in 0usize..19, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let ev = &every_event()[idx];
        let mut bytes = encode_event(ev, Wire::Confluent).unwrap();
        let at = pos.index(bytes.len());
        bytes[at] = byte;
        all_decoders(&bytes);
    }
}

#[test]
fn branch_names_match_the_embedded_schemas() {
    // The mapper's branch list must follow the schema files; a renamed record would otherwise be refused.
    for ev in every_event() {
        let (family, _) = family_of(&ev.kind);
        let bytes = encode_event(&ev, Wire::Raw).unwrap();
        assert!(decode_event(family, &bytes).is_ok(), "{}", ev.kind.name());
    }
    for kind in Family::ALL {
        assert!(
            Registry::global()
                .canonical(SchemaKind::Event(kind))
                .contains("mora.v1")
        );
    }
}

fn decimal() -> impl Strategy<Value = rust_decimal::Decimal> {
    (any::<i64>(), 0u32..=6).prop_map(|(m, s)| rust_decimal::Decimal::new(m, s))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z_/-]{1,12}", any::<String>()]
}

fn instant() -> impl Strategy<Value = mora_domain::time::Ts> {
    any::<i64>().prop_map(mora_domain::time::Ts)
}

prop_compose! {
    fn any_action()(
        id in text(), debtor in text(), ch in 0usize..7, template in text(),
        amounts in prop::collection::vec((prop::sample::select(vec!["COP", "USD", "MXN", "EUR"]), decimal()), 0..4),
        overdue in decimal(), dpd in any::<u16>(), stage in 0usize..4, segment in text(), priority in any::<i64>(),
        reason in (text(), text(), text()), jurisdiction in text(),
        times in (instant(), instant(), prop::option::of(instant())), arm in text(),
    ) -> Action {
        let mut amounts_due = mora_domain::money::Balances::default();
        for (c, a) in amounts {
            amounts_due.add(cur(c), a);
        }
        Action {
            action_id: ActionId(id.into()),
            debtor_id: debtor.into(),
            channel: Channel::ALL[ch],
            template: template.into(),
            amounts_due,
            overdue_base: overdue,
            dpd,
            stage: Stage::ALL[stage],
            segment: segment.into(),
            priority,
            reason: Reason { strategy: reason.0.into(), step: reason.1.into(), trigger: reason.2.into() },
            jurisdiction: jurisdiction.into(),
            created_at: times.0,
            not_before: times.1,
            not_after: times.2,
            arm: arm.into(),
        }
    }
}

prop_compose! {
    fn any_audit()(
        debtor in text(), at in instant(), kind in 0usize..9, action in prop::option::of(text()),
        ch in prop::option::of(0usize..7), rule in text(), reason in text(), until in prop::option::of(instant()),
        strategy in prop::option::of(text()), arm in prop::option::of(text()),
        subject in prop::option::of(text()), previous in prop::option::of(text()),
        figures in prop::option::of((any::<u16>(), text(), text(), text(), any::<i64>())),
    ) -> AuditRecord {
        const KINDS: [DecisionKind; 9] = [
            DecisionKind::Emitted, DecisionKind::Deferred, DecisionKind::Dropped, DecisionKind::Cancelled,
            DecisionKind::Suppressed, DecisionKind::PromiseKept, DecisionKind::PromiseBroken,
            DecisionKind::Reclassified, DecisionKind::Noted,
        ];
        AuditRecord {
            debtor_id: debtor.into(),
            at,
            kind: KINDS[kind],
            action_id: action.map(|a| ActionId(a.into())),
            channel: ch.map(|c| Channel::ALL[c]),
            rule: rule.into(),
            reason: reason.into(),
            until,
            strategy: strategy.map(Into::into),
            arm: arm.map(Into::into),
            subject: subject.map(Into::into),
            previous: previous.map(Into::into),
            debtor: figures.map(|(dpd, bucket, stage, segment, priority)| mora_domain::action::DebtorAtDecision {
                dpd,
                bucket: bucket.into(),
                stage: stage.into(),
                segment: segment.into(),
                priority,
            }),
        }
    }
}

fn same_result(
    fast: Result<Vec<u8>, EncodeError>,
    generic: Result<Vec<u8>, EncodeError>,
) -> Result<(), TestCaseError> {
    match (fast, generic) {
        (Ok(f), Ok(g)) => prop_assert_eq!(f, g),
        (Err(f), Err(g)) => prop_assert_eq!(f.to_string(), g.to_string()),
        (f, g) => prop_assert!(false, "fast {f:?} but generic {g:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The output writers give the bytes apache-avro's generic writer gives (or the same refusal), in both framings.
    #[test]
    fn fast_and_generic_writers_agree_on_actions(a in any_action()) {
        for wire in [Wire::Raw, Wire::Confluent] {
            same_result(encode_action(&a, wire), encode_action_generic(&a, wire))?;
        }
    }

    #[test]
    fn fast_and_generic_writers_agree_on_audit_records(r in any_audit()) {
        for wire in [Wire::Raw, Wire::Confluent] {
            same_result(encode_audit(&r, wire), encode_audit_generic(&r, wire))?;
        }
    }
}
