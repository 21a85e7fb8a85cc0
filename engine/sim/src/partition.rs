//! One partition's simulated debtors and the schedule of everything they will do.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{Datelike, NaiveDate};
use compact_str::{CompactString, format_compact};
use mora_domain::action::Action;
use mora_domain::event::{
    DisputeOutcome, Envelope, EventKind, Installment, ObligationOpened, Outcome,
};
use mora_domain::ids::{Channel, Currency, DebtorId};
use mora_domain::time::{DAY_MS, Ts};
use mora_runtime::partition_for;
use mora_schemas::{Family, family_of};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use crate::behaviour::{Archetype, SimDebtor, minutes, outcomes};
use crate::config::SimConfig;
use crate::profile::{self, currency};

/// One record of the simulated log.
#[derive(Clone, Debug)]
pub enum SimRecord {
    /// A well-formed event.
    Event(Envelope),
    /// Bytes that are not a valid record of `family` (a producer bug), keyed by a debtor id.
    Poison {
        /// Topic family it was sent to.
        family: Family,
        /// Record key.
        key: DebtorId,
        /// The bytes.
        bytes: Vec<u8>,
        /// When.
        at: Ts,
    },
}

impl SimRecord {
    /// The record's instant.
    pub fn at(&self) -> Ts {
        match self {
            SimRecord::Event(e) => e.occurred_at,
            SimRecord::Poison { at, .. } => *at,
        }
    }

    /// The record's topic family.
    pub fn family(&self) -> Family {
        match self {
            SimRecord::Event(e) => family_of(&e.kind).0,
            SimRecord::Poison { family, .. } => *family,
        }
    }
}

#[derive(Clone, Debug)]
enum Item {
    Event(EventKind),
    /// Issue the next monthly installment.
    Cycle,
    /// Pay up to `amount` (zero: everything owed) in `currency`; `reverse` bounces it a few days later.
    Pay {
        currency: Currency,
        amount: Decimal,
        reverse: bool,
    },
    /// Bounce a payment.
    Reverse {
        payment_id: CompactString,
        currency: Currency,
        amount: Decimal,
    },
    /// Close the open dispute.
    Resolve {
        upheld: bool,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Ts,
    seq: u64,
    debtor: u32,
    item: Item,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The simulated debtors of one partition.
#[derive(Debug)]
pub struct PartitionSim {
    rng: ChaCha8Rng,
    start: Ts,
    end: Ts,
    poison_rate: f64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    debtors: Vec<SimDebtor>,
    index: HashMap<DebtorId, u32>,
    seq: u64,
}

impl PartitionSim {
    /// The debtors of `partition` (those Kafka's partitioner would put there) and their first events.
    pub fn new(cfg: &SimConfig, partition: u32) -> Self {
        let seed = cfg.seed ^ (u64::from(partition) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut sim = Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            start: cfg.start_ts(),
            end: cfg.end(),
            poison_rate: cfg.poison_rate,
            queue: BinaryHeap::new(),
            debtors: Vec::new(),
            index: HashMap::new(),
            seq: 0,
        };
        for n in 0..cfg.debtors {
            let id = SimConfig::debtor_id(n);
            if partition_for(id.as_bytes(), cfg.partitions) == partition {
                sim.add_debtor(id.into(), cfg.start);
            }
        }
        sim
    }

    /// Debtors simulated in this partition.
    pub fn debtor_count(&self) -> usize {
        self.debtors.len()
    }

    fn add_debtor(&mut self, id: DebtorId, start: NaiveDate) {
        let rng = &mut self.rng;
        let market = profile::pick_market(rng);
        let profile = profile::profile(rng, &market);
        let d = SimDebtor {
            id: id.clone(),
            market,
            tz: profile.time_zone,
            kind: Archetype::pick(rng),
            due_day: rng.gen_range(1..=28),
            usd_card: market.currency != "USD" && rng.gen_bool(0.1),
            owed: Vec::new(),
            cycle: 0,
            dispute: None,
        };
        let idx = self.debtors.len() as u32;
        let joined = d.local_at(rng, start, 6, 12);
        let first_issue = joined.plus_ms(rng.gen_range(0..10) * DAY_MS);
        let update = rng
            .gen_bool(0.03)
            .then(|| joined.plus_ms(rng.gen_range(5..90) * DAY_MS));
        self.index.insert(id, idx);
        self.debtors.push(d);
        self.schedule(
            joined,
            idx,
            Item::Event(EventKind::DebtorUpserted(profile.clone())),
        );
        self.schedule(first_issue, idx, Item::Cycle);
        if let Some(at) = update {
            let mut p = profile;
            p.risk_score = self.rng.gen_range(0..=1000);
            self.schedule(at, idx, Item::Event(EventKind::DebtorUpserted(p)));
        }
    }

    fn schedule(&mut self, at: Ts, debtor: u32, item: Item) {
        if at >= self.end {
            return;
        }
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.start),
            seq: self.seq,
            debtor,
            item,
        }));
    }

    /// The next record at or before `t`, in time order; `None` when nothing more is due by then.
    pub fn pop_until(&mut self, t: Ts) -> Option<SimRecord> {
        loop {
            if self.queue.peek().is_none_or(|Reverse(s)| s.at > t) {
                return None;
            }
            let Reverse(s) = self.queue.pop()?;
            if let Some(kind) = self.fire(s.at, s.debtor, s.item) {
                let d = &self.debtors[s.debtor as usize];
                self.seq += 1;
                let ev = Envelope {
                    event_id: format_compact!("{}-e{}", d.id, self.seq),
                    debtor_id: d.id.clone(),
                    occurred_at: s.at,
                    kind,
                };
                if self.poison_rate > 0.0 && self.rng.gen_bool(self.poison_rate) {
                    let len = self.rng.gen_range(1..40);
                    let bytes = (0..len).map(|_| self.rng.r#gen::<u8>()).collect();
                    return Some(SimRecord::Poison {
                        family: family_of(&ev.kind).0,
                        key: ev.debtor_id,
                        bytes,
                        at: s.at,
                    });
                }
                return Some(SimRecord::Event(ev));
            }
        }
    }

    /// Turns a scheduled item into an event (or nothing), scheduling what follows from it.
    fn fire(&mut self, at: Ts, idx: u32, item: Item) -> Option<EventKind> {
        match item {
            Item::Event(kind) => Some(kind),
            Item::Cycle => Some(self.cycle(at, idx)),
            Item::Pay {
                currency,
                amount,
                reverse,
            } => {
                let d = &mut self.debtors[idx as usize];
                let owed = d.owed(currency);
                let amount = if amount.is_zero() {
                    owed
                } else {
                    amount.min(owed)
                };
                if amount <= Decimal::ZERO {
                    return None;
                }
                d.add_owed(currency, -amount);
                let payment_id = mint(&mut self.seq, &d.id, "P");
                if reverse {
                    let later = at.plus_ms(self.rng.gen_range(2..5) * DAY_MS);
                    let item = Item::Reverse {
                        payment_id: payment_id.clone(),
                        currency,
                        amount,
                    };
                    self.schedule(later, idx, item);
                }
                Some(EventKind::PaymentReceived {
                    payment_id,
                    currency,
                    amount,
                    obligation_id: None,
                })
            }
            Item::Reverse {
                payment_id,
                currency,
                amount,
            } => {
                self.debtors[idx as usize].add_owed(currency, amount);
                if self.rng.gen_bool(0.7) {
                    let later = at.plus_ms(self.rng.gen_range(3..8) * DAY_MS);
                    self.schedule(
                        later,
                        idx,
                        Item::Pay {
                            currency,
                            amount,
                            reverse: false,
                        },
                    );
                }
                Some(EventKind::PaymentReversed {
                    payment_id,
                    reason: "insufficient_funds".into(),
                })
            }
            Item::Resolve { upheld } => {
                let d = &mut self.debtors[idx as usize];
                let dispute_id = d.dispute.take()?;
                let cur = currency(d.market.currency);
                if upheld {
                    let amount = d.owed(cur);
                    if amount > Decimal::ZERO {
                        d.add_owed(cur, -amount);
                        let note = EventKind::CreditNote {
                            note_id: mint(&mut self.seq, &d.id, "N"),
                            currency: cur,
                            amount,
                            obligation_id: None,
                        };
                        self.schedule(at.plus_ms(60_000), idx, Item::Event(note));
                    }
                } else {
                    let later = at.plus_ms(self.rng.gen_range(1..6) * DAY_MS);
                    self.schedule(
                        later,
                        idx,
                        Item::Pay {
                            currency: cur,
                            amount: Decimal::ZERO,
                            reverse: false,
                        },
                    );
                }
                let outcome = if upheld {
                    DisputeOutcome::Upheld
                } else {
                    DisputeOutcome::Rejected
                };
                Some(EventKind::DisputeResolved {
                    dispute_id,
                    outcome,
                })
            }
        }
    }

    /// Issues the next monthly installment (due ~20 days later) and plans how it will be paid.
    fn cycle(&mut self, at: Ts, idx: u32) -> EventKind {
        let rng = &mut self.rng;
        let d = &mut self.debtors[idx as usize];
        d.cycle += 1;
        let today = at.local_date(d.tz);
        let due = next_due(today, d.due_day);
        let cur = currency(d.market.currency);
        let amount = profile::amount(rng, &d.market);
        d.add_owed(cur, amount);
        let n = d.cycle;
        let obligation = ObligationOpened {
            obligation_id: format_compact!("{}-L{n}", d.id),
            product: if d.usd_card {
                "card"
            } else {
                ["loan", "card", "invoice"][(idx as usize + n as usize) % 3]
            }
            .into(),
            currency: cur,
            amount,
            due_date: due,
        };
        let mut follow = Vec::new();
        plan_installment(rng, d, due, (cur, amount), n, &mut follow);
        if d.usd_card {
            plan_card(rng, d, (at, due), n, &mut follow);
        }
        // Next month's installment, issued 20 days before its due date.
        let next_issue =
            next_due(due + chrono::Duration::days(1), d.due_day) - chrono::Duration::days(20);
        let next_at = d.local_at(rng, next_issue, 6, 8);
        follow.push((next_at, Item::Cycle));
        for (t, item) in follow {
            // Nothing that follows from this installment happens before it is issued (the first due date can fall a
            // day after issue, and an early payer's day would otherwise land in the past).
            self.schedule(t.max(at.plus_ms(60_000)), idx, item);
        }
        EventKind::ObligationOpened(obligation)
    }

    /// Reacts to an action the engine sent: the gateway's outcomes, and what the debtor does about it.
    pub fn react(&mut self, action: &Action) {
        let Some(&idx) = self.index.get(&action.debtor_id) else {
            return;
        };
        let at = action.not_before;
        if action.channel == Channel::Agency {
            let ev = EventKind::AgencyPlaced {
                agency_id: "AG-1".into(),
            };
            self.schedule(at.plus_ms(DAY_MS), idx, Item::Event(ev));
            return;
        }
        let replies = outcomes(&mut self.rng, action.channel);
        let mut reached = false;
        for r in replies {
            reached |= matches!(
                r.outcome,
                Outcome::RightPartyContact | Outcome::Read | Outcome::Replied
            );
            let ev = EventKind::ContactOutcome {
                action_id: action.action_id.0.clone(),
                channel: action.channel,
                outcome: r.outcome,
            };
            self.schedule(minutes(at, r.after_minutes), idx, Item::Event(ev));
        }
        if !reached {
            return;
        }
        let rng = &mut self.rng;
        let d = &self.debtors[idx as usize];
        let cur = currency(d.market.currency);
        let owed = d.owed(cur);
        if owed.is_zero() {
            return;
        }
        let today = at.local_date(d.tz);
        let mut follow = Vec::new();
        match d.kind {
            Archetype::Responsive if rng.gen_bool(0.6) => {
                let date = today + chrono::Duration::days(rng.gen_range(1..5));
                let when = d.local_at(rng, date, 8, 20);
                follow.push((
                    when,
                    Item::Pay {
                        currency: cur,
                        amount: Decimal::ZERO,
                        reverse: false,
                    },
                ));
            }
            Archetype::Struggling | Archetype::Defaulter if action.channel == Channel::Dialer => {
                let promise_p = if d.kind == Archetype::Struggling {
                    0.7
                } else {
                    0.3
                };
                if rng.gen_bool(promise_p) {
                    let amount = (owed * Decimal::from(rng.gen_range(30..100))
                        / Decimal::from(100))
                    .round_dp(0);
                    let by = today + chrono::Duration::days(rng.gen_range(2..8));
                    let promise = EventKind::PromiseToPay {
                        promise_id: mint(&mut self.seq, &d.id, "PR"),
                        currency: cur,
                        amount,
                        promised_by: by,
                        taken_by: "dialer".into(),
                    };
                    follow.push((at.plus_ms(10 * 60_000), Item::Event(promise)));
                    let keep_p = if d.kind == Archetype::Struggling {
                        0.45
                    } else {
                        0.1
                    };
                    if rng.gen_bool(keep_p) {
                        let when = d.local_at(rng, by, 8, 20);
                        follow.push((
                            when,
                            Item::Pay {
                                currency: cur,
                                amount,
                                reverse: false,
                            },
                        ));
                    }
                }
            }
            Archetype::Struggling if rng.gen_bool(0.05) => {
                let installments = (1..=3)
                    .map(|k| Installment {
                        due_date: today + chrono::Duration::days(30 * k),
                        amount: (owed / Decimal::from(3)).round_dp(0).max(Decimal::ONE),
                    })
                    .collect();
                let plan = EventKind::PaymentPlanAgreed {
                    plan_id: mint(&mut self.seq, &d.id, "PL"),
                    currency: cur,
                    installments,
                };
                follow.push((at.plus_ms(30 * 60_000), Item::Event(plan)));
            }
            _ => {}
        }
        for (t, item) in follow {
            self.schedule(t, idx, item);
        }
    }
}

/// The next id of an event-scoped record (`<debtor>-<tag><sequence>`), unique within the partition's log.
fn mint(seq: &mut u64, debtor: &str, tag: &str) -> CompactString {
    *seq += 1;
    format_compact!("{debtor}-{tag}{seq}")
}

/// The first date on or after `from` whose day of month is `day` (1..=28).
fn next_due(from: NaiveDate, day: u32) -> NaiveDate {
    let this = from.with_day(day).unwrap_or(from);
    if this >= from {
        this
    } else {
        let (y, m) = if from.month() == 12 {
            (from.year() + 1, 1)
        } else {
            (from.year(), from.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or(from)
    }
}

/// A day `off` days from `due`, at a local time the debtor is awake.
fn day_of(rng: &mut ChaCha8Rng, d: &SimDebtor, due: NaiveDate, off: i64) -> Ts {
    let date = due + chrono::Duration::days(off);
    d.local_at(rng, date, 8, 20)
}

/// How an installment will be paid (or not), by the debtor's archetype: what follows it and when.
fn plan_installment(
    rng: &mut ChaCha8Rng,
    d: &mut SimDebtor,
    due: NaiveDate,
    (cur, amount): (Currency, Decimal),
    n: u32,
    follow: &mut Vec<(Ts, Item)>,
) {
    match d.kind {
        Archetype::Punctual => {
            let off = -rng.gen_range(0..5);
            follow.push((
                day_of(rng, d, due, off),
                Item::Pay {
                    currency: cur,
                    amount,
                    reverse: rng.gen_bool(0.02),
                },
            ));
        }
        Archetype::SelfCurer => {
            let off = rng.gen_range(1..12);
            follow.push((
                day_of(rng, d, due, off),
                Item::Pay {
                    currency: cur,
                    amount,
                    reverse: rng.gen_bool(0.02),
                },
            ));
        }
        Archetype::Responsive => {
            if rng.gen_bool(0.3) {
                let off = rng.gen_range(40..70);
                follow.push((
                    day_of(rng, d, due, off),
                    Item::Pay {
                        currency: cur,
                        amount,
                        reverse: false,
                    },
                ));
            }
        }
        Archetype::Struggling => {
            if rng.gen_bool(0.7) {
                let part = amount * Decimal::from(rng.gen_range(30..70)) / Decimal::from(100);
                let off = rng.gen_range(3..20);
                follow.push((
                    day_of(rng, d, due, off),
                    Item::Pay {
                        currency: cur,
                        amount: part.round_dp(0),
                        reverse: false,
                    },
                ));
            }
        }
        Archetype::Defaulter => {
            if n == 1 {
                let off = rng.gen_range(90..150);
                follow.push((
                    day_of(rng, d, due, off),
                    Item::Event(EventKind::ChargedOff {
                        reason: "uncollectible".into(),
                    }),
                ));
            }
        }
        Archetype::Disputer => {
            if d.dispute.is_none() {
                let dispute_id = format_compact!("{}-R{n}", d.id);
                d.dispute = Some(dispute_id.clone());
                let off = rng.gen_range(2..6);
                let opened = day_of(rng, d, due, off);
                let ev = EventKind::DisputeOpened {
                    dispute_id,
                    obligation_id: None,
                    reason: "not_recognised".into(),
                };
                follow.push((opened, Item::Event(ev)));
                follow.push((
                    opened.plus_ms(rng.gen_range(5..20) * DAY_MS),
                    Item::Resolve {
                        upheld: rng.gen_bool(0.4),
                    },
                ));
            }
        }
    }
}

/// A US-dollar card's monthly charge beside the installment, and its payment.
fn plan_card(
    rng: &mut ChaCha8Rng,
    d: &mut SimDebtor,
    (at, due): (Ts, NaiveDate),
    n: u32,
    follow: &mut Vec<(Ts, Item)>,
) {
    let usd = currency("USD");
    let card = Decimal::from(rng.gen_range(20..300));
    d.add_owed(usd, card);
    let card_ob = ObligationOpened {
        obligation_id: format_compact!("{}-C{n}", d.id),
        product: "card".into(),
        currency: usd,
        amount: card,
        due_date: due,
    };
    follow.push((
        at.plus_ms(60_000),
        Item::Event(EventKind::ObligationOpened(card_ob)),
    ));
    if d.kind != Archetype::Defaulter {
        let off = rng.gen_range(-3..15);
        follow.push((
            day_of(rng, d, due, off),
            Item::Pay {
                currency: usd,
                amount: card,
                reverse: false,
            },
        ));
    }
}
