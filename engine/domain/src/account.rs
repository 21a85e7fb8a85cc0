//! The facts an event states about the debtor rather than their money: the profile (master data), consent per
//! channel, status (charge-off, agency placement), disputes, and what a contact attempt achieved.

use compact_str::CompactString;
use rust_decimal::Decimal;

use crate::debtor::{ContactMark, Debtor, MarkKind, push_tight};
use crate::event::{Outcome, Profile};
use crate::ids::Channel;
use crate::money::FxTable;
use crate::rejected::{Rejected, known};
use crate::time::Ts;

/// Replaces the debtor's master data, after checking it.
pub(crate) fn upsert_profile(d: &mut Debtor, p: &Profile, fx: &FxTable) -> Result<(), Rejected> {
    if p.risk_score > 1000 {
        return Err(Rejected::Invalid {
            field: "risk_score",
            reason: "must be 0..=1000",
        });
    }
    if p.credit_limit.get() < Decimal::ZERO {
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
    d.profile = Some(p.clone());
    Ok(())
}

/// Consent to `channel` given or withdrawn; a withdrawal is kept even before the profile arrives.
pub(crate) fn change_consent(d: &mut Debtor, channel: Channel, granted: bool) {
    let profile = d.profile.as_mut();
    if granted {
        d.revoked.remove(channel);
        if let Some(p) = profile {
            p.consent.insert(channel);
        }
    } else {
        d.revoked.insert(channel);
        if let Some(p) = profile {
            p.consent.remove(channel);
        }
    }
}

/// A dispute opened; returns whether it is new (a redelivery changes nothing).
pub(crate) fn open_dispute(d: &mut Debtor, dispute_id: &CompactString) -> bool {
    if d.cold().disputes.contains(dispute_id) {
        return false;
    }
    push_tight(&mut d.cold_mut().disputes, dispute_id.clone());
    true
}

/// The agency `agency_id` gave the account back (a recall naming another agency changes nothing).
pub(crate) fn recall_agency(d: &mut Debtor, agency_id: &CompactString) {
    if d.status().agency.as_ref() == Some(agency_id) {
        d.cold_mut().status.agency = None;
    }
}

/// What a contact attempt achieved: a conversation, a reply, or a channel the debtor closed.
pub(crate) fn contact_outcome(d: &mut Debtor, channel: Channel, outcome: Outcome, now: Ts) {
    match outcome {
        Outcome::Replied => {
            let status = &mut d.cold_mut().status;
            status.pending_replies = status.pending_replies.saturating_add(1);
        }
        Outcome::RightPartyContact => {
            push_tight(
                &mut d.cold_mut().contacts,
                ContactMark {
                    at: now,
                    channel,
                    kind: MarkKind::Conversation,
                },
            );
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
