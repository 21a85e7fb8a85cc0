//! The per-debtor state a partition worker owns.

use chrono::NaiveDate;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::action::Action;
use crate::amount::Amount;
use crate::event::Profile;
use crate::ids::{Channel, ChannelSet, Currency, DebtorId};
use crate::money::{Balances, CentAmount};
use crate::stage::Stage;
use crate::sym::Sym;
use crate::time::Ts;

/// Everything the engine knows about one debtor.
///
/// Laid out for a portfolio of millions held in memory: what nearly every event reads (profile, obligations,
/// strategy cursor, derived classification, counters, next wake) sits inline in one record, with the first obligation
/// in place; what only a debtor in collection or with a payment history has (payments kept for reversals, credit,
/// promises, disputes, contact marks, deferred actions, issued fingerprints, status) sits in [`Cold`], allocated the
/// first time one of them is set and dropped again once all are empty ([`Debtor::release_cold`]).
///
/// Serialized (JSON for the API, the state store's format 2) as it always was: one record with every field, in the
/// order of `crate::debtor_form`.
#[derive(Clone, Debug)]
pub struct Debtor {
    /// The debtor's id.
    pub id: DebtorId,
    /// Master data; `None` until the first `DebtorUpserted` (no contact is allowed without it).
    pub profile: Option<Profile>,
    /// Channels the debtor opted out of (outlives master-data updates; only an explicit grant clears it).
    pub revoked: ChannelSet,
    /// Obligations: open ones and the few settled ones recent payments still refer to (the first one inline).
    pub obligations: Obligations,
    /// Where the debtor is in its strategy.
    pub cursor: StrategyCursor,
    /// Derived classification, recomputed on every event and timer.
    pub derived: Derived,
    /// Counters describing the debtor's payment behaviour.
    pub history: History,
    /// The next instant something is due for this debtor (bucket change, promise deadline, step, release).
    pub next_wake: Ts,
    /// What most debtors never have; `None` while all of it is empty.
    cold: Option<Box<Cold>>,
}

/// A debtor's obligations: one inline (most debtors have one), more on the heap.
pub type Obligations = smallvec::SmallVec<[Obligation; 1]>;

/// What one payment paid, by obligation id: one inline (most payments settle one obligation).
pub type Allocations = smallvec::SmallVec<[(CompactString, Decimal); 1]>;

/// Appends to one of a debtor's short vectors, growing it by half its length instead of doubling (from one slot,
/// not four): a portfolio holds millions of them, each bounded or pruned, so spare capacity is most of their cost.
pub fn push_tight<T>(v: &mut ThinVec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 2).max(1));
    }
    v.push(x);
}

/// The parts of a debtor's state that most debtors never have, kept apart so that a debtor without them costs one
/// pointer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cold {
    /// Recent payments and credit notes, kept so a reversal can undo exactly what they did.
    pub payments: ThinVec<PaymentRecord>,
    /// Money received beyond the debt, per currency, applied to the next obligation.
    pub credit: Balances,
    /// Open promises to pay.
    pub promises: ThinVec<Promise>,
    /// Ids of open disputes.
    pub disputes: ThinVec<CompactString>,
    /// Recent contact attempts and conversations, for frequency caps (pruned past the longest cap window).
    pub contacts: ThinVec<ContactMark>,
    /// Actions deferred by the compliance guard, waiting for their release instant.
    pub pending: ThinVec<PendingAction>,
    /// Fingerprints (64-bit hashes) of the last action ids sent or deferred: a deterministic id is never issued twice,
    /// even when a reversal or a segment change brings the debtor back to a step already taken.
    pub issued: ThinVec<u64>,
    /// Charged off, agency placement, payment plan, replies awaiting an answer.
    pub status: Status,
}

impl Cold {
    /// Nothing: what a debtor without a cold part reads.
    pub const EMPTY: Cold = Cold {
        payments: ThinVec::new(),
        credit: Balances::EMPTY,
        promises: ThinVec::new(),
        disputes: ThinVec::new(),
        contacts: ThinVec::new(),
        pending: ThinVec::new(),
        issued: ThinVec::new(),
        status: Status {
            charged_off: false,
            agency: None,
            plan: None,
            pending_replies: 0,
        },
    };

    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.payments.is_empty()
            && self.credit.is_empty()
            && self.promises.is_empty()
            && self.disputes.is_empty()
            && self.contacts.is_empty()
            && self.pending.is_empty()
            && self.issued.is_empty()
            && self.status == Status::default()
    }

    /// Gives back spare room: a vector holding more than half again its length plus one (left by pruning, a
    /// release, or a collect that grew it the default way) shrinks to its length. What [`push_tight`] leaves is
    /// within that bound, so a vector is not shrunk and regrown by turns; when nothing is spare this is a few
    /// comparisons.
    fn trim(&mut self) {
        fn tight<T>(v: &mut ThinVec<T>) {
            if v.capacity() > v.len() + v.len() / 2 + 1 {
                v.shrink_to_fit();
            }
        }
        tight(&mut self.payments);
        tight(&mut self.promises);
        tight(&mut self.disputes);
        tight(&mut self.contacts);
        tight(&mut self.pending);
        tight(&mut self.issued);
    }
}

static EMPTY_COLD: Cold = Cold::EMPTY;

thread_local! {
    /// Whether [`Debtor::cold_mut`] or [`Debtor::cold_if_any`] ran on this thread since the last
    /// [`Debtor::release_cold`]. Per thread rather than per debtor: a flag in the debtor would cost eight bytes
    /// each (the record has no spare byte), and the engine releases the debtor it just decided on, on the thread
    /// that decided. It only ever skips giving back spare room, never changes what a debtor holds.
    static COLD_HANDED_OUT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Equal when every field is, an absent cold part being equal to an empty one.
impl PartialEq for Debtor {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.profile == other.profile
            && self.revoked == other.revoked
            && self.obligations == other.obligations
            && self.cursor == other.cursor
            && self.derived == other.derived
            && self.history == other.history
            && self.next_wake == other.next_wake
            && self.cold() == other.cold()
    }
}

impl Debtor {
    /// A debtor the engine has not seen before.
    pub fn new(id: DebtorId) -> Self {
        Self {
            id,
            profile: None,
            revoked: ChannelSet::EMPTY,
            obligations: Obligations::new(),
            cursor: StrategyCursor::default(),
            derived: Derived::default(),
            history: History::default(),
            next_wake: Ts::MAX,
            cold: None,
        }
    }

    /// A debtor from every part of its state, as a reader of stored state has them (an empty cold part is dropped).
    #[allow(clippy::too_many_arguments)] // one argument per part of the state, each named by its type
    #[inline]
    pub fn from_parts(
        id: DebtorId,
        profile: Option<Profile>,
        revoked: ChannelSet,
        obligations: Obligations,
        (cursor, derived, history): (StrategyCursor, Derived, History),
        next_wake: Ts,
        cold: Option<Box<Cold>>,
    ) -> Self {
        Self {
            id,
            profile,
            revoked,
            obligations,
            cursor,
            derived,
            history,
            next_wake,
            cold: cold.filter(|c| !c.is_empty()),
        }
    }

    /// The debtor's cold part (empty when it has none).
    pub fn cold(&self) -> &Cold {
        self.cold.as_deref().unwrap_or(&EMPTY_COLD)
    }

    /// The debtor's cold part, to change it (allocated if it had none).
    pub fn cold_mut(&mut self) -> &mut Cold {
        COLD_HANDED_OUT.set(true);
        self.cold.get_or_insert_with(Box::default)
    }

    /// The debtor's cold part if it has one, to change or prune it without allocating one.
    pub fn cold_if_any(&mut self) -> Option<&mut Cold> {
        COLD_HANDED_OUT.set(true);
        self.cold.as_deref_mut()
    }

    /// Reads a word from each cache line of the record an evaluation reads (obligations, strategy cursor, next wake
    /// and cold pointer, id, derived figures, profile, history) and returns them folded together, for a caller that
    /// loads several debtors side by side before deciding on them, so that their memory reads overlap instead of
    /// each waiting for the one before (a prefetch in safe code). The value means nothing.
    pub fn touch(&self) -> u64 {
        (self.obligations.len() as u64)
            ^ u64::from(self.cursor.strategy)
            ^ (self.next_wake.0 as u64)
            ^ (self.id.len() as u64)
            ^ u64::from(self.derived.dpd)
            ^ self.profile.as_ref().map_or(0, |p| u64::from(p.risk_score))
            ^ u64::from(self.history.episodes)
    }

    /// Like [`Debtor::touch`], one level further: the cold part's vectors, read through their heap headers (each a
    /// separate allocation). Zero for a debtor without a cold part; call it after `touch` on the same debtors, when
    /// their records are already on their way.
    pub fn touch_cold(&self) -> u64 {
        self.cold.as_deref().map_or(0, |c| {
            (c.payments.len()
                ^ c.promises.len()
                ^ c.contacts.len()
                ^ c.pending.len()
                ^ c.issued.len()) as u64
        })
    }

    /// A word from the debtor's last obligation, on the heap when it has more than one (zero otherwise), for a
    /// caller that walks many debtors' obligations: see [`Debtor::touch`].
    pub fn touch_obligations(&self) -> u64 {
        (self.obligations.len() > 1)
            .then(|| self.obligations.last())
            .flatten()
            .map_or(0, |o| o.id.len() as u64)
    }

    /// Like [`Debtor::touch_cold`], one level further again, for a caller that reads all of a debtor (encoding its
    /// state): the last obligation (on the heap when the debtor has more than one) and the last element of each
    /// cold vector that may span more cache lines than its header's. Call it after `touch_cold` on the same
    /// debtors.
    pub fn touch_far(&self) -> u64 {
        self.touch_obligations()
            ^ self.cold.as_deref().map_or(0, |c| {
                c.payments.last().map_or(0, |p| p.id.len() as u64)
                    ^ c.promises.last().map_or(0, |p| p.id.len() as u64)
                    ^ c.contacts.last().map_or(0, |m| m.at.0 as u64)
                    ^ c.pending.last().map_or(0, |p| p.release.0 as u64)
                    ^ c.issued.last().copied().unwrap_or(0)
            })
    }

    /// Frees the cold part once everything in it is empty again, and otherwise the spare room its vectors were
    /// left with (the engine calls it after each event and timer, for the debtor it decided on). Nothing to do
    /// unless a cold part was handed out to change on this thread since the last call: most events and timers
    /// leave it alone, and reading its vectors' heap headers was a cache miss each on a large portfolio.
    pub fn release_cold(&mut self) {
        if !COLD_HANDED_OUT.replace(false) {
            return;
        }
        if let Some(cold) = self.cold.as_deref_mut() {
            if cold.is_empty() {
                self.cold = None;
            } else {
                cold.trim();
            }
        }
    }

    /// The obligations to change, with the cold part to read alongside.
    pub fn obligations_mut_with_cold(&mut self) -> (&mut Obligations, &Cold) {
        (
            &mut self.obligations,
            self.cold.as_deref().unwrap_or(&EMPTY_COLD),
        )
    }

    /// Charged off, agency placement, payment plan, replies awaiting an answer.
    pub fn status(&self) -> &Status {
        &self.cold().status
    }

    /// Days past due at `now` in the debtor's local calendar (`derived.dpd` is the value at the last evaluation).
    pub fn days_past_due(&self, now: Ts) -> u16 {
        let tz = self
            .profile
            .as_ref()
            .map_or(chrono_tz::Tz::UTC, |p| p.time_zone);
        self.days_past_due_on(now.local_date(tz))
    }

    /// Days past due on the debtor's local date `today`.
    pub fn days_past_due_on(&self, today: NaiveDate) -> u16 {
        self.oldest_unpaid_due().map_or(0, |due| {
            crate::time::days_between(due, today).clamp(0, i64::from(u16::MAX)) as u16
        })
    }

    /// Total outstanding in the base currency, rounded to cents (no allocation).
    pub fn outstanding_base(&self, fx: &crate::money::FxTable) -> Decimal {
        self.obligations
            .iter()
            .filter(|o| o.is_open())
            .map(|o| fx.to_base(o.currency, o.outstanding.get()))
            .sum::<Decimal>()
            .round_dp(2)
    }

    /// Outstanding debt per currency (open obligations).
    pub fn outstanding(&self) -> Balances {
        let mut b = Balances::default();
        for o in self.obligations.iter().filter(|o| o.is_open()) {
            b.add(o.currency, o.outstanding.get());
        }
        b
    }

    /// Whether anything is owed.
    pub fn owes(&self) -> bool {
        self.obligations.iter().any(Obligation::is_open)
    }

    /// The earliest due date among open obligations: the anchor of days past due and of strategy steps.
    pub fn oldest_unpaid_due(&self) -> Option<NaiveDate> {
        self.obligations
            .iter()
            .filter(|o| o.is_open())
            .map(|o| o.due)
            .min()
    }

    /// The open obligation with the earliest due date.
    pub fn oldest_unpaid(&self) -> Option<&Obligation> {
        self.obligations
            .iter()
            .filter(|o| o.is_open())
            .min_by(|a, b| a.due.cmp(&b.due).then_with(|| a.id.cmp(&b.id)))
    }

    /// What is known of the debtor's consent for `channel`.
    pub fn consent_for(&self, channel: Channel) -> Consent {
        if self.revoked.contains(channel) {
            Consent::Revoked
        } else if self
            .profile
            .as_ref()
            .is_some_and(|p| p.consent.contains(channel))
        {
            Consent::Granted
        } else {
            Consent::Unknown
        }
    }
}

/// What the engine knows of a debtor's consent for one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Explicitly granted.
    Granted,
    /// Explicitly withdrawn or opted out.
    Revoked,
    /// Never stated.
    Unknown,
}

/// One obligation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Obligation {
    /// Id at the source.
    pub id: CompactString,
    /// Product.
    pub product: Sym,
    /// Currency.
    pub currency: Currency,
    /// Original amount.
    pub amount: Amount,
    /// What is still owed.
    pub outstanding: Amount,
    /// Due date (debtor's local calendar).
    #[serde(with = "crate::serde_forms::date")]
    pub due: NaiveDate,
    /// Replaced by a payment plan: no longer collected.
    pub restructured: bool,
}

impl Obligation {
    /// Whether money is still owed on it.
    pub fn is_open(&self) -> bool {
        !self.restructured && self.outstanding.is_positive()
    }
}

/// What one payment or credit note did, so that a reversal can undo it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Payment or credit-note id.
    pub id: CompactString,
    /// Currency.
    pub currency: Currency,
    /// Amounts allocated to obligations, by obligation id.
    #[serde(with = "crate::serde_forms::allocations")]
    pub allocations: Allocations,
    /// Amount kept as credit.
    #[serde(with = "crate::serde_forms::amount")]
    pub to_credit: Decimal,
    /// Whether it was already reversed.
    pub reversed: bool,
}

/// An open promise to pay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promise {
    /// Id.
    pub id: CompactString,
    /// Currency.
    pub currency: Currency,
    /// Promised amount.
    #[serde(with = "crate::serde_forms::amount")]
    pub amount: Decimal,
    /// Paid towards it since it was made.
    #[serde(with = "crate::serde_forms::amount")]
    pub paid: Decimal,
    /// First instant at which it is broken if unpaid: the start of the day after `promised_by`, local time.
    pub deadline: Ts,
}

/// Kind of contact mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// An action sent (an attempt).
    Attempt,
    /// A conversation with the debtor (right-party contact).
    Conversation,
}

/// One contact attempt or conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactMark {
    /// When.
    pub at: Ts,
    /// Channel.
    pub channel: Channel,
    /// Attempt or conversation.
    pub kind: MarkKind,
}

/// An action the guard deferred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingAction {
    /// When to ask the guard again.
    pub release: Ts,
    /// The action as it will be sent (its id is fixed at creation).
    pub action: Action,
}

/// Where the debtor is in its strategy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyCursor {
    /// Index of the strategy in force, plus one (0: none).
    pub strategy: u16,
    /// Oldest unpaid due date the steps were counted from.
    #[serde(with = "crate::serde_forms::opt_date")]
    pub anchor: Option<NaiveDate>,
    /// Stage-entry date the steps were counted from.
    #[serde(with = "crate::serde_forms::opt_date")]
    pub entered: Option<NaiveDate>,
    /// Bit `i` set: step `i` was taken, skipped or suppressed for this anchor.
    pub done: u64,
    /// When the next step of this path falls due ([`Ts::MAX`]: no step left, eight bytes where an `Option` takes
    /// sixteen), cached so that events and timers between steps need not recompute step instants. Serialised as an
    /// optional instant, as it always was.
    #[serde(with = "crate::serde_forms::never_as_none")]
    pub next_step: Ts,
}

impl Default for StrategyCursor {
    fn default() -> Self {
        StrategyCursor {
            strategy: 0,
            anchor: None,
            entered: None,
            done: 0,
            next_step: Ts::MAX,
        }
    }
}

impl StrategyCursor {
    /// When the next step falls due, if any is left.
    pub fn next_step(&self) -> Option<Ts> {
        (self.next_step != Ts::MAX).then_some(self.next_step)
    }
}

/// Classification derived from the state; what queues, segments and actions are built from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Days past due at the last evaluation (debtor's local calendar).
    pub dpd: u16,
    /// Aging bucket index (into the configured buckets).
    pub bucket: u8,
    /// Collection stage.
    pub stage: Stage,
    /// Local date the current stage was entered.
    #[serde(with = "crate::serde_forms::opt_date")]
    pub stage_entered: Option<NaiveDate>,
    /// Segment index (into the configured segments).
    pub segment: u16,
    /// Priority score in hundredths of a point; higher is worked first.
    pub priority: i64,
    /// Total outstanding in the base currency, rounded to cents.
    #[serde(with = "crate::serde_forms::cent_amount")]
    pub outstanding_base: CentAmount,
    /// Overdue part of it, rounded to cents.
    #[serde(with = "crate::serde_forms::cent_amount")]
    pub overdue_base: CentAmount,
    /// Bit `i` set: the debtor is in work queue `i`.
    pub queues: u32,
}

/// Payment-behaviour counters (saturating).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Delinquency episodes started (DPD went from 0 to positive).
    pub episodes: u8,
    /// Episodes cured (DPD back to 0).
    pub cures: u8,
    /// Episodes cured with no contact at all during them.
    pub self_cures: u8,
    /// Promises kept.
    pub promises_kept: u8,
    /// Promises broken.
    pub promises_broken: u8,
    /// Whether an episode is in progress.
    pub in_episode: bool,
    /// Whether the debtor was contacted during the current episode.
    pub contacted_in_episode: bool,
}

/// Payment-history class used by segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentHistory {
    /// Never delinquent before.
    Clean,
    /// Usually cures without being contacted.
    SelfCurer,
    /// Three or more episodes, mostly cured only after contact or not at all.
    HabitualLate,
    /// Has broken more promises than kept.
    PromiseBreaker,
    /// Anything else.
    Occasional,
}

impl History {
    /// The class segmentation rules match on.
    pub fn class(&self) -> PaymentHistory {
        if self.promises_broken > self.promises_kept {
            PaymentHistory::PromiseBreaker
        } else if self.episodes <= 1 && self.cures == 0 && !self.in_episode {
            PaymentHistory::Clean
        } else if self.cures > 0 && self.self_cures * 2 >= self.cures {
            PaymentHistory::SelfCurer
        } else if self.episodes >= 3 {
            PaymentHistory::HabitualLate
        } else {
            PaymentHistory::Occasional
        }
    }
}

/// Status flags that change treatment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Charged off: judicial stage.
    pub charged_off: bool,
    /// Agency the debtor is placed with (internal contact pauses).
    pub agency: Option<CompactString>,
    /// Payment plan in force.
    pub plan: Option<CompactString>,
    /// Debtor replies awaiting an answer.
    pub pending_replies: u8,
}
