//! Input events: what core banking, ERPs and channel gateways tell the engine.
//!
//! These are the decoded form of the Avro contract in `schemas/avro`; the schemas crate maps one onto the other.

use chrono::NaiveDate;
use chrono_tz::Tz;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::ids::{Channel, ChannelSet, Currency, DebtorId};
use crate::sym::Sym;
use crate::time::Ts;

/// One event about one debtor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Producer-assigned unique id; part of the deterministic id of actions it causes.
    pub event_id: CompactString,
    /// The debtor the event is about (also the Kafka key).
    pub debtor_id: DebtorId,
    /// When it happened at the source.
    pub occurred_at: Ts,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of input event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Debtor master data created or changed.
    DebtorUpserted(Profile),
    /// Consent for one channel granted or withdrawn.
    ConsentChanged {
        /// The channel.
        channel: Channel,
        /// Granted (true) or withdrawn (false).
        granted: bool,
    },
    /// A new invoice, installment or statement.
    ObligationOpened(ObligationOpened),
    /// An obligation's amount or due date changed at the source.
    ObligationUpdated {
        /// The obligation.
        obligation_id: CompactString,
        /// New original amount, if it changed.
        amount: Option<Decimal>,
        /// New due date, if it changed.
        due_date: Option<NaiveDate>,
    },
    /// Money received.
    PaymentReceived {
        /// Unique payment id (needed to reverse it).
        payment_id: CompactString,
        /// Currency of the payment.
        currency: Currency,
        /// Amount, positive.
        amount: Decimal,
        /// Obligation the payer targeted; otherwise allocated oldest due first.
        obligation_id: Option<CompactString>,
    },
    /// A payment bounced or was charged back.
    PaymentReversed {
        /// The payment being reversed.
        payment_id: CompactString,
        /// Why (bounced, chargeback...).
        reason: CompactString,
    },
    /// A credit note or adjustment netted against the debt.
    CreditNote {
        /// Unique id.
        note_id: CompactString,
        /// Currency.
        currency: Currency,
        /// Amount, positive (reduces the debt).
        amount: Decimal,
        /// Obligation it applies to; otherwise oldest due first.
        obligation_id: Option<CompactString>,
    },
    /// The debtor promised to pay.
    PromiseToPay {
        /// Unique id.
        promise_id: CompactString,
        /// Currency.
        currency: Currency,
        /// Promised amount.
        amount: Decimal,
        /// Last local calendar day on which the payment keeps the promise.
        promised_by: NaiveDate,
        /// Who took it (agent, channel, portal).
        taken_by: CompactString,
    },
    /// A payment plan or restructuring replacing the overdue debt with new installments.
    PaymentPlanAgreed {
        /// Unique id.
        plan_id: CompactString,
        /// Currency of all installments.
        currency: Currency,
        /// The new schedule.
        installments: Vec<Installment>,
    },
    /// The debtor disputed (a "reclamo"): collection contact holds while open.
    DisputeOpened {
        /// Unique id.
        dispute_id: CompactString,
        /// The disputed obligation, if one.
        obligation_id: Option<CompactString>,
        /// Free-text category.
        reason: CompactString,
    },
    /// A dispute closed.
    DisputeResolved {
        /// The dispute.
        dispute_id: CompactString,
        /// How it ended.
        outcome: DisputeOutcome,
    },
    /// What a channel gateway reports about an action.
    ContactOutcome {
        /// The action this outcome is about.
        action_id: CompactString,
        /// The channel.
        channel: Channel,
        /// The outcome.
        outcome: Outcome,
    },
    /// The debt was charged off ("cartera castigada").
    ChargedOff {
        /// Why.
        reason: CompactString,
    },
    /// The debtor was placed with an external agency.
    AgencyPlaced {
        /// The agency.
        agency_id: CompactString,
    },
    /// The debtor was recalled from the agency.
    AgencyRecalled {
        /// The agency.
        agency_id: CompactString,
    },
}

impl EventKind {
    /// A short stable name for the kind (metrics labels, audit records).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::DebtorUpserted(_) => "debtor_upserted",
            EventKind::ConsentChanged { .. } => "consent_changed",
            EventKind::ObligationOpened(_) => "obligation_opened",
            EventKind::ObligationUpdated { .. } => "obligation_updated",
            EventKind::PaymentReceived { .. } => "payment_received",
            EventKind::PaymentReversed { .. } => "payment_reversed",
            EventKind::CreditNote { .. } => "credit_note",
            EventKind::PromiseToPay { .. } => "promise_to_pay",
            EventKind::PaymentPlanAgreed { .. } => "payment_plan_agreed",
            EventKind::DisputeOpened { .. } => "dispute_opened",
            EventKind::DisputeResolved { .. } => "dispute_resolved",
            EventKind::ContactOutcome { .. } => "contact_outcome",
            EventKind::ChargedOff { .. } => "charged_off",
            EventKind::AgencyPlaced { .. } => "agency_placed",
            EventKind::AgencyRecalled { .. } => "agency_recalled",
        }
    }
}

/// Debtor master data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// ISO 3166-1 alpha-2 country; selects the jurisdiction policy.
    pub country: Sym,
    /// State or province (ISO 3166-2 suffix, e.g. `MA`), selecting a policy overlay when one exists.
    pub region: Option<Sym>,
    /// The debtor's IANA time zone; contact windows and days past due follow it.
    pub time_zone: Tz,
    /// Zone or branch.
    pub zone: Sym,
    /// Customer type.
    pub customer_type: CustomerType,
    /// Credit limit, in `credit_currency`.
    pub credit_limit: Amount,
    /// Currency of the credit limit.
    pub credit_currency: Currency,
    /// Risk score, 0 (best) to 1000 (worst).
    pub risk_score: u16,
    /// The channel the debtor prefers, if known.
    pub preferred_channel: Option<Channel>,
    /// Channels with explicit consent.
    pub consent: ChannelSet,
    /// Legal and relationship flags.
    pub flags: DebtorFlags,
}

/// Customer type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerType {
    /// A person.
    Individual,
    /// A small business.
    SmallBusiness,
    /// A corporate customer.
    Corporate,
}

/// Legal and relationship flags carried by the debtor's master data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtorFlags {
    /// Reported deceased.
    pub deceased: bool,
    /// In bankruptcy or insolvency.
    pub bankruptcy: bool,
    /// Asked in writing to cease contact.
    pub cease_and_desist: bool,
    /// Served with a collection lawsuit.
    pub lawsuit_served: bool,
    /// Represented by an attorney.
    pub attorney: bool,
    /// A VIP relationship.
    pub vip: bool,
}

/// A new obligation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObligationOpened {
    /// Unique id.
    pub obligation_id: CompactString,
    /// Product (`loan`, `card`, `invoice`...).
    pub product: Sym,
    /// Currency.
    pub currency: Currency,
    /// Amount due, positive.
    pub amount: Decimal,
    /// Due date in the debtor's local calendar.
    pub due_date: NaiveDate,
}

/// One installment of a payment plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Installment {
    /// Due date.
    pub due_date: NaiveDate,
    /// Amount.
    pub amount: Decimal,
}

/// How a dispute ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    /// The customer was right; an adjustment usually follows as a credit note.
    Upheld,
    /// The debt stands.
    Rejected,
    /// The customer withdrew it.
    Withdrawn,
}

/// What a channel gateway reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered to the device or mailbox.
    Delivered,
    /// Could not be delivered.
    Failed,
    /// Read by the recipient.
    Read,
    /// The recipient replied (awaits an answer from the collector).
    Replied,
    /// A call was answered (by anyone).
    Answered,
    /// The debtor in person was reached (right-party contact, a conversation).
    RightPartyContact,
    /// A call was not answered.
    NoAnswer,
    /// The number or address does not belong to the debtor.
    WrongNumber,
    /// The debtor asked not to be contacted on this channel again.
    OptOut,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 9] = [
        Outcome::Delivered,
        Outcome::Failed,
        Outcome::Read,
        Outcome::Replied,
        Outcome::Answered,
        Outcome::RightPartyContact,
        Outcome::NoAnswer,
        Outcome::WrongNumber,
        Outcome::OptOut,
    ];

    /// The outcome's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Read => "read",
            Outcome::Replied => "replied",
            Outcome::Answered => "answered",
            Outcome::RightPartyContact => "right_party_contact",
            Outcome::NoAnswer => "no_answer",
            Outcome::WrongNumber => "wrong_number",
            Outcome::OptOut => "opt_out",
        }
    }
}
