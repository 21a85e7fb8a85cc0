//! Applying an event's facts to a debtor's state: the bookkeeping half of a decision. Money facts live in
//! [`crate::ledger`], facts about the debtor in [`crate::account`]; this module routes each event to them and
//! reports what the decision half reacts to.
//!
//! Every function validates before it mutates, so a rejected event leaves the state as it was.

use compact_str::CompactString;

use crate::account;
use crate::debtor::Debtor;
use crate::event::{Envelope, EventKind};
use crate::ledger;
use crate::money::FxTable;
use crate::rejected::Rejected;
use crate::time::Ts;

/// What applying an event changed that the decision half reacts to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Money came in (payment or credit note).
    pub paid: bool,
    /// A dispute was opened.
    pub dispute_opened: bool,
    /// Promises kept by this event, by id.
    pub promises_kept: Vec<CompactString>,
    /// A contact outcome about an action this debtor was not sent (among the ids it remembers): the id and channel.
    pub unmatched_outcome: Option<(CompactString, crate::ids::Channel)>,
}

/// Applies `ev` to `d`. `now` is the engine's current instant (never earlier than the event's time).
pub fn apply(d: &mut Debtor, ev: &Envelope, fx: &FxTable, now: Ts) -> Result<Effects, Rejected> {
    let mut effects = Effects::default();
    match &ev.kind {
        EventKind::DebtorUpserted(p) => account::upsert_profile(d, p, fx)?,
        EventKind::ConsentChanged { channel, granted } => {
            account::change_consent(d, *channel, *granted);
        }
        EventKind::ObligationOpened(o) => ledger::open_obligation(d, o, fx)?,
        EventKind::ObligationUpdated {
            obligation_id,
            amount,
            due_date,
        } => ledger::update_obligation(d, obligation_id, *amount, *due_date)?,
        EventKind::PaymentReceived {
            payment_id,
            currency,
            amount,
            obligation_id,
        } => {
            let target = obligation_id.as_deref();
            if ledger::receive(d, fx, payment_id, (*currency, *amount), target)? {
                effects.paid = true;
                effects.promises_kept = ledger::credit_promises(d, *currency, *amount, now);
            }
        }
        EventKind::CreditNote {
            note_id,
            currency,
            amount,
            obligation_id,
        } => {
            let target = obligation_id.as_deref();
            effects.paid = ledger::receive(d, fx, note_id, (*currency, *amount), target)?;
        }
        EventKind::PaymentReversed { payment_id, .. } => ledger::reverse(d, payment_id)?,
        EventKind::PromiseToPay {
            promise_id,
            currency,
            amount,
            promised_by,
            ..
        } => ledger::take_promise(d, fx, promise_id, (*currency, *amount), *promised_by)?,
        EventKind::PaymentPlanAgreed {
            plan_id,
            currency,
            installments,
        } => ledger::agree_plan(d, fx, plan_id, *currency, installments)?,
        EventKind::DisputeOpened { dispute_id, .. } => {
            effects.dispute_opened = account::open_dispute(d, dispute_id);
        }
        EventKind::DisputeResolved { dispute_id, .. } => {
            if let Some(cold) = d.cold_if_any() {
                cold.disputes.retain(|x| x != dispute_id);
            }
        }
        EventKind::ContactOutcome {
            action_id,
            channel,
            outcome,
        } => {
            // Accepted either way (manual calls are real); an id this debtor was not sent is noted for the trail.
            let fp = xxhash_rust::xxh3::xxh3_64(action_id.as_bytes());
            if !d.cold().issued.contains(&fp) {
                effects.unmatched_outcome = Some((action_id.clone(), *channel));
            }
            account::contact_outcome(d, *channel, *outcome, now);
        }
        EventKind::ChargedOff { .. } => d.cold_mut().status.charged_off = true,
        EventKind::AgencyPlaced { agency_id } => {
            d.cold_mut().status.agency = Some(agency_id.clone())
        }
        EventKind::AgencyRecalled { agency_id } => account::recall_agency(d, agency_id),
    }
    Ok(effects)
}
