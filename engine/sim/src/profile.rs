//! Who the simulated debtors are: country, zone, currency, amounts, consent and flags.

use chrono_tz::Tz;
use mora_domain::amount::Amount;
use mora_domain::event::{CustomerType, DebtorFlags, Profile};
use mora_domain::ids::{Channel, ChannelSet, Currency};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

/// A simulated market.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Market {
    pub country: &'static str,
    pub currency: &'static str,
    /// Monthly installment range in local currency units.
    pub amount: (i64, i64),
    /// Rounding step of amounts.
    pub step: i64,
    pub zones: &'static [(&'static str, Option<&'static str>, u32)],
}

const MARKETS: [(Market, u32); 6] = [
    (
        Market {
            country: "CO",
            currency: "COP",
            amount: (150_000, 3_000_000),
            step: 1000,
            zones: &[("America/Bogota", None, 1)],
        },
        30,
    ),
    (
        Market {
            country: "MX",
            currency: "MXN",
            amount: (800, 20_000),
            step: 10,
            zones: &[
                ("America/Mexico_City", None, 85),
                ("America/Tijuana", None, 10),
                ("America/Cancun", None, 5),
            ],
        },
        25,
    ),
    (
        Market {
            country: "PE",
            currency: "PEN",
            amount: (100, 3_000),
            step: 1,
            zones: &[("America/Lima", None, 1)],
        },
        15,
    ),
    (
        Market {
            country: "CL",
            currency: "CLP",
            amount: (40_000, 1_500_000),
            step: 1000,
            zones: &[("America/Santiago", None, 1)],
        },
        14,
    ),
    (
        Market {
            country: "US",
            currency: "USD",
            amount: (50, 2_500),
            step: 1,
            zones: &[
                ("America/New_York", None, 45),
                ("America/New_York", Some("MA"), 15),
                ("America/Chicago", None, 20),
                ("America/Los_Angeles", None, 20),
            ],
        },
        15,
    ),
    // A market with no policy file: every action is dropped for an unknown jurisdiction, as the guard must.
    (
        Market {
            country: "AR",
            currency: "USD",
            amount: (50, 800),
            step: 1,
            zones: &[("America/Argentina/Buenos_Aires", None, 1)],
        },
        1,
    ),
];

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (item, w) in items {
        if pick < *w {
            return item;
        }
        pick -= w;
    }
    &items[items.len() - 1].0
}

pub(crate) fn pick_market(rng: &mut ChaCha8Rng) -> Market {
    *weighted(rng, &MARKETS)
}

pub(crate) fn currency(code: &str) -> Currency {
    Currency::parse(code)
        .unwrap_or_else(|| unreachable!("simulator currencies are valid ISO codes"))
}

/// A monthly installment amount for `m`.
pub(crate) fn amount(rng: &mut ChaCha8Rng, m: &Market) -> Decimal {
    let raw = rng.gen_range(m.amount.0..=m.amount.1);
    Decimal::from(raw / m.step * m.step)
}

pub(crate) fn profile(rng: &mut ChaCha8Rng, m: &Market) -> Profile {
    let zones: Vec<((&str, Option<&str>), u32)> =
        m.zones.iter().map(|(z, r, w)| ((*z, *r), *w)).collect();
    let (tz, region) = *weighted(rng, &zones);
    let time_zone: Tz = tz.parse().unwrap_or(Tz::UTC);
    let monthly = amount(rng, m);
    let mut consent = ChannelSet::EMPTY;
    for c in [
        Channel::Dialer,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Email,
    ] {
        if rng.gen_bool(0.9) {
            consent.insert(c);
        }
    }
    let flag = |rng: &mut ChaCha8Rng, p: f64| rng.gen_bool(p);
    let flags = DebtorFlags {
        deceased: flag(rng, 0.002),
        bankruptcy: flag(rng, 0.005),
        cease_and_desist: flag(rng, 0.005),
        lawsuit_served: flag(rng, 0.002),
        attorney: m.country == "US" && flag(rng, 0.01),
        vip: flag(rng, 0.01),
    };
    let customer_type = *weighted(
        rng,
        &[
            (CustomerType::Individual, 85),
            (CustomerType::SmallBusiness, 12),
            (CustomerType::Corporate, 3),
        ],
    );
    let preferred = [
        None,
        Some(Channel::Whatsapp),
        Some(Channel::Sms),
        Some(Channel::Email),
        Some(Channel::Dialer),
    ];
    Profile {
        country: m.country.into(),
        region: region.map(Into::into),
        time_zone,
        zone: ["north", "south", "east", "west", "capital"][rng.gen_range(0..5)].into(),
        customer_type,
        credit_limit: Amount::new(monthly * Decimal::from(rng.gen_range(3..12))).unwrap_or_else(
            || unreachable!("simulated limits are whole units far below the bound"),
        ),
        credit_currency: currency(m.currency),
        risk_score: rng.gen_range(0..=1000),
        preferred_channel: preferred[rng.gen_range(0..preferred.len())],
        consent,
        flags,
    }
}
