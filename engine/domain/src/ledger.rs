//! Money facts: obligations opened and corrected, payments and credit notes allocated oldest-due first, reversals,
//! payment plans and promises to pay. Balances change only here.

use chrono::NaiveDate;
use chrono_tz::Tz;
use compact_str::CompactString;
use rust_decimal::Decimal;

use crate::amount::Amount;
use crate::debtor::{Allocations, Debtor, Obligation, PaymentRecord, Promise, push_tight};
use crate::event::{Installment, ObligationOpened};
use crate::ids::Currency;
use crate::money::FxTable;
use crate::rejected::{Rejected, known, positive, positive_amount};
use crate::sym::Sym;
use crate::time::{Ts, local_midnight};

/// Recent payments kept for reversals; older ones can no longer be reversed through the engine.
pub const MAX_PAYMENT_RECORDS: usize = 4;
/// Settled obligations kept beyond those recent payments refer to.
const MAX_SETTLED_OBLIGATIONS: usize = 2;

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

/// A new obligation; credit the debtor holds in its currency pays it down at once.
pub(crate) fn open_obligation(
    d: &mut Debtor,
    o: &ObligationOpened,
    fx: &FxTable,
) -> Result<(), Rejected> {
    let amount = positive_amount(o.amount, "amount")?;
    known(fx, o.currency)?;
    if d.obligations.iter().any(|x| x.id == o.obligation_id) {
        return Ok(()); // redelivered
    }
    let from_credit = d
        .cold_if_any()
        .map_or(Decimal::ZERO, |c| c.credit.take(o.currency, o.amount));
    d.obligations.push(Obligation {
        id: o.obligation_id.clone(),
        product: o.product,
        currency: o.currency,
        amount,
        outstanding: Amount::of(o.amount - from_credit),
        due: o.due_date,
        restructured: false,
    });
    prune(d);
    Ok(())
}

/// Money received (a payment or a credit note): allocated to the targeted obligation first, then oldest due first;
/// the rest becomes credit. Returns whether it was new (a redelivered one was already applied).
pub(crate) fn receive(
    d: &mut Debtor,
    fx: &FxTable,
    id: &CompactString,
    (currency, amount): (Currency, Decimal),
    target: Option<&str>,
) -> Result<bool, Rejected> {
    // What it pays goes into obligations' balances: it has their bounds.
    positive_amount(amount, "amount")?;
    known(fx, currency)?;
    if d.cold().payments.iter().any(|p| p.id == *id) {
        return Ok(false);
    }
    allocate(d, id, currency, amount, target);
    Ok(true)
}

/// Allocates money to the targeted obligation first, then oldest due first; the rest becomes credit.
fn allocate(
    d: &mut Debtor,
    id: &CompactString,
    currency: Currency,
    amount: Decimal,
    target: Option<&str>,
) {
    let mut left = amount;
    let mut allocations = Allocations::new();
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
        let part = o.outstanding.get().min(left);
        o.outstanding = Amount::of(o.outstanding.get() - part);
        left -= part;
        allocations.push((o.id.clone(), part));
    }
    let cold = d.cold_mut();
    if left > Decimal::ZERO {
        cold.credit.add(currency, left);
    }
    if cold.payments.len() >= MAX_PAYMENT_RECORDS {
        cold.payments.remove(0);
    }
    push_tight(
        &mut cold.payments,
        PaymentRecord {
            id: id.clone(),
            currency,
            allocations,
            to_credit: left,
            reversed: false,
        },
    );
    if d.status().plan.is_some()
        && !d
            .obligations
            .iter()
            .any(|o| o.is_open() && o.product == "plan")
    {
        d.cold_mut().status.plan = None;
    }
    prune(d);
}

/// An obligation's amount or due date corrected by its source.
pub(crate) fn update_obligation(
    d: &mut Debtor,
    obligation_id: &CompactString,
    amount: Option<Decimal>,
    due_date: Option<NaiveDate>,
) -> Result<(), Rejected> {
    let amount = amount.map(|a| positive_amount(a, "amount")).transpose()?;
    let o = d
        .obligations
        .iter_mut()
        .find(|o| o.id == *obligation_id)
        .ok_or_else(|| Rejected::UnknownObligation(obligation_id.clone()))?;
    if let Some(a) = amount {
        let delta = a.get() - o.amount.get();
        o.amount = a;
        o.outstanding = Amount::of((o.outstanding.get() + delta).max(Decimal::ZERO));
    }
    if let Some(due) = due_date {
        o.due = due;
    }
    Ok(())
}

/// A promise to pay `amount` by local day `promised_by` (a redelivered one changes nothing).
pub(crate) fn take_promise(
    d: &mut Debtor,
    fx: &FxTable,
    promise_id: &CompactString,
    (currency, amount): (Currency, Decimal),
    promised_by: NaiveDate,
) -> Result<(), Rejected> {
    positive(amount, "amount")?;
    known(fx, currency)?;
    if !d.cold().promises.iter().any(|p| p.id == *promise_id) {
        let deadline = promise_deadline(promised_by, tz_of(d));
        push_tight(
            &mut d.cold_mut().promises,
            Promise {
                id: promise_id.clone(),
                currency,
                amount,
                paid: Decimal::ZERO,
                deadline,
            },
        );
    }
    Ok(())
}

/// A payment plan replaces the open obligations in its currency with its installments.
pub(crate) fn agree_plan(
    d: &mut Debtor,
    fx: &FxTable,
    plan_id: &CompactString,
    currency: Currency,
    installments: &[Installment],
) -> Result<(), Rejected> {
    known(fx, currency)?;
    if installments.is_empty() {
        return Err(Rejected::EmptyPlan(plan_id.clone()));
    }
    let amounts = installments
        .iter()
        .map(|i| positive_amount(i.amount, "installments.amount"))
        .collect::<Result<Vec<_>, _>>()?;
    for o in d
        .obligations
        .iter_mut()
        .filter(|o| o.is_open() && o.currency == currency)
    {
        o.restructured = true;
    }
    for (n, (i, amount)) in installments.iter().zip(amounts).enumerate() {
        d.obligations.push(Obligation {
            id: format_compact(plan_id, n + 1),
            product: Sym::new("plan"),
            currency,
            amount,
            outstanding: amount,
            due: i.due_date,
            restructured: false,
        });
    }
    d.cold_mut().status.plan = Some(plan_id.clone());
    prune(d);
    Ok(())
}

/// Counts money received toward open promises in its currency; returns the ids of those it kept.
pub(crate) fn credit_promises(
    d: &mut Debtor,
    currency: Currency,
    amount: Decimal,
    now: Ts,
) -> Vec<CompactString> {
    let mut kept = Vec::new();
    let Some(cold) = d.cold_if_any() else {
        return kept;
    };
    cold.promises.retain_mut(|p| {
        if p.currency != currency || now >= p.deadline {
            return true;
        }
        p.paid += amount;
        if p.paid >= p.amount {
            kept.push(p.id.clone());
            false
        } else {
            true
        }
    });
    let n = u8::try_from(kept.len()).unwrap_or(u8::MAX);
    d.history.promises_kept = d.history.promises_kept.saturating_add(n);
    kept
}

/// Undoes a payment's allocations; credit it left that was since used re-opens the newest paid obligation.
pub(crate) fn reverse(d: &mut Debtor, payment_id: &CompactString) -> Result<(), Rejected> {
    let idx = d
        .cold()
        .payments
        .iter()
        .position(|p| p.id == *payment_id && !p.reversed)
        .ok_or_else(|| Rejected::UnknownPayment(payment_id.clone()))?;
    let cold = d.cold_mut();
    let rec = cold.payments[idx].clone();
    cold.payments[idx].reversed = true;
    let from_credit = cold.credit.take(rec.currency, rec.to_credit);
    for (oid, part) in &rec.allocations {
        if let Some(o) = d.obligations.iter_mut().find(|o| o.id == *oid) {
            o.outstanding = Amount::of(o.outstanding.get() + *part);
        }
    }
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
        let room = o.amount.get() - o.outstanding.get();
        let part = room.min(shortfall);
        o.outstanding = Amount::of(o.outstanding.get() + part);
        shortfall -= part;
    }
    Ok(())
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
    let (obligations, cold) = d.obligations_mut_with_cold();
    let payments = cold.payments.as_slice();
    obligations.retain(|o| {
        if excess > 0 && !o.is_open() && !referenced(&o.id, payments) {
            excess -= 1;
            false
        } else {
            true
        }
    });
}
