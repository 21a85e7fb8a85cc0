//! Output records: contact actions, decision audit records and dead letters.

use apache_avro::types::Value;
use compact_str::CompactString;
use mora_domain::action::{Action, ActionId, AuditRecord, DebtorAtDecision, Reason};
use mora_domain::money::Balances;
use mora_domain::stage::Stage;
use mora_domain::time::Ts;

use crate::codec::{self, Fields, money, opt, record, string, symbol};
use crate::error::{DecodeError, EncodeError};
use crate::registry::{SchemaKind, Wire};
use crate::symbols::{DECISION_KINDS, kind_index, stage_index};

/// Encodes a contact action (straight to Avro binary; the same bytes as [`encode_action_generic`]).
pub fn encode_action(a: &Action, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    crate::write::action(a, wire)
}

/// Encodes a contact action through apache-avro's generic values: the reference for the fast path.
pub fn encode_action_generic(a: &Action, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let amounts = a
        .amounts_due
        .iter()
        .map(|(c, amt)| {
            Ok(record(vec![
                ("currency", string(c.as_str())),
                ("amount", money(amt, "amounts_due")?),
            ]))
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    let stage_idx = stage_index(a.stage);
    let value = record(vec![
        ("action_id", string(&a.action_id.0)),
        ("debtor_id", string(&a.debtor_id)),
        ("channel", codec::channel(a.channel)),
        ("template", string(&a.template)),
        ("amounts_due", Value::Array(amounts)),
        ("overdue_base", money(a.overdue_base, "overdue_base")?),
        ("dpd", Value::Int(a.dpd.into())),
        ("stage", symbol(stage_idx, a.stage.as_str())),
        ("segment", string(&a.segment)),
        ("priority", Value::Long(a.priority)),
        ("strategy", string(&a.reason.strategy)),
        ("step", string(&a.reason.step)),
        ("trigger", string(&a.reason.trigger)),
        ("jurisdiction", string(&a.jurisdiction)),
        ("created_at", Value::TimestampMillis(a.created_at.0)),
        ("not_before", Value::TimestampMillis(a.not_before.0)),
        (
            "not_after",
            opt(a.not_after.map(|t| Value::TimestampMillis(t.0))),
        ),
        ("arm", string(&a.arm)),
    ]);
    codec::encode(SchemaKind::Action, value, wire)
}

/// Decodes a contact action (what a gateway does; the engine's own tests use it to read the action topics).
pub fn decode_action(bytes: &[u8]) -> Result<Action, DecodeError> {
    let mut f = Fields::of(codec::decode(SchemaKind::Action, bytes)?.value, "action")?;
    let action_id = ActionId(f.id("action_id")?);
    let debtor_id = f.id("debtor_id")?;
    let channel = f.channel("channel")?;
    let template = f.string("template")?;
    let mut amounts_due = Balances::default();
    match f.take("amounts_due")? {
        Value::Array(items) => {
            for item in items {
                let mut i = Fields::of(item, "amounts_due")?;
                amounts_due.add(i.currency("currency")?, i.money("amount")?);
            }
        }
        _ => return Err(DecodeError::Field("amounts_due")),
    }
    let overdue_base = f.money("overdue_base")?;
    let dpd = u16::try_from(f.int("dpd")?).map_err(|_| DecodeError::Invalid {
        field: "dpd",
        reason: "out of range".into(),
    })?;
    let sym = f.symbol("stage")?.to_ascii_lowercase();
    let stage = Stage::parse(&sym).ok_or_else(|| DecodeError::Invalid {
        field: "stage",
        reason: format!("unknown {sym}"),
    })?;
    Ok(Action {
        action_id,
        debtor_id,
        channel,
        template,
        amounts_due,
        overdue_base,
        dpd,
        stage,
        segment: f.string("segment")?,
        priority: f.long("priority")?,
        reason: Reason {
            strategy: f.string("strategy")?,
            step: f.string("step")?,
            trigger: f.string("trigger")?,
        },
        jurisdiction: f.string("jurisdiction")?,
        created_at: f.ts("created_at")?,
        not_before: f.ts("not_before")?,
        not_after: f.opt_ts("not_after")?,
        arm: match f.opt("arm")? {
            Some(v) => codec::as_string(v, "arm")?,
            None => CompactString::const_new(mora_domain::strategy::CHAMPION),
        },
    })
}

/// Encodes a decision audit record (straight to Avro binary; the same bytes as [`encode_audit_generic`]).
pub fn encode_audit(r: &AuditRecord, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    crate::write::audit(r, wire)
}

/// Encodes a decision audit record through apache-avro's generic values: the reference for the fast path.
pub fn encode_audit_generic(r: &AuditRecord, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let idx = kind_index(r.kind);
    let value = record(vec![
        ("debtor_id", string(&r.debtor_id)),
        ("at", Value::TimestampMillis(r.at.0)),
        ("kind", symbol(idx, DECISION_KINDS[idx].1)),
        ("action_id", opt(r.action_id.as_ref().map(|a| string(&a.0)))),
        ("channel", opt(r.channel.map(codec::channel))),
        ("rule", string(&r.rule)),
        ("reason", string(&r.reason)),
        ("until", opt(r.until.map(|t| Value::TimestampMillis(t.0)))),
        ("strategy", opt(r.strategy.as_deref().map(string))),
        ("arm", opt(r.arm.as_deref().map(string))),
        ("subject", opt(r.subject.as_deref().map(string))),
        ("previous", opt(r.previous.as_deref().map(string))),
        (
            "debtor",
            opt(r.debtor.as_ref().map(|d| {
                record(vec![
                    ("dpd", Value::Int(i32::from(d.dpd))),
                    ("bucket", string(&d.bucket)),
                    ("stage", string(&d.stage)),
                    ("segment", string(&d.segment)),
                    ("priority", Value::Long(d.priority)),
                ])
            })),
        ),
    ]);
    codec::encode(SchemaKind::Audit, value, wire)
}

/// Decodes a decision audit record.
pub fn decode_audit(bytes: &[u8]) -> Result<AuditRecord, DecodeError> {
    let mut f = Fields::of(codec::decode(SchemaKind::Audit, bytes)?.value, "audit")?;
    let debtor_id = f.id("debtor_id")?;
    let at = f.ts("at")?;
    let sym = f.symbol("kind")?.to_ascii_lowercase();
    let kind = DECISION_KINDS
        .iter()
        .find(|(_, n)| *n == sym)
        .map(|(k, _)| *k)
        .ok_or_else(|| DecodeError::Invalid {
            field: "kind",
            reason: format!("unknown {sym}"),
        })?;
    Ok(AuditRecord {
        debtor_id,
        at,
        kind,
        action_id: f.opt_string("action_id")?.map(ActionId),
        channel: f.opt_channel("channel")?,
        rule: f.string("rule")?,
        reason: f.string("reason")?,
        until: f.opt_ts("until")?,
        strategy: f.opt_string("strategy")?,
        arm: f.opt_string("arm")?,
        subject: f.opt_string("subject")?,
        previous: f.opt_string("previous")?,
        debtor: match f.opt("debtor")? {
            Some(v) => {
                let mut d = Fields::of(v, "debtor")?;
                Some(DebtorAtDecision {
                    dpd: u16::try_from(d.int("dpd")?).map_err(|_| DecodeError::Invalid {
                        field: "debtor.dpd",
                        reason: "out of range".into(),
                    })?,
                    bucket: d.string("bucket")?,
                    stage: d.string("stage")?,
                    segment: d.string("segment")?,
                    priority: d.long("priority")?,
                })
            }
            None => None,
        },
    })
}

/// An input record the engine could not use, with where it came from and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Origin topic (or source name).
    pub topic: CompactString,
    /// Origin partition.
    pub partition: i32,
    /// Origin offset.
    pub offset: i64,
    /// Origin key.
    pub key: Option<Vec<u8>>,
    /// Origin value, unchanged.
    pub payload: Vec<u8>,
    /// `decode` (could not be read) or `rejected` (read but refused by the engine).
    pub error_kind: CompactString,
    /// The reason, in words.
    pub reason: String,
    /// Engine time when it was dead-lettered.
    pub at: Ts,
}

/// Encodes a dead-letter record.
pub fn encode_dead_letter(d: &DeadLetter, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let value = record(vec![
        ("topic", string(&d.topic)),
        ("partition", Value::Int(d.partition)),
        ("offset", Value::Long(d.offset)),
        ("key", opt(d.key.clone().map(Value::Bytes))),
        ("payload", Value::Bytes(d.payload.clone())),
        ("error_kind", string(&d.error_kind)),
        ("reason", string(&d.reason)),
        ("at", Value::TimestampMillis(d.at.0)),
    ]);
    codec::encode(SchemaKind::DeadLetter, value, wire)
}

/// Decodes a dead-letter record.
pub fn decode_dead_letter(bytes: &[u8]) -> Result<DeadLetter, DecodeError> {
    let mut f = Fields::of(
        codec::decode(SchemaKind::DeadLetter, bytes)?.value,
        "dead_letter",
    )?;
    let bytes_of = |v: Value, name| match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(DecodeError::Field(name)),
    };
    Ok(DeadLetter {
        topic: f.id("topic")?,
        partition: f.int("partition")?,
        offset: f.long("offset")?,
        key: f.opt("key")?.map(|v| bytes_of(v, "key")).transpose()?,
        payload: bytes_of(f.take("payload")?, "payload")?,
        error_kind: f.string("error_kind")?,
        reason: f.string("reason")?.to_string(),
        at: f.ts("at")?,
    })
}
