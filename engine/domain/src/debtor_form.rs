//! A debtor's serialized form: one record with every field, in the order the state store's format 2 and the API's
//! JSON have always had, whatever the in-memory layout ([`Debtor`] keeps its rarely used parts apart).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::debtor::{
    Cold, ContactMark, Debtor, Derived, History, Obligation, Obligations, PaymentRecord,
    PendingAction, Promise, Status, StrategyCursor,
};
use crate::event::Profile;
use crate::ids::{ChannelSet, DebtorId};
use crate::money::Balances;
use crate::time::Ts;

/// The form written: borrowed from the debtor.
#[derive(Serialize)]
struct Written<'a> {
    id: &'a DebtorId,
    profile: &'a Option<Profile>,
    revoked: ChannelSet,
    obligations: &'a [Obligation],
    payments: &'a [PaymentRecord],
    credit: &'a Balances,
    promises: &'a [Promise],
    disputes: &'a [CompactString],
    contacts: &'a [ContactMark],
    pending: &'a [PendingAction],
    issued: &'a [u64],
    cursor: &'a StrategyCursor,
    derived: &'a Derived,
    history: &'a History,
    status: &'a Status,
    next_wake: Ts,
}

/// The form read: the same fields, owned.
#[derive(Deserialize)]
struct Read {
    id: DebtorId,
    profile: Option<Profile>,
    revoked: ChannelSet,
    obligations: Vec<Obligation>,
    payments: Vec<PaymentRecord>,
    credit: Balances,
    promises: Vec<Promise>,
    disputes: Vec<CompactString>,
    contacts: Vec<ContactMark>,
    pending: Vec<PendingAction>,
    issued: Vec<u64>,
    cursor: StrategyCursor,
    derived: Derived,
    history: History,
    status: Status,
    next_wake: Ts,
}

impl Serialize for Debtor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.cold();
        Written {
            id: &self.id,
            profile: &self.profile,
            revoked: self.revoked,
            obligations: &self.obligations,
            payments: &c.payments,
            credit: &c.credit,
            promises: &c.promises,
            disputes: &c.disputes,
            contacts: &c.contacts,
            pending: &c.pending,
            issued: &c.issued,
            cursor: &self.cursor,
            derived: &self.derived,
            history: &self.history,
            status: &c.status,
            next_wake: self.next_wake,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Debtor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = Read::deserialize(d)?;
        Ok(Debtor::from_parts(
            r.id,
            r.profile,
            r.revoked,
            Obligations::from_vec(r.obligations),
            (r.cursor, r.derived, r.history),
            r.next_wake,
            Some(Box::new(Cold {
                payments: r.payments.into(),
                credit: r.credit,
                promises: r.promises.into(),
                disputes: r.disputes.into(),
                contacts: r.contacts.into(),
                pending: r.pending.into(),
                issued: r.issued.into(),
                status: r.status,
            })),
        ))
    }
}
