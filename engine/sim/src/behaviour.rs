//! How simulated debtors behave: when they pay, promise, dispute, and how they answer contacts.

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use compact_str::CompactString;
use mora_domain::ids::{Channel, Currency, DebtorId};
use mora_domain::time::{MINUTE_MS, Ts, local_instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use crate::profile::Market;

/// Payment behaviour of a debtor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Archetype {
    /// Pays before the due date.
    Punctual,
    /// Pays a few days late, by itself.
    SelfCurer,
    /// Pays after being reached.
    Responsive,
    /// Pays in part, promises and often breaks promises.
    Struggling,
    /// Does not pay.
    Defaulter,
    /// Disputes the debt.
    Disputer,
}

impl Archetype {
    pub(crate) fn pick(rng: &mut ChaCha8Rng) -> Self {
        match rng.gen_range(0..100) {
            0..55 => Archetype::Punctual,
            55..70 => Archetype::SelfCurer,
            70..84 => Archetype::Responsive,
            84..94 => Archetype::Struggling,
            94..99 => Archetype::Defaulter,
            _ => Archetype::Disputer,
        }
    }
}

/// The simulator's own view of a debtor (its "core banking" ledger, not the engine's state).
#[derive(Clone, Debug)]
pub(crate) struct SimDebtor {
    pub id: DebtorId,
    pub market: Market,
    pub tz: Tz,
    pub kind: Archetype,
    /// Day of month installments fall due.
    pub due_day: u32,
    /// Also holds a USD card (mixed currencies).
    pub usd_card: bool,
    /// What the simulated bank thinks is owed, per currency.
    pub owed: Vec<(Currency, Decimal)>,
    /// Installments issued so far.
    pub cycle: u32,
    /// An open dispute id.
    pub dispute: Option<CompactString>,
}

impl SimDebtor {
    pub(crate) fn owed(&self, c: Currency) -> Decimal {
        self.owed
            .iter()
            .find(|(x, _)| *x == c)
            .map(|(_, a)| *a)
            .unwrap_or_default()
    }

    pub(crate) fn add_owed(&mut self, c: Currency, delta: Decimal) {
        match self.owed.iter_mut().find(|(x, _)| *x == c) {
            Some((_, a)) => *a = (*a + delta).max(Decimal::ZERO),
            None => self.owed.push((c, delta.max(Decimal::ZERO))),
        }
    }

    /// An instant on local day `date` at a random hour between `from` and `to`.
    pub(crate) fn local_at(&self, rng: &mut ChaCha8Rng, date: NaiveDate, from: u32, to: u32) -> Ts {
        let minutes = rng.gen_range(from * 60..to * 60);
        let time = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
        local_instant(date, time, self.tz)
    }
}

/// What a gateway reports back about one action, and when.
pub(crate) struct Reply {
    pub after_minutes: i64,
    pub outcome: mora_domain::event::Outcome,
}

/// Gateway outcomes for an action on `channel`: delivery, then possibly reads, replies, answers, opt-outs.
pub(crate) fn outcomes(rng: &mut ChaCha8Rng, channel: Channel) -> Vec<Reply> {
    use mora_domain::event::Outcome::*;
    let mut out = Vec::new();
    let mut at = rng.gen_range(1..30);
    let mut push = |rng: &mut ChaCha8Rng, outcome| {
        at += rng.gen_range(1..240);
        out.push(Reply {
            after_minutes: at,
            outcome,
        });
    };
    match channel {
        Channel::Sms | Channel::Whatsapp => {
            if !rng.gen_bool(0.94) {
                push(rng, Failed);
                return out;
            }
            push(rng, Delivered);
            let read = if channel == Channel::Whatsapp {
                0.6
            } else {
                0.35
            };
            if rng.gen_bool(read) {
                push(rng, Read);
                if rng.gen_bool(0.08) {
                    push(rng, Replied);
                }
            }
            if rng.gen_bool(0.004) {
                push(rng, OptOut);
            }
        }
        Channel::Email => {
            if rng.gen_bool(0.9) {
                push(rng, Delivered);
                if rng.gen_bool(0.25) {
                    push(rng, Read);
                }
            } else {
                push(rng, Failed);
            }
        }
        Channel::Dialer => {
            if rng.gen_bool(0.02) {
                push(rng, WrongNumber);
            } else if rng.gen_bool(0.55) {
                push(rng, Answered);
                if rng.gen_bool(0.7) {
                    push(rng, RightPartyContact);
                }
            } else {
                push(rng, NoAnswer);
            }
        }
        Channel::Letter | Channel::Agency | Channel::Legal => {}
    }
    out
}

/// Minutes to add to an instant.
pub(crate) fn minutes(t: Ts, m: i64) -> Ts {
    t.plus_ms(m * MINUTE_MS)
}
