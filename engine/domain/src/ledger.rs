//! Applying an event's facts to a debtor's state: the bookkeeping half of a decision.
//!
//! Every function here validates before it mutates, so a rejected event leaves the state as it was.

use chrono::NaiveDate;
use chrono_tz::Tz;
use compact_str::CompactString;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::debtor::{ContactMark, Debtor, MarkKind, Obligation, PaymentRecord, Promise};
use crate::event::{Envelope, EventKind, ObligationOpened, Outcome};
use crate::ids::{Channel, Currency};
use crate::money::FxTable;
use crate::time::{Ts, local_midnight};

/// Recent payments kept for reversals; older ones can no longer be reversed through the engine.
pub const MAX_PAYMENT_RECORDS: usize = 4;
/// Settled obligations kept beyond those recent payments refer to.
const MAX_SETTLED_OBLIGATIONS: usize = 2;

/// Why an event was refused. The record goes to the dead-letter topic with this reason; state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Rejected {
    /// No FX rate is configured for the currency, so the debt cannot be valued.
    #[error("currency {0} has no configured FX rate")]
    UnknownCurrency(Currency),
    /// An amount that must be positive was zero or negative.
    #[error("field `{0}` must be positive")]
    NonPositive(&'static str),
    /// A reversal named a payment the engine does not hold.
    #[error("payment `{0}` is unknown or too old to reverse")]
    UnknownPayment(CompactString),
    /// An update named an obligation the engine does not hold.
    #[error("obligation `{0}` is unknown")]
    UnknownObligation(CompactString),
    /// A payment plan had no installments.
    #[error("payment plan `{0}` has no installments")]
    EmptyPlan(CompactString),
    /// A field held a value outside its domain.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// What applying an event changed that the decision half reacts to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Money came in (payment or credit note).
    pub paid: bool,
    /// A dispute was opened.
    pub dispute_opened: bool,
    /// Promises kept by this event.
    pub promises_kept: u8,
}

fn positive(amount: Decimal, field: &'static str) -> Result<(), Rejected> {
    if amount > Decimal::ZERO {
        Ok(())
    } else {
        Err(Rejected::NonPositive(field))
    }
}

fn known(fx: &FxTable, c: Currency) -> Result<(), Rejected> {
    if fx.knows(c) {
        Ok(())
    } else {
        Err(Rejected::UnknownCurrency(c))
    }
}

/// Applies `ev` to `d`. `now` is the engine's current instant (never earlier than the event's time).
pub fn apply(d: &mut Debtor, ev: &Envelope, fx: &FxTable, now: Ts) -> Result<Effects, Rejected> {
    let mut fx_effects = Effects::default();
    match &ev.kind {
        EventKind::DebtorUpserted(p) => {
            if p.risk_score > 1000 {
                return Err(Rejected::Invalid {
                    field: "risk_score",
                    reason: "must be 0..=1000",
                });
            }
            if p.credit_limit < Decimal::ZERO {
                return Err(Rejected::Invalid {
                    field: "credit_limit",
                    reason: "must not be negative",
                });
            }
            known(fx, p.credit_currency)?;
            if p.country.len() != 2 {
                return Err(Rejected::Invalid {
                    field: "country",
                    reason: "must be ISO 3166-1 alpha-2",
                });
            }
            d.profile = Some(Box::new(p.clone()));
        }
        EventKind::ConsentChanged { channel, granted } => {
            let profile = d.profile.as_mut();
            if *granted {
                d.revoked.remove(*channel);
                if let Some(p) = profile {
                    p.consent.insert(*channel);
                }
            } else {
                d.revoked.insert(*channel);
                if let Some(p) = profile {
                    p.consent.remove(*channel);
                }
            }
        }
        EventKind::ObligationOpened(o) => open_obligation(d, o, fx)?,
        EventKind::ObligationUpdated {
            obligation_id,
            amount,
            due_date,
        } => {
            if let Some(a) = amount {
                positive(*a, "amount")?;
            }
            let o = d
                .obligations
                .iter_mut()
                .find(|o| o.id == *obligation_id)
                .ok_or_else(|| Rejected::UnknownObligation(obligation_id.clone()))?;
            if let Some(a) = amount {
                let delta = *a - o.amount;
                o.amount = *a;
                o.outstanding = (o.outstanding + delta).max(Decimal::ZERO);
            }
            if let Some(due) = due_date {
                o.due = *due;
            }
        }
        EventKind::PaymentReceived {
            payment_id,
            currency,
            amount,
            obligation_id,
        } => {
            positive(*amount, "amount")?;
            known(fx, *currency)?;
            if d.payments.iter().any(|p| p.id == *payment_id) {
                return Ok(fx_effects); // a redelivered payment: already applied
            }
            receive(d, payment_id, *currency, *amount, obligation_id.as_deref());
            fx_effects.paid = true;
            fx_effects.promises_kept = credit_promises(d, *currency, *amount, now);
        }
        EventKind::CreditNote {
            note_id,
            currency,
            amount,
            obligation_id,
        } => {
            positive(*amount, "amount")?;
            known(fx, *currency)?;
            if d.payments.iter().any(|p| p.id == *note_id) {
                return Ok(fx_effects);
            }
            receive(d, note_id, *currency, *amount, obligation_id.as_deref());
            fx_effects.paid = true;
        }
        EventKind::PaymentReversed { payment_id, .. } => reverse(d, payment_id)?,
        EventKind::PromiseToPay {
            promise_id,
            currency,
            amount,
            promised_by,
            ..
        } => {
            positive(*amount, "amount")?;
            known(fx, *currency)?;
            if !d.promises.iter().any(|p| p.id == *promise_id) {
                let deadline = promise_deadline(*promised_by, tz_of(d));
                d.promises.push(Promise {
                    id: promise_id.clone(),
                    currency: *currency,
                    amount: *amount,
                    paid: Decimal::ZERO,
                    deadline,
                });
            }
        }
        EventKind::PaymentPlanAgreed {
            plan_id,
            currency,
            installments,
        } => {
            known(fx, *currency)?;
            if installments.is_empty() {
                return Err(Rejected::EmptyPlan(plan_id.clone()));
            }
            for i in installments {
                positive(i.amount, "installments.amount")?;
            }
            for o in d
                .obligations
                .iter_mut()
                .filter(|o| o.is_open() && o.currency == *currency)
            {
                o.restructured = true;
            }
            for (n, i) in installments.iter().enumerate() {
                d.obligations.push(Obligation {
                    id: format_compact(plan_id, n + 1),
                    product: CompactString::const_new("plan"),
                    currency: *currency,
                    amount: i.amount,
                    outstanding: i.amount,
                    due: i.due_date,
                    restructured: false,
                });
            }
            d.status.plan = Some(plan_id.clone());
            prune(d);
        }
        EventKind::DisputeOpened { dispute_id, .. } => {
            if !d.disputes.contains(dispute_id) {
                d.disputes.push(dispute_id.clone());
                fx_effects.dispute_opened = true;
            }
        }
        EventKind::DisputeResolved { dispute_id, .. } => d.disputes.retain(|x| x != dispute_id),
        EventKind::ContactOutcome {
            channel, outcome, ..
        } => contact_outcome(d, *channel, *outcome, now),
        EventKind::ChargedOff { .. } => d.status.charged_off = true,
        EventKind::AgencyPlaced { agency_id } => d.status.agency = Some(agency_id.clone()),
        EventKind::AgencyRecalled { agency_id } => {
            if d.status.agency.as_ref() == Some(agency_id) {
                d.status.agency = None;
            }
        }
    }
    Ok(fx_effects)
}

fn tz_of(d: &Debtor) -> Tz {
    d.profile.as_ref().map(|p| p.time_zone).unwrap_or(Tz::UTC)
}

/// A promise made for local day `by` is broken from the first instant of the next local day.
pub fn promise_deadline(by: NaiveDate, tz: Tz) -> Ts {
    local_midnight(by.succ_opt().unwrap_or(by), tz)
}

fn format_compact(prefix: &str, n: usize) -> CompactString {
    let mut s = CompactString::from(prefix);
    s.push('/');
    s.push_str(&n.to_string());
    s
}

fn open_obligation(d: &mut Debtor, o: &ObligationOpened, fx: &FxTable) -> Result<(), Rejected> {
    positive(o.amount, "amount")?;
    known(fx, o.currency)?;
    if d.obligations.iter().any(|x| x.id == o.obligation_id) {
        return Ok(()); // redelivered
    }
    let from_credit = d.credit.take(o.currency, o.amount);
    d.obligations.push(Obligation {
        id: o.obligation_id.clone(),
        product: o.product.clone(),
        currency: o.currency,
        amount: o.amount,
        outstanding: o.amount - from_credit,
        due: o.due_date,
        restructured: false,
    });
    prune(d);
    Ok(())
}

/// Allocates money to the targeted obligation first, then oldest due first; the rest becomes credit.
fn receive(
    d: &mut Debtor,
    id: &CompactString,
    currency: Currency,
    amount: Decimal,
    target: Option<&str>,
) {
    let mut left = amount;
    let mut allocations = Vec::new();
    let mut order: Vec<usize> = (0..d.obligations.len())
        .filter(|&i| d.obligations[i].is_open() && d.obligations[i].currency == currency)
        .collect();
    order.sort_by(|&a, &b| {
        let (oa, ob) = (&d.obligations[a], &d.obligations[b]);
        let ta = target.is_some_and(|t| oa.id == t);
        let tb = target.is_some_and(|t| ob.id == t);
        tb.cmp(&ta)
            .then(oa.due.cmp(&ob.due))
            .then(oa.id.cmp(&ob.id))
    });
    for i in order {
        if left.is_zero() {
            break;
        }
        let o = &mut d.obligations[i];
        let part = o.outstanding.min(left);
        o.outstanding -= part;
        left -= part;
        allocations.push((o.id.clone(), part));
    }
    if left > Decimal::ZERO {
        d.credit.add(currency, left);
    }
    d.payments.push(PaymentRecord {
        id: id.clone(),
        currency,
        allocations,
        to_credit: left,
        reversed: false,
    });
    if d.payments.len() > MAX_PAYMENT_RECORDS {
        d.payments.remove(0);
    }
    if d.status.plan.is_some()
        && !d
            .obligations
            .iter()
            .any(|o| o.is_open() && o.product == "plan")
    {
        d.status.plan = None;
    }
    prune(d);
}

fn credit_promises(d: &mut Debtor, currency: Currency, amount: Decimal, now: Ts) -> u8 {
    let mut kept = 0u8;
    d.promises.retain_mut(|p| {
        if p.currency != currency || now >= p.deadline {
            return true;
        }
        p.paid += amount;
        if p.paid >= p.amount {
            kept += 1;
            false
        } else {
            true
        }
    });
    d.history.promises_kept = d.history.promises_kept.saturating_add(kept);
    kept
}

/// Undoes a payment's allocations; credit it left that was since used re-opens the newest paid obligation.
fn reverse(d: &mut Debtor, payment_id: &CompactString) -> Result<(), Rejected> {
    let idx = d
        .payments
        .iter()
        .position(|p| p.id == *payment_id && !p.reversed)
        .ok_or_else(|| Rejected::UnknownPayment(payment_id.clone()))?;
    let rec = d.payments[idx].clone();
    d.payments[idx].reversed = true;
    for (oid, part) in &rec.allocations {
        if let Some(o) = d.obligations.iter_mut().find(|o| o.id == *oid) {
            o.outstanding += *part;
        }
    }
    let from_credit = d.credit.take(rec.currency, rec.to_credit);
    let mut shortfall = rec.to_credit - from_credit;
    // The credit was already consumed by a later obligation: re-open the most recently due paid ones.
    let mut idxs: Vec<usize> = (0..d.obligations.len())
        .filter(|&i| d.obligations[i].currency == rec.currency && !d.obligations[i].restructured)
        .collect();
    idxs.sort_by(|&a, &b| d.obligations[b].due.cmp(&d.obligations[a].due));
    for i in idxs {
        if shortfall.is_zero() {
            break;
        }
        let o = &mut d.obligations[i];
        let room = o.amount - o.outstanding;
        let part = room.min(shortfall);
        o.outstanding += part;
        shortfall -= part;
    }
    Ok(())
}

fn contact_outcome(d: &mut Debtor, channel: Channel, outcome: Outcome, now: Ts) {
    match outcome {
        Outcome::Replied => d.status.pending_replies = d.status.pending_replies.saturating_add(1),
        Outcome::RightPartyContact => {
            d.contacts.push(ContactMark {
                at: now,
                channel,
                kind: MarkKind::Conversation,
            });
        }
        Outcome::OptOut | Outcome::WrongNumber => {
            d.revoked.insert(channel);
            if let Some(p) = d.profile.as_mut() {
                p.consent.remove(channel);
            }
        }
        _ => {}
    }
    if matches!(
        outcome,
        Outcome::Read | Outcome::Replied | Outcome::Answered | Outcome::RightPartyContact
    ) {
        d.history.contacted_in_episode = true;
    }
}

/// Drops settled obligations no kept payment refers to, keeping a few for context.
fn prune(d: &mut Debtor) {
    let settled = d.obligations.iter().filter(|o| !o.is_open()).count();
    if settled <= MAX_SETTLED_OBLIGATIONS {
        return;
    }
    let mut excess = settled - MAX_SETTLED_OBLIGATIONS;
    let referenced = |id: &CompactString, payments: &[PaymentRecord]| {
        payments
            .iter()
            .any(|p| !p.reversed && p.allocations.iter().any(|(o, _)| o == id))
    };
    let payments = std::mem::take(&mut d.payments);
    d.obligations.retain(|o| {
        if excess > 0 && !o.is_open() && !referenced(&o.id, &payments) {
            excess -= 1;
            false
        } else {
            true
        }
    });
    d.payments = payments;
}
