//! Builders for tests, examples and benchmarks: a small engine configuration and event constructors.
//!
//! The shipped configuration lives in `deploy/config`; this one is deliberately small and written in Rust so the
//! core's own tests do not depend on file parsing.

use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use compact_str::CompactString;
use rust_decimal::Decimal;

use crate::engine::{Engine, EngineConfig};
use crate::event::{CustomerType, DebtorFlags, Envelope, EventKind, ObligationOpened, Profile};
use crate::ids::{Channel, ChannelSet, Currency};
use crate::money::FxConfig;
use crate::policy::{
    CapConfig, ConsentConfig, ConsentMode, Counts, GapConfig, HoldKind, HolidayCalendarConfig,
    PolicyConfig, WindowConfig,
};
use crate::queues::QueueConfig;
use crate::segment::{SegmentRule, SegmentationConfig};
use crate::strategy::{EventStepConfig, StepConfig, StrategyConfig};
use crate::time::Ts;

/// Parses an RFC 3339 instant; panics on a malformed literal (test input only).
pub fn ts(s: &str) -> Ts {
    Ts(DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|_| panic!("bad instant {s}")))
}

/// Parses `YYYY-MM-DD`; panics on a malformed literal (test input only).
pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|_| panic!("bad date {s}"))
}

/// A currency from a literal.
pub fn cur(s: &str) -> Currency {
    Currency::parse(s).unwrap_or_else(|| panic!("bad currency {s}"))
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|_| panic!("bad decimal {s}"))
}

/// The test engine configuration: USD base, one strategy with a typical early-delinquency path.
pub fn engine_config() -> EngineConfig {
    let step = |id: &str, channel, template: &str, day| StepConfig {
        id: id.into(),
        channel,
        template: template.into(),
        day,
        from: Default::default(),
        at: "09:00".into(),
    };
    EngineConfig {
        fx: FxConfig {
            base: cur("USD"),
            rates: [
                ("COP", "0.00025"),
                ("MXN", "0.055"),
                ("PEN", "0.27"),
                ("CLP", "0.00105"),
            ]
            .into_iter()
            .map(|(c, r)| (cur(c), dec(r)))
            .collect(),
        },
        aging: Default::default(),
        segmentation: SegmentationConfig {
            default_segment: "standard".into(),
            rules: vec![SegmentRule {
                segment: "high-value".into(),
                amount_min: Some(dec("1000")),
                ..Default::default()
            }],
        },
        priority: Default::default(),
        queues: vec![QueueConfig {
            name: "dialer".into(),
            stages: vec![],
            segments: vec![],
            min_dpd: 1,
        }],
        strategies: vec![StrategyConfig {
            id: "standard".into(),
            segments: vec![],
            stages: vec![],
            steps: vec![
                step("email-d-3", Channel::Email, "reminder_upcoming", -3),
                step("sms-d1", Channel::Sms, "overdue_notice", 1),
                step("whatsapp-d5", Channel::Whatsapp, "overdue_followup", 5),
                step("dialer-d10", Channel::Dialer, "collector_call", 10),
                step("letter-d91", Channel::Letter, "formal_notice", 91),
            ],
            on_broken_promise: Some(EventStepConfig {
                channel: Channel::Dialer,
                template: "broken_promise_call".into(),
            }),
            on_paid_in_full: Some(EventStepConfig {
                channel: Channel::Sms,
                template: "thank_you".into(),
            }),
            arms: Vec::new(),
            catch_up: Default::default(),
        }],
        contact: Default::default(),
    }
}

fn window(days: &str, from: &str, to: &str) -> WindowConfig {
    WindowConfig {
        days: days.into(),
        from: from.into(),
        to: to.into(),
    }
}

/// Test policies: Colombia (windows, Sunday and holiday block, one contact a day) and the US (08-21, seven calls in
/// seven days, a week's quiet after a conversation), with a Massachusetts overlay (two calls in seven days).
pub fn policies() -> Vec<PolicyConfig> {
    let all_holds = vec![
        HoldKind::DisputeOpen,
        HoldKind::CeaseAndDesist,
        HoldKind::Bankruptcy,
        HoldKind::Deceased,
        HoldKind::LawsuitServed,
        HoldKind::Attorney,
    ];
    let base = |id: &str| PolicyConfig {
        id: id.into(),
        name: String::new(),
        sources: vec![],
        extends: None,
        holiday_calendars: vec![],
        blocked_day_channels: None,
        window_channels: vec![
            Channel::Dialer,
            Channel::Sms,
            Channel::Whatsapp,
            Channel::Email,
        ],
        windows: vec![],
        blocked_days: vec![],
        max_defer: Duration::from_secs(7 * 86_400),
        caps: vec![],
        min_gaps: vec![],
        channel_diversity: vec![],
        quiet_after_conversation: vec![],
        consent: Some(ConsentConfig::default()),
        holds: all_holds.clone(),
    };
    let co = PolicyConfig {
        holiday_calendars: vec!["CO".into()],
        windows: vec![
            window("mon-fri", "07:00", "19:00"),
            window("sat", "08:00", "15:00"),
        ],
        blocked_days: vec!["sun".into(), "holiday".into()],
        caps: vec![CapConfig {
            channels: vec![],
            max: 1,
            per: Duration::from_secs(86_400),
            counts: Counts::Attempt,
            tag: "V".into(),
        }],
        ..base("CO")
    };
    let us = PolicyConfig {
        windows: vec![window("daily", "08:00", "21:00")],
        caps: vec![CapConfig {
            channels: vec![Channel::Dialer],
            max: 7,
            per: Duration::from_secs(7 * 86_400),
            counts: Counts::Attempt,
            tag: "V".into(),
        }],
        quiet_after_conversation: vec![GapConfig {
            channels: vec![Channel::Dialer],
            gap: Duration::from_secs(7 * 86_400),
        }],
        consent: Some(ConsentConfig {
            mode: ConsentMode::OptOut,
            ..Default::default()
        }),
        ..base("US")
    };
    let us_ma = PolicyConfig {
        extends: Some("US".into()),
        consent: None,
        windows: vec![],
        caps: vec![CapConfig {
            channels: vec![Channel::Dialer, Channel::Sms],
            max: 2,
            per: Duration::from_secs(7 * 86_400),
            counts: Counts::Attempt,
            tag: "V".into(),
        }],
        ..base("US-MA")
    };
    vec![co, us, us_ma]
}

/// A Colombian holiday calendar covering 2026 only (so 2027 is unknown).
pub fn calendars() -> Vec<HolidayCalendarConfig> {
    let days = [
        "2026-01-01",
        "2026-01-12",
        "2026-03-23",
        "2026-04-02",
        "2026-04-03",
        "2026-05-01",
        "2026-05-18",
        "2026-06-08",
        "2026-06-15",
        "2026-06-29",
        "2026-07-20",
        "2026-08-07",
        "2026-08-17",
        "2026-10-12",
        "2026-11-02",
        "2026-11-16",
        "2026-12-08",
        "2026-12-25",
    ];
    vec![HolidayCalendarConfig {
        id: "CO".into(),
        sources: vec![],
        years: [("2026".to_string(), days.iter().map(|d| date(d)).collect())]
            .into_iter()
            .collect(),
    }]
}

/// The test engine.
pub fn engine() -> Engine {
    Engine::new(&engine_config(), &policies(), &calendars())
        .unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

fn envelope(id: &str, debtor: &str, at: Ts, kind: EventKind) -> Envelope {
    Envelope {
        event_id: id.into(),
        debtor_id: debtor.into(),
        occurred_at: at,
        kind,
    }
}

/// A profile for a debtor in `country`/`tz` with consent on every channel and no flags.
pub fn profile(country: &str, tz: &str) -> Profile {
    Profile {
        country: country.into(),
        region: None,
        time_zone: tz.parse().unwrap_or_else(|_| panic!("bad zone {tz}")),
        zone: "north".into(),
        customer_type: CustomerType::Individual,
        credit_limit: crate::amount::Amount::new(dec("5000")).expect("within bounds"),
        credit_currency: cur("USD"),
        risk_score: 500,
        preferred_channel: Some(Channel::Whatsapp),
        consent: ChannelSet::all(),
        flags: DebtorFlags::default(),
    }
}

/// `DebtorUpserted` for [`profile`].
pub fn debtor_upserted(debtor: &str, country: &str, tz: &str, at: Ts) -> Envelope {
    envelope(
        &format!("{debtor}-profile-{}", at.0),
        debtor,
        at,
        EventKind::DebtorUpserted(profile(country, tz)),
    )
}

/// `ObligationOpened`.
pub fn obligation(
    debtor: &str,
    id: &str,
    currency: &str,
    amount: &str,
    due: &str,
    at: Ts,
) -> Envelope {
    envelope(
        &format!("{debtor}-{id}-open"),
        debtor,
        at,
        EventKind::ObligationOpened(ObligationOpened {
            obligation_id: id.into(),
            product: "loan".into(),
            currency: cur(currency),
            amount: dec(amount),
            due_date: date(due),
        }),
    )
}

/// `PaymentReceived`, allocated oldest-first unless `target` is given.
pub fn payment(
    debtor: &str,
    id: &str,
    currency: &str,
    amount: &str,
    target: Option<&str>,
    at: Ts,
) -> Envelope {
    envelope(
        &format!("{debtor}-{id}"),
        debtor,
        at,
        EventKind::PaymentReceived {
            payment_id: id.into(),
            currency: cur(currency),
            amount: dec(amount),
            obligation_id: target.map(CompactString::from),
        },
    )
}

/// `PaymentReversed`.
pub fn reversal(debtor: &str, payment_id: &str, at: Ts) -> Envelope {
    envelope(
        &format!("{debtor}-{payment_id}-rev"),
        debtor,
        at,
        EventKind::PaymentReversed {
            payment_id: payment_id.into(),
            reason: "bounced".into(),
        },
    )
}

/// `PromiseToPay`.
pub fn promise(debtor: &str, id: &str, currency: &str, amount: &str, by: &str, at: Ts) -> Envelope {
    envelope(
        &format!("{debtor}-{id}"),
        debtor,
        at,
        EventKind::PromiseToPay {
            promise_id: id.into(),
            currency: cur(currency),
            amount: dec(amount),
            promised_by: date(by),
            taken_by: "agent-7".into(),
        },
    )
}

/// Any other event kind.
pub fn event(debtor: &str, id: &str, at: Ts, kind: EventKind) -> Envelope {
    envelope(id, debtor, at, kind)
}

/// Drives one debtor through events and time the way the runtime does: before each event, every timer due up to
/// the event's instant fires at its own instant.
#[derive(Debug)]
pub struct Harness {
    /// The engine.
    pub engine: Engine,
    /// The debtor.
    pub debtor: crate::debtor::Debtor,
    /// The harness clock.
    pub now: Ts,
    /// Everything decided so far.
    pub out: crate::engine::Decisions,
}

impl Harness {
    /// A new debtor `id` at `start`.
    pub fn new(engine: Engine, id: &str, start: Ts) -> Self {
        Self {
            engine,
            debtor: crate::debtor::Debtor::new(id.into()),
            now: start,
            out: Default::default(),
        }
    }

    /// Fires every timer due up to and including `t`, then sets the clock to `t`.
    pub fn advance_to(&mut self, t: Ts) {
        while self.debtor.next_wake <= t {
            self.now = self.now.max(self.debtor.next_wake);
            let now = self.now;
            let _ = self.engine.process(
                &mut self.debtor,
                crate::engine::Input::Wake,
                now,
                &mut self.out,
            );
        }
        self.now = self.now.max(t);
    }

    /// Advances to the event's instant and applies it.
    pub fn feed(&mut self, ev: &Envelope) -> Result<(), crate::rejected::Rejected> {
        self.advance_to(ev.occurred_at);
        let now = self.now;
        self.engine.process(
            &mut self.debtor,
            crate::engine::Input::Event(ev),
            now,
            &mut self.out,
        )
    }

    /// Actions emitted so far, as `(channel, step, local time "YYYY-MM-DD HH:MM")`.
    pub fn sent(&self) -> Vec<(Channel, String, String)> {
        let tz = self
            .debtor
            .profile
            .as_ref()
            .map_or(chrono_tz::Tz::UTC, |p| p.time_zone);
        self.out
            .actions
            .iter()
            .map(|a| {
                (
                    a.channel,
                    a.reason.step.to_string(),
                    a.not_before.in_tz(tz).format("%Y-%m-%d %H:%M").to_string(),
                )
            })
            .collect()
    }

    /// Audit reasons recorded so far for `kind`.
    pub fn reasons(&self, kind: crate::action::DecisionKind) -> Vec<String> {
        self.out
            .audits
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.reason.to_string())
            .collect()
    }
}
