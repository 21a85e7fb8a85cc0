//! The fast path for output records: contact actions and audit records written straight to Avro binary with their
//! current schema, without building apache-avro's generic value tree and resolving the schema for each record
//! (which cost more than the decision itself). The generic writers in `outputs` stay as the reference;
//! `tests/contract.rs` checks that both give the same bytes for arbitrary records.

use mora_domain::action::{Action, AuditRecord};
use mora_domain::ids::Channel;
use mora_domain::time::Ts;

use crate::codec;
use crate::error::EncodeError;
use crate::registry::{Registry, SchemaKind, Wire};

/// An Avro body being written.
struct Out(Vec<u8>);

impl Out {
    fn start(kind: SchemaKind, wire: Wire, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        if wire == Wire::Confluent {
            out.push(0);
            out.extend_from_slice(&Registry::global().current_id(kind).to_be_bytes());
        }
        Self(out)
    }

    /// A zigzag varint (Avro `int` and `long`).
    fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn index(&mut self, i: usize) {
        self.long(i as i64);
    }

    /// A `["null", T]` union: the branch, then (when present) the value.
    fn opt<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.long(0),
            Some(v) => {
                self.long(1);
                write(self, v);
            }
        }
    }

    fn ts(&mut self, t: Ts) {
        self.long(t.0);
    }

    fn money(&mut self, d: rust_decimal::Decimal, name: &'static str) -> Result<(), EncodeError> {
        let (bytes, start) = codec::money_bytes(d, name)?;
        self.bytes(&bytes[start..]);
        Ok(())
    }
}

fn channel_index(c: Channel) -> usize {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

/// A contact action, as [`crate::encode_action_generic`] writes it.
pub(crate) fn action(a: &Action, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let mut o = Out::start(SchemaKind::Action, wire, 192);
    o.str(&a.action_id.0);
    o.str(&a.debtor_id);
    o.index(channel_index(a.channel));
    o.str(&a.template);
    let mut amounts = a.amounts_due.iter().peekable();
    if amounts.peek().is_some() {
        o.long(a.amounts_due.iter().count() as i64);
        for (currency, amount) in amounts {
            o.str(currency.as_str());
            o.money(amount, "amounts_due")?;
        }
    }
    o.long(0); // end of the array
    o.money(a.overdue_base, "overdue_base")?;
    o.long(a.dpd.into());
    o.index(crate::symbols::stage_index(a.stage));
    o.str(&a.segment);
    o.long(a.priority);
    o.str(&a.reason.strategy);
    o.str(&a.reason.step);
    o.str(&a.reason.trigger);
    o.str(&a.jurisdiction);
    o.ts(a.created_at);
    o.ts(a.not_before);
    o.opt(a.not_after, Out::ts);
    o.str(&a.arm);
    Ok(o.0)
}

/// A decision audit record, as [`crate::encode_audit_generic`] writes it.
pub(crate) fn audit(r: &AuditRecord, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let mut o = Out::start(SchemaKind::Audit, wire, 96);
    o.str(&r.debtor_id);
    o.ts(r.at);
    o.index(crate::symbols::kind_index(r.kind));
    o.opt(r.action_id.as_ref(), |o, id| o.str(&id.0));
    o.opt(r.channel, |o, c| o.index(channel_index(c)));
    o.str(&r.rule);
    o.str(&r.reason);
    o.opt(r.until, Out::ts);
    o.opt(r.strategy.as_deref(), Out::str);
    o.opt(r.arm.as_deref(), Out::str);
    o.opt(r.subject.as_deref(), Out::str);
    o.opt(r.previous.as_deref(), Out::str);
    o.opt(r.debtor.as_ref(), |o, d| {
        o.long(i64::from(d.dpd));
        o.str(&d.bucket);
        o.str(&d.stage);
        o.str(&d.segment);
        o.long(d.priority);
    });
    Ok(o.0)
}
