//! Input envelopes: Avro values to domain events and back.

use apache_avro::types::Value;
use mora_domain::event::{
    CustomerType, DebtorFlags, DisputeOutcome, Envelope, EventKind, Installment, ObligationOpened,
    Outcome, Profile,
};
use mora_domain::ids::ChannelSet;

use crate::codec::{self, Fields, as_channel, money, opt, record, string, symbol};
use crate::error::{DecodeError, EncodeError};
use crate::registry::{Family, Registry, SchemaKind, Wire};

/// The topic family an event kind travels in, and its branch index in that family's payload union.
pub fn family_of(kind: &EventKind) -> (Family, usize) {
    match kind {
        EventKind::DebtorUpserted(_) => (Family::Account, 0),
        EventKind::ConsentChanged { .. } => (Family::Account, 1),
        EventKind::ChargedOff { .. } => (Family::Account, 2),
        EventKind::AgencyPlaced { .. } => (Family::Account, 3),
        EventKind::AgencyRecalled { .. } => (Family::Account, 4),
        EventKind::ObligationOpened(_) => (Family::Obligation, 0),
        EventKind::ObligationUpdated { .. } => (Family::Obligation, 1),
        EventKind::PaymentPlanAgreed { .. } => (Family::Obligation, 2),
        EventKind::PaymentReceived { .. } => (Family::Payment, 0),
        EventKind::PaymentReversed { .. } => (Family::Payment, 1),
        EventKind::CreditNote { .. } => (Family::Payment, 2),
        EventKind::PromiseToPay { .. } => (Family::Promise, 0),
        EventKind::DisputeOpened { .. } => (Family::Dispute, 0),
        EventKind::DisputeResolved { .. } => (Family::Dispute, 1),
        EventKind::ContactOutcome { .. } => (Family::ContactOutcome, 0),
    }
}

/// Record names of each family's payload union, in the current schema's branch order.
const BRANCHES: [(Family, &[&str]); 6] = [
    (
        Family::Account,
        &[
            "DebtorUpserted",
            "ConsentChanged",
            "ChargedOff",
            "AgencyPlaced",
            "AgencyRecalled",
        ],
    ),
    (
        Family::Obligation,
        &["ObligationOpened", "ObligationUpdated", "PaymentPlanAgreed"],
    ),
    (
        Family::Payment,
        &["PaymentReceived", "PaymentReversed", "CreditNote"],
    ),
    (Family::Promise, &["PromiseToPay"]),
    (Family::Dispute, &["DisputeOpened", "DisputeResolved"]),
    (Family::ContactOutcome, &["ContactOutcome"]),
];

fn branch_index(family: Family, name: &str) -> Option<usize> {
    BRANCHES
        .iter()
        .find(|(f, _)| *f == family)
        .and_then(|(_, names)| names.iter().position(|n| *n == name))
}

/// Decodes an input record of topic family `family` (raw Avro or Confluent framing). Records written with the
/// family's current schema take the fast path (straight from the Avro binary); others are read through Avro schema
/// resolution ([`decode_event_generic`]).
pub fn decode_event(family: Family, bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if family != Family::Clock {
        let current = Registry::global().current_id(SchemaKind::Event(family));
        match bytes {
            [0, a, b, c, d, body @ ..] if u32::from_be_bytes([*a, *b, *c, *d]) == current => {
                return crate::fast::decode_current(family, body);
            }
            [first, ..] if *first != 0 => return crate::fast::decode_current(family, bytes),
            _ => {}
        }
    }
    decode_event_generic(family, bytes)
}

/// Decodes an input record through apache-avro's generic values and Avro schema resolution: any known writer
/// schema of the family. [`decode_event`] uses it for records not written with the current schema.
pub fn decode_event_generic(family: Family, bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if family == Family::Clock {
        return Err(DecodeError::Invalid {
            field: "family",
            reason: "clock records are not debtor events (read them with decode_clock)".into(),
        });
    }
    let decoded = codec::decode(SchemaKind::Event(family), bytes)?;
    let writer = decoded.writer;
    let mut f = Fields::of(decoded.value, "envelope")?;
    let event_id = f.id("event_id")?;
    let debtor_id = f.id("debtor_id")?;
    let occurred_at = f.ts("occurred_at")?;
    let (branch, payload) = match f.take("payload")? {
        Value::Union(i, v) => (i, *v),
        _ => return Err(DecodeError::Field("payload")),
    };
    // Branches are matched by record name, so a writer whose union lists them in another order still reads.
    let name =
        codec::union_branch_name(writer, "payload", branch).ok_or(DecodeError::Field("payload"))?;
    let reader_branch = branch_index(family, name).ok_or_else(|| DecodeError::Invalid {
        field: "payload",
        reason: format!("unknown event record {name}"),
    })?;
    let p = Fields::of(payload, "payload")?;
    let kind = match family {
        Family::Account => account_event(reader_branch, p)?,
        Family::Obligation => obligation_event(reader_branch, p)?,
        Family::Payment => payment_event(reader_branch, p)?,
        Family::Promise => promise_event(reader_branch, p)?,
        Family::Dispute => dispute_event(reader_branch, p)?,
        Family::ContactOutcome => contact_outcome_event(reader_branch, p)?,
        _ => return Err(DecodeError::Field("payload")),
    };
    Ok(Envelope {
        event_id,
        debtor_id,
        occurred_at,
        kind,
    })
}

/// Reads an account event (profile, consent, charge-off, agency placement) from branch `branch` of the
/// reader's payload union.
fn account_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => EventKind::DebtorUpserted(profile(p)?),
        1 => {
            let mut p = p;
            EventKind::ConsentChanged {
                channel: p.channel("channel")?,
                granted: p.bool("granted")?,
            }
        }
        2 => EventKind::ChargedOff {
            reason: { p }.string("reason")?,
        },
        3 => EventKind::AgencyPlaced {
            agency_id: { p }.id("agency_id")?,
        },
        4 => EventKind::AgencyRecalled {
            agency_id: { p }.id("agency_id")?,
        },
        _ => return Err(DecodeError::Field("payload")),
    })
}

/// Reads an obligation event (opened, updated, payment plan) from branch `branch` of the reader's payload union.
fn obligation_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => {
            let mut p = p;
            EventKind::ObligationOpened(ObligationOpened {
                obligation_id: p.id("obligation_id")?,
                product: p.string("product")?.into(),
                currency: p.currency("currency")?,
                amount: p.money("amount")?,
                due_date: p.date("due_date")?,
            })
        }
        1 => {
            let mut p = p;
            EventKind::ObligationUpdated {
                obligation_id: p.id("obligation_id")?,
                amount: p.opt_money("amount")?,
                due_date: p.opt_date("due_date")?,
            }
        }
        2 => {
            let mut p = p;
            let plan_id = p.id("plan_id")?;
            let currency = p.currency("currency")?;
            let items = match p.take("installments")? {
                Value::Array(items) => items,
                _ => return Err(DecodeError::Field("installments")),
            };
            let mut installments = Vec::with_capacity(items.len());
            for item in items {
                let mut i = Fields::of(item, "installments")?;
                installments.push(Installment {
                    due_date: i.date("due_date")?,
                    amount: i.money("amount")?,
                });
            }
            EventKind::PaymentPlanAgreed {
                plan_id,
                currency,
                installments,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

/// Reads a payment event (received, reversed, credit note) from branch `branch` of the reader's payload union.
fn payment_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => {
            let mut p = p;
            EventKind::PaymentReceived {
                payment_id: p.id("payment_id")?,
                currency: p.currency("currency")?,
                amount: p.money("amount")?,
                obligation_id: p.opt_string("obligation_id")?,
            }
        }
        1 => {
            let mut p = p;
            EventKind::PaymentReversed {
                payment_id: p.id("payment_id")?,
                reason: p.string("reason")?,
            }
        }
        2 => {
            let mut p = p;
            EventKind::CreditNote {
                note_id: p.id("note_id")?,
                currency: p.currency("currency")?,
                amount: p.money("amount")?,
                obligation_id: p.opt_string("obligation_id")?,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

/// Reads a promise to pay from branch `branch` of the reader's payload union.
fn promise_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => {
            let mut p = p;
            EventKind::PromiseToPay {
                promise_id: p.id("promise_id")?,
                currency: p.currency("currency")?,
                amount: p.money("amount")?,
                promised_by: p.date("promised_by")?,
                taken_by: p.string("taken_by")?,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

/// Reads a dispute event (opened, resolved) from branch `branch` of the reader's payload union.
fn dispute_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => {
            let mut p = p;
            EventKind::DisputeOpened {
                dispute_id: p.id("dispute_id")?,
                obligation_id: p.opt_string("obligation_id")?,
                reason: p.string("reason")?,
            }
        }
        1 => {
            let mut p = p;
            let outcome = match p.symbol("outcome")?.as_str() {
                "UPHELD" => DisputeOutcome::Upheld,
                "REJECTED" => DisputeOutcome::Rejected,
                "WITHDRAWN" => DisputeOutcome::Withdrawn,
                s => {
                    return Err(DecodeError::Invalid {
                        field: "outcome",
                        reason: format!("unknown symbol {s}"),
                    });
                }
            };
            EventKind::DisputeResolved {
                dispute_id: p.id("dispute_id")?,
                outcome,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

/// Reads a contact outcome from branch `branch` of the reader's payload union.
fn contact_outcome_event(branch: usize, p: Fields) -> Result<EventKind, DecodeError> {
    Ok(match branch {
        0 => {
            let mut p = p;
            let action_id = p.id("action_id")?;
            let channel = p.channel("channel")?;
            let outcome = codec::outcome_of(&p.symbol("outcome")?)?;
            EventKind::ContactOutcome {
                action_id,
                channel,
                outcome,
            }
        }
        _ => return Err(DecodeError::Field("payload")),
    })
}

fn profile(mut p: Fields) -> Result<Profile, DecodeError> {
    let country = p.string("country")?.into();
    let region = p.opt_string("region")?.map(Into::into);
    let tz_name = p.string("time_zone")?;
    let time_zone = codec::time_zone_of(&tz_name)?;
    let zone = p.string("zone")?.into();
    let customer_type = match p.symbol("customer_type")?.as_str() {
        "INDIVIDUAL" => CustomerType::Individual,
        "SMALL_BUSINESS" => CustomerType::SmallBusiness,
        "CORPORATE" => CustomerType::Corporate,
        s => {
            return Err(DecodeError::Invalid {
                field: "customer_type",
                reason: format!("unknown symbol {s}"),
            });
        }
    };
    let credit_limit = codec::bounded(p.money("credit_limit")?, "credit_limit")?;
    let credit_currency = p.currency("credit_currency")?;
    let risk_score = codec::risk_score_of(p.int("risk_score")?)?;
    let preferred_channel = p.opt_channel("preferred_channel")?;
    let consent = match p.take("consent")? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| as_channel(v, "consent"))
            .collect::<Result<ChannelSet, _>>()?,
        _ => return Err(DecodeError::Field("consent")),
    };
    let mut fl = Fields::of(p.take("flags")?, "flags")?;
    let flags = DebtorFlags {
        deceased: fl.bool_or("deceased", false)?,
        bankruptcy: fl.bool_or("bankruptcy", false)?,
        cease_and_desist: fl.bool_or("cease_and_desist", false)?,
        lawsuit_served: fl.bool_or("lawsuit_served", false)?,
        attorney: fl.bool_or("attorney", false)?,
        vip: fl.bool_or("vip", false)?,
    };
    Ok(Profile {
        country,
        region,
        time_zone,
        zone,
        customer_type,
        credit_limit,
        credit_currency,
        risk_score,
        preferred_channel,
        consent,
        flags,
    })
}

/// Encodes an event in its family's current schema.
pub fn encode_event(ev: &Envelope, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let (family, branch) = family_of(&ev.kind);
    let payload = match family {
        Family::Account => account_payload(&ev.kind)?,
        Family::Obligation => obligation_payload(&ev.kind)?,
        Family::Payment => payment_payload(&ev.kind)?,
        Family::Promise => promise_payload(&ev.kind)?,
        Family::Dispute => dispute_payload(&ev.kind)?,
        Family::ContactOutcome | Family::Clock => contact_outcome_payload(&ev.kind)?,
    };
    let value = record(vec![
        ("event_id", string(&ev.event_id)),
        ("debtor_id", string(&ev.debtor_id)),
        ("occurred_at", Value::TimestampMillis(ev.occurred_at.0)),
        ("payload", Value::Union(branch as u32, Box::new(payload))),
    ]);
    codec::encode(SchemaKind::Event(family), value, wire)
}

/// The payload record of an account event.
fn account_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::DebtorUpserted(p) => record(vec![
            ("country", string(&p.country)),
            ("region", opt(p.region.as_deref().map(string))),
            ("time_zone", string(p.time_zone.name())),
            ("zone", string(&p.zone)),
            (
                "customer_type",
                match p.customer_type {
                    CustomerType::Individual => symbol(0, "individual"),
                    CustomerType::SmallBusiness => symbol(1, "small_business"),
                    CustomerType::Corporate => symbol(2, "corporate"),
                },
            ),
            ("credit_limit", money(p.credit_limit.get(), "credit_limit")?),
            ("credit_currency", string(p.credit_currency.as_str())),
            ("risk_score", Value::Int(p.risk_score.into())),
            (
                "preferred_channel",
                opt(p.preferred_channel.map(codec::channel)),
            ),
            (
                "consent",
                Value::Array(p.consent.iter().map(codec::channel).collect()),
            ),
            (
                "flags",
                record(vec![
                    ("deceased", Value::Boolean(p.flags.deceased)),
                    ("bankruptcy", Value::Boolean(p.flags.bankruptcy)),
                    ("cease_and_desist", Value::Boolean(p.flags.cease_and_desist)),
                    ("lawsuit_served", Value::Boolean(p.flags.lawsuit_served)),
                    ("attorney", Value::Boolean(p.flags.attorney)),
                    ("vip", Value::Boolean(p.flags.vip)),
                ]),
            ),
        ]),
        EventKind::ConsentChanged { channel, granted } => record(vec![
            ("channel", codec::channel(*channel)),
            ("granted", Value::Boolean(*granted)),
        ]),
        EventKind::ChargedOff { reason } => record(vec![("reason", string(reason))]),
        EventKind::AgencyPlaced { agency_id } | EventKind::AgencyRecalled { agency_id } => {
            record(vec![("agency_id", string(agency_id))])
        }
        _ => return Err(EncodeError::Avro(format!("not an account event: {kind:?}"))),
    })
}

/// The payload record of an obligation event.
fn obligation_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::ObligationOpened(o) => record(vec![
            ("obligation_id", string(&o.obligation_id)),
            ("product", string(&o.product)),
            ("currency", string(o.currency.as_str())),
            ("amount", money(o.amount, "amount")?),
            ("due_date", codec::date(o.due_date)),
        ]),
        EventKind::ObligationUpdated {
            obligation_id,
            amount,
            due_date,
        } => record(vec![
            ("obligation_id", string(obligation_id)),
            (
                "amount",
                opt(amount.map(|a| money(a, "amount")).transpose()?),
            ),
            ("due_date", opt(due_date.map(codec::date))),
        ]),
        EventKind::PaymentPlanAgreed {
            plan_id,
            currency,
            installments,
        } => {
            let items = installments
                .iter()
                .map(|i| {
                    Ok(record(vec![
                        ("due_date", codec::date(i.due_date)),
                        ("amount", money(i.amount, "amount")?),
                    ]))
                })
                .collect::<Result<Vec<_>, EncodeError>>()?;
            record(vec![
                ("plan_id", string(plan_id)),
                ("currency", string(currency.as_str())),
                ("installments", Value::Array(items)),
            ])
        }
        _ => {
            return Err(EncodeError::Avro(format!(
                "not an obligation event: {kind:?}"
            )));
        }
    })
}

/// The payload record of a payment event.
fn payment_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::PaymentReceived {
            payment_id: id,
            currency,
            amount,
            obligation_id,
        }
        | EventKind::CreditNote {
            note_id: id,
            currency,
            amount,
            obligation_id,
        } => {
            let id_field = if matches!(kind, EventKind::PaymentReceived { .. }) {
                "payment_id"
            } else {
                "note_id"
            };
            record(vec![
                (id_field, string(id)),
                ("currency", string(currency.as_str())),
                ("amount", money(*amount, "amount")?),
                ("obligation_id", opt(obligation_id.as_deref().map(string))),
            ])
        }
        EventKind::PaymentReversed { payment_id, reason } => record(vec![
            ("payment_id", string(payment_id)),
            ("reason", string(reason)),
        ]),
        _ => return Err(EncodeError::Avro(format!("not a payment event: {kind:?}"))),
    })
}

/// The payload record of a promise to pay.
fn promise_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::PromiseToPay {
            promise_id,
            currency,
            amount,
            promised_by,
            taken_by,
        } => record(vec![
            ("promise_id", string(promise_id)),
            ("currency", string(currency.as_str())),
            ("amount", money(*amount, "amount")?),
            ("promised_by", codec::date(*promised_by)),
            ("taken_by", string(taken_by)),
        ]),
        _ => return Err(EncodeError::Avro(format!("not a promise to pay: {kind:?}"))),
    })
}

/// The payload record of a dispute event.
fn dispute_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::DisputeOpened {
            dispute_id,
            obligation_id,
            reason,
        } => record(vec![
            ("dispute_id", string(dispute_id)),
            ("obligation_id", opt(obligation_id.as_deref().map(string))),
            ("reason", string(reason)),
        ]),
        EventKind::DisputeResolved {
            dispute_id,
            outcome,
        } => record(vec![
            ("dispute_id", string(dispute_id)),
            (
                "outcome",
                match outcome {
                    DisputeOutcome::Upheld => symbol(0, "upheld"),
                    DisputeOutcome::Rejected => symbol(1, "rejected"),
                    DisputeOutcome::Withdrawn => symbol(2, "withdrawn"),
                },
            ),
        ]),
        _ => return Err(EncodeError::Avro(format!("not a dispute event: {kind:?}"))),
    })
}

/// The payload record of a contact outcome.
fn contact_outcome_payload(kind: &EventKind) -> Result<Value, EncodeError> {
    Ok(match kind {
        EventKind::ContactOutcome {
            action_id,
            channel,
            outcome,
        } => {
            let idx = Outcome::ALL.iter().position(|o| o == outcome).unwrap_or(0);
            record(vec![
                ("action_id", string(action_id)),
                ("channel", codec::channel(*channel)),
                ("outcome", symbol(idx, outcome.as_str())),
            ])
        }
        _ => {
            return Err(EncodeError::Avro(format!(
                "not a contact outcome: {kind:?}"
            )));
        }
    })
}
