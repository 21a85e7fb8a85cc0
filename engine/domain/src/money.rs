//! Amounts per currency and their value in the base currency.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::serde_forms::AmountForm;

use crate::amount::Amount;
use crate::config_error::ConfigError;
use crate::ids::Currency;

/// Amounts keyed by currency. Small (one or two currencies per debtor in practice), so a sorted vector.
/// Serialises as a map, `{"COP": "400000", "USD": "12.5"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Balances(Vec<(Currency, Decimal)>);

/// In binary formats (the state store) a sequence of `(currency, amount)` pairs, amounts as integers.
impl Serialize for Balances {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_map(self.0.iter().map(|(c, a)| (c, a)))
        } else {
            s.collect_seq(self.0.iter().map(|(c, a)| (c, AmountForm(*a))))
        }
    }
}

impl<'de> Deserialize<'de> for Balances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let map = BTreeMap::<Currency, Decimal>::deserialize(d)?;
            Ok(Balances::from_pairs(map.into_iter().collect()))
        } else {
            d.deserialize_seq(BalancesVisitor)
        }
    }
}

impl Balances {
    /// No money in any currency.
    pub const EMPTY: Balances = Balances(Vec::new());

    /// Pairs in any order, as read back: sorted by currency, zero amounts dropped.
    fn from_pairs(mut pairs: Vec<(Currency, Decimal)>) -> Self {
        pairs.sort_by_key(|(c, _)| *c);
        pairs.retain(|(_, a)| !a.is_zero());
        Balances(pairs)
    }
}

/// Reads the binary form, and the map MessagePack rows of the state store's format 1 hold.
struct BalancesVisitor;

impl<'de> serde::de::Visitor<'de> for BalancesVisitor {
    type Value = Balances;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("amounts by currency")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Balances, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8));
        while let Some((c, a)) = seq.next_element::<(Currency, AmountForm)>()? {
            v.push((c, a.0));
        }
        Ok(Balances::from_pairs(v))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Balances, A::Error> {
        let mut v = Vec::new();
        while let Some((c, a)) = map.next_entry::<Currency, AmountForm>()? {
            v.push((c, a.0));
        }
        Ok(Balances::from_pairs(v))
    }
}

impl Balances {
    /// Adds `amount` (may be negative) in `currency`; entries that reach zero are removed.
    pub fn add(&mut self, currency: Currency, amount: Decimal) {
        match self.0.binary_search_by_key(&currency, |(c, _)| *c) {
            Ok(i) => {
                self.0[i].1 += amount;
                if self.0[i].1.is_zero() {
                    self.0.remove(i);
                }
            }
            Err(i) if !amount.is_zero() => self.0.insert(i, (currency, amount)),
            Err(_) => {}
        }
    }

    /// The amount held in `currency` (zero when none).
    pub fn get(&self, currency: Currency) -> Decimal {
        self.0
            .binary_search_by_key(&currency, |(c, _)| *c)
            .map(|i| self.0[i].1)
            .unwrap_or_default()
    }

    /// Takes up to `max` from the balance in `currency`, returning what was taken.
    pub fn take(&mut self, currency: Currency, max: Decimal) -> Decimal {
        let have = self.get(currency);
        let taken = have.min(max).max(Decimal::ZERO);
        self.add(currency, -taken);
        taken
    }

    /// The entries, sorted by currency.
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Decimal)> + '_ {
        self.0.iter().copied()
    }

    /// Whether every entry is zero (the map holds no zero entries, so: whether it is empty).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Configured exchange rates into the base currency.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxConfig {
    /// The currency portfolio figures, segmentation amount ranges and priority are expressed in.
    pub base: Currency,
    /// Units of the base currency for one unit of each other currency. The base currency is implied (rate 1).
    #[serde(default)]
    pub rates: BTreeMap<Currency, Decimal>,
}

/// The compiled FX table.
#[derive(Clone, Debug)]
pub struct FxTable {
    base: Currency,
    /// Every rate, the base currency's (1) included, by [`currency_key`] in ascending order: a binary search on
    /// integers for every obligation a debtor's totals convert.
    rates: Vec<(u32, Decimal)>,
}

/// A currency as an integer ordered as its code.
fn currency_key(c: Currency) -> u32 {
    let [a, b, d] = c.bytes();
    u32::from_be_bytes([0, a, b, d])
}

impl FxTable {
    /// Validates rates (strictly positive) and builds the table.
    pub fn new(cfg: &FxConfig) -> Result<Self, ConfigError> {
        let mut rates = cfg.rates.clone();
        for (c, r) in &rates {
            if *r <= Decimal::ZERO {
                return Err(ConfigError::invalid(
                    format!("fx.rates.{c}"),
                    "must be a positive number of base-currency units",
                ));
            }
        }
        rates.insert(cfg.base, Decimal::ONE);
        // The map's order by code is the keys' order.
        let rates = rates
            .into_iter()
            .map(|(c, r)| (currency_key(c), r))
            .collect();
        Ok(Self {
            base: cfg.base,
            rates,
        })
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// Whether a rate is known for `c`.
    pub fn knows(&self, c: Currency) -> bool {
        self.rate(c).is_some()
    }

    /// `amount` of `c` in the base currency; unknown currencies convert to zero (callers validate first).
    pub fn to_base(&self, c: Currency, amount: Decimal) -> Decimal {
        self.rate(c).map(|r| amount * r).unwrap_or_default()
    }

    /// The rate of `c`, if known.
    fn rate(&self, c: Currency) -> Option<Decimal> {
        let key = currency_key(c);
        self.rates
            .binary_search_by_key(&key, |r| r.0)
            .ok()
            .map(|i| self.rates[i].1)
    }

    /// The sum in the base currency of `amounts`, rounded to cents: the very value and scale of summing their
    /// [`FxTable::to_base`] decimals and rounding with `round_dp(2)` (banker's rounding), taken on integers: each
    /// product by its rate and each partial sum exactly as the decimals give them, and the rest as decimals should a
    /// value outgrow what a decimal holds exactly (never with amounts and rates of this world).
    pub fn sum_to_cents(
        &self,
        amounts: impl IntoIterator<Item = (Currency, Amount)>,
    ) -> CentAmount {
        let mut sum = ExactSum::ZERO;
        let mut amounts = amounts.into_iter();
        while let Some((c, a)) = amounts.next() {
            if !sum.add(self.term(c, a)) {
                // Past what the integers replicate exactly (a product or a sum beyond a decimal's 96 bits
                // or 28 places): the rest as decimals, from the exact sum so far.
                let mut total = sum.decimal() + self.to_base(c, a.get());
                for (c, a) in amounts {
                    total += self.to_base(c, a.get());
                }
                return CentAmount::new(total.round_dp(2));
            }
        }
        sum.cents()
    }

    /// Two sums in one pass: of every amount, and of those flagged `true`; each the very value
    /// [`FxTable::sum_to_cents`] gives for them in the same order (a debtor's outstanding and overdue totals, whose
    /// terms are converted once).
    pub fn sum_and_part_to_cents<I>(&self, amounts: I) -> (CentAmount, CentAmount)
    where
        I: IntoIterator<Item = (Currency, Amount, bool)>,
        I::IntoIter: Clone,
    {
        let amounts = amounts.into_iter();
        let (mut all, mut part) = (ExactSum::ZERO, ExactSum::ZERO);
        for (c, a, flagged) in amounts.clone() {
            let term = self.term(c, a);
            if !all.add(term) || (flagged && !part.add(term)) {
                // Beyond the integers (never with amounts and rates of this world): each sum on its own.
                return (
                    self.sum_to_cents(amounts.clone().map(|(c, a, _)| (c, a))),
                    self.sum_to_cents(amounts.filter(|t| t.2).map(|(c, a, _)| (c, a))),
                );
            }
        }
        (all.cents(), part.cents())
    }

    /// `amount × rate` as the decimal product gives it, as mantissa and scale: a zero product is a zero of scale 0;
    /// otherwise the product of the mantissas at the sum of the scales. `None` past what a decimal holds exactly.
    fn term(&self, c: Currency, a: Amount) -> Option<(i128, u32)> {
        match a.parts() {
            (0, _) => Some((0, 0)),
            (m, s) if c == self.base => Some((i128::from(m), s)),
            (m, s) => {
                let (rm, rs) = self.rate_parts(c);
                match i128::from(m).checked_mul(rm) {
                    Some(0) => Some((0, 0)),
                    Some(p) => fits_decimal(p, s + rs).then_some((p, s + rs)),
                    None => None,
                }
            }
        }
    }

    /// `to_base(c, amount.get())` as `f64`, to the bit the value `Decimal::to_f64` gives: taken on integers while
    /// the product is exact and its scale small (always, with amounts and rates of this world), through the decimals
    /// otherwise. The priority score asks it for every debtor with a credit limit in another currency.
    pub fn to_base_f64(&self, c: Currency, amount: Amount) -> f64 {
        let (m, s) = amount.parts();
        let (rm, rs) = self.rate_parts(c);
        match i128::from(m).checked_mul(rm).map(i64::try_from) {
            Some(Ok(p)) if p > 0 && s + rs <= 18 => parts_to_f64(p, s + rs),
            _ => {
                use rust_decimal::prelude::ToPrimitive;
                self.to_base(c, amount.get()).to_f64().unwrap_or(0.0)
            }
        }
    }

    /// The rate of `c` as mantissa and scale; an unknown currency converts to a zero of scale 0, as
    /// [`FxTable::to_base`] does.
    fn rate_parts(&self, c: Currency) -> (i128, u32) {
        self.rate(c).map_or((0, 0), |r| (r.mantissa(), r.scale()))
    }

    /// The sum of `balances` in the base currency, rounded to cents.
    pub fn total_base(&self, balances: &Balances) -> Decimal {
        balances
            .iter()
            .map(|(c, a)| self.to_base(c, a))
            .sum::<Decimal>()
            .round_dp(2)
    }
}

/// A sum of decimal terms kept as one mantissa and scale, exactly as decimals add: a zero operand gives back the
/// other one, scale and all; otherwise the sum takes the larger scale, the other operand raised to it.
#[derive(Clone, Copy)]
struct ExactSum {
    sum: i128,
    scale: u32,
}

impl ExactSum {
    const ZERO: ExactSum = ExactSum { sum: 0, scale: 0 };

    /// Adds `term`; false, leaving the sum as it was, when the term is `None` or the sum would outgrow what a
    /// decimal holds exactly.
    fn add(&mut self, term: Option<(i128, u32)>) -> bool {
        let Some((m, s)) = term else {
            return false;
        };
        let next = match (self.sum, m) {
            (0, _) => Some((m, s)),
            (_, 0) => Some((self.sum, self.scale)),
            _ => self.plus(m, s),
        };
        match next {
            Some((sum, scale)) => {
                *self = ExactSum { sum, scale };
                true
            }
            None => false,
        }
    }

    /// The sum plus a nonzero `m × 10^-s`, both raised to the larger scale; `None` past a decimal's bounds.
    fn plus(self, m: i128, s: u32) -> Option<(i128, u32)> {
        let to = self.scale.max(s);
        let a = self.sum.checked_mul(pow10(to - self.scale)?)?;
        let b = m.checked_mul(pow10(to - s)?)?;
        let total = a.checked_add(b)?;
        [a, b, total]
            .iter()
            .all(|v| fits_decimal(*v, to))
            .then_some((total, to))
    }

    /// The exact sum so far, as a decimal.
    fn decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(self.sum, self.scale)
    }

    /// The sum rounded to cents (banker's rounding, as `round_dp(2)`).
    fn cents(self) -> CentAmount {
        let (mut sum, mut scale) = (self.sum, self.scale);
        if scale > 2 {
            sum = round_half_even(sum, pow10(scale - 2).unwrap_or(i128::MAX));
            scale = 2;
        }
        CentAmount::clamped(sum, scale)
    }
}

/// An amount rounded to cents (at most two decimals) in eight bytes instead of a decimal's sixteen: a debtor's
/// outstanding and overdue totals in the base currency, kept for every debtor of a portfolio of millions.
///
/// It holds the decimal's mantissa and its scale (0, 1 or 2), so [`CentAmount::get`] gives back the very decimal
/// it was made from (`100`, `100.5` and `100.50` stay distinct in how they print, as decimals do). The mantissa has
/// 61 bits: beyond ±23 058 430 092 136 939 units of the base currency (far past any debt) it saturates.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CentAmount(i64);

impl CentAmount {
    /// `v` rounded to cents (banker's rounding, as `Decimal::round_dp`; a value already at cents, as the engine's
    /// totals and stored states are, is taken as it is).
    pub fn new(v: Decimal) -> Self {
        let v = if v.scale() > 2 { v.round_dp(2) } else { v };
        Self::clamped(v.mantissa(), v.scale())
    }

    /// `mantissa × 10^-scale` for a scale of at most 2, the mantissa saturated to the 61 bits kept.
    fn clamped(mantissa: i128, scale: u32) -> Self {
        const LIMIT: i128 = (i64::MAX >> 2) as i128;
        let m = mantissa.clamp(-LIMIT, LIMIT) as i64;
        CentAmount(m << 2 | i64::from(scale as u8 & 3))
    }

    /// As `f64`, the very value `Decimal::to_f64` gives for [`CentAmount::get`] (scores are computed in floats).
    pub fn to_f64(self) -> f64 {
        parts_to_f64(self.0 >> 2, (self.0 & 3) as u32)
    }

    /// The amount of this mantissa and scale when it is one already at cents (`None` for a scale past 2 or a
    /// mantissa past the 61 bits it keeps: such a value goes through [`CentAmount::new`]).
    pub fn from_parts(mantissa: i64, scale: u32) -> Option<Self> {
        const LIMIT: u64 = (i64::MAX >> 2) as u64;
        (scale <= 2 && mantissa.unsigned_abs() <= LIMIT)
            .then(|| CentAmount(mantissa << 2 | i64::from(scale as u8)))
    }

    /// The decimal it holds.
    pub fn get(self) -> Decimal {
        Decimal::new(self.0 >> 2, (self.0 & 3) as u32)
    }

    /// The decimal it holds as its mantissa and scale (0, 1 or 2): what [`CentAmount::get`] is made of, for sums
    /// kept in integers.
    pub fn parts(self) -> (i64, u32) {
        (self.0 >> 2, (self.0 & 3) as u32)
    }
}

/// `mantissa × 10^-scale` (scale at most 18) as `f64` by the steps of `rust_decimal`'s conversion, so a score
/// computed from amounts held as integers is the one computed from their decimals, to the bit.
pub(crate) fn parts_to_f64(mantissa: i64, scale: u32) -> f64 {
    if scale == 0 {
        return mantissa as f64;
    }
    let magnitude = mantissa.unsigned_abs();
    let precision = 10u64.pow(scale);
    let integral = (magnitude / precision) as f64;
    let fraction = (magnitude % precision) as f64 / precision as f64;
    let value = if fraction == 0.0 {
        integral
    } else {
        let round_to = 10f64.powi(scale as i32);
        ((integral + fraction) * round_to).round() / round_to
    };
    if mantissa < 0 { -value } else { value }
}

/// `value / unit` rounded to the nearest integer, ties to the even one (`unit` a positive power of ten).
/// Whether `mantissa × 10^-scale` is a decimal as `rust_decimal` holds it exactly: 96 bits and 28 places at most.
fn fits_decimal(mantissa: i128, scale: u32) -> bool {
    scale <= 28 && mantissa.unsigned_abs() < 1 << 96
}

/// Ten to the `n`, for the scales a decimal spans (0 to 28); `None` past them.
fn pow10(n: u32) -> Option<i128> {
    const POW10: [i128; 29] = {
        let mut t = [1i128; 29];
        let mut i = 1;
        while i < 29 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    POW10.get(n as usize).copied()
}

fn round_half_even(value: i128, unit: i128) -> i128 {
    // Nearly always both fit 64 bits, where one machine division gives both (128 bits take two library calls).
    let (q, r) = match (i64::try_from(value), i64::try_from(unit)) {
        (Ok(v), Ok(u)) if u > 0 => (i128::from(v / u), i128::from(v % u)),
        _ => (value / unit, value % unit),
    };
    let twice = 2 * r.abs();
    let away = twice > unit || (twice == unit && q % 2 != 0);
    if !away {
        q
    } else if value < 0 {
        q - 1
    } else {
        q + 1
    }
}

impl std::fmt::Debug for CentAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    #[test]
    fn a_cent_amount_gives_back_the_decimal_it_was_made_from() {
        use super::CentAmount;
        for v in [
            dec!(0),
            dec!(100),
            dec!(100.5),
            dec!(100.50),
            dec!(-0.01),
            dec!(123456789012.34),
            dec!(-98765.4),
        ] {
            let back = CentAmount::new(v).get();
            assert_eq!(back, v);
            assert_eq!(back.to_string(), v.to_string(), "the scale is kept");
        }
        assert_eq!(
            CentAmount::new(dec!(1.005)).get(),
            dec!(1.00),
            "rounded as round_dp(2)"
        );
        assert_eq!(CentAmount::new(dec!(2.675)).get(), dec!(2.68));
        assert_eq!(CentAmount::default().get(), rust_decimal::Decimal::ZERO);
        for v in [
            dec!(0),
            dec!(100.5),
            dec!(100.50),
            dec!(-0.01),
            dec!(123456789012.34),
        ] {
            let m = i64::try_from(v.mantissa()).unwrap();
            assert_eq!(
                CentAmount::from_parts(m, v.scale()),
                Some(CentAmount::new(v))
            );
        }
        assert_eq!(
            CentAmount::from_parts(1005, 3),
            None,
            "past cents: rounded by new"
        );
        assert_eq!(CentAmount::from_parts(i64::MAX, 0), None, "past 61 bits");
        let huge = CentAmount::new(rust_decimal::Decimal::MAX).get();
        assert_eq!(
            huge,
            rust_decimal::Decimal::new(i64::MAX >> 2, 0),
            "saturates"
        );
        assert_eq!(CentAmount::new(-rust_decimal::Decimal::MAX).get(), -huge);
    }

    use super::*;

    fn cur(s: &str) -> Currency {
        Currency::parse(s).unwrap()
    }

    /// A table with the dollar as base and `rates` for the others.
    fn usd_with(rates: &[(&str, Decimal)]) -> Result<FxTable, ConfigError> {
        FxTable::new(&FxConfig {
            base: cur("USD"),
            rates: rates.iter().map(|(c, r)| (cur(c), *r)).collect(),
        })
    }

    #[test]
    fn balances_remove_zero_entries_and_keep_order() {
        let mut b = Balances::default();
        b.add(cur("USD"), dec!(10));
        b.add(cur("COP"), dec!(5000));
        b.add(cur("USD"), dec!(-10));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![(cur("COP"), dec!(5000))]);
        assert_eq!(b.take(cur("COP"), dec!(7000)), dec!(5000));
        assert!(b.is_empty());
    }

    #[test]
    fn mixed_currencies_sum_in_base() {
        let fx = usd_with(&[("COP", dec!(0.00025)), ("MXN", dec!(0.055))]).unwrap();
        let mut b = Balances::default();
        b.add(cur("COP"), dec!(400000));
        b.add(cur("MXN"), dec!(1000));
        b.add(cur("USD"), dec!(1.5));
        assert_eq!(fx.total_base(&b), dec!(156.50));
    }

    /// Amounts of every scale, with midpoints, carries and signs: a small deterministic spread.
    fn spread() -> Vec<Amount> {
        let mut out = Vec::new();
        for scale in 0..=4u32 {
            for m in [
                0i64,
                1,
                5,
                15,
                25,
                35,
                49,
                50,
                51,
                99,
                125,
                135,
                1005,
                2675,
                12345,
                999_999,
                123_456_789,
                987_654_321_012,
                -5,
                -25,
                -135,
                -2675,
            ] {
                out.push(Amount::from_parts(m, scale).unwrap());
            }
        }
        out
    }

    /// Rates of every shape: below a cent, above one, ten places, a unit worth dozens of dollars.
    const WORLD_RATES: [(&str, Decimal); 4] = [
        ("COP", dec!(0.00025)),
        ("EUR", dec!(1.0843)),
        ("JPY", dec!(0.0067123456)),
        ("CLF", dec!(41.7)),
    ];

    #[test]
    fn sums_to_cents_on_integers_are_the_decimal_sums_rounded() {
        let fx = usd_with(&WORLD_RATES).unwrap();
        let (usd, cop, eur, jpy, clf) =
            (cur("USD"), cur("COP"), cur("EUR"), cur("JPY"), cur("CLF"));
        let unknown = cur("ARS");
        let amounts = spread();
        let by_decimals = |items: &[(Currency, Amount)]| {
            CentAmount::new(
                items
                    .iter()
                    .map(|(c, a)| fx.to_base(*c, a.get()))
                    .sum::<Decimal>()
                    .round_dp(2),
            )
        };
        let mut checked = 0;
        for (i, a) in amounts.iter().enumerate() {
            for b in amounts.iter().skip(i % 7).step_by(5) {
                for items in [
                    vec![(usd, *a)],
                    vec![(usd, *a), (usd, *b)],
                    vec![(usd, *b), (usd, *a), (usd, *b)],
                    vec![(usd, *a), (cop, *b), (usd, *b)],
                    vec![(cop, *a), (eur, *b)],
                    vec![(jpy, *b), (usd, *a), (clf, *a), (eur, *b)],
                    vec![(eur, *a), (unknown, *b), (jpy, *a)],
                    vec![(unknown, *a), (usd, *b)],
                ] {
                    let fast = fx.sum_to_cents(items.iter().copied());
                    let slow = by_decimals(&items);
                    // Flag every other term (from the first or the second): the part is the flagged ones' sum.
                    for parity in [0, 1] {
                        let flagged = items
                            .iter()
                            .enumerate()
                            .map(|(k, (c, a))| (*c, *a, k % 2 == parity));
                        let part: Vec<_> = items.iter().copied().skip(parity).step_by(2).collect();
                        assert_eq!(
                            fx.sum_and_part_to_cents(flagged),
                            (fast, fx.sum_to_cents(part.iter().copied())),
                            "{items:?}"
                        );
                    }
                    assert_eq!(fast, slow, "{items:?}");
                    assert_eq!(
                        fast.get().to_string(),
                        slow.get().to_string(),
                        "the scale too"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000);
        assert_eq!(fx.sum_to_cents([]), CentAmount::new(Decimal::ZERO));
        // Past a decimal's 28 places or 96 bits the products round, and the sum goes on as decimals.
        let tiny = usd_with(&[
            ("XAU", Decimal::new(1, 27)),
            ("XAG", Decimal::new(7_000_000_000_000_001, 15)),
        ])
        .unwrap();
        let huge = Amount::from_parts(9_999_999_999_999_999, 2).unwrap();
        for items in [
            vec![
                (cur("XAU"), Amount::from_parts(123, 2).unwrap()),
                (usd, huge),
            ],
            vec![(usd, huge), (cur("XAG"), huge), (cur("XAG"), huge)],
        ] {
            let slow = CentAmount::new(
                items
                    .iter()
                    .map(|(c, a)| tiny.to_base(*c, a.get()))
                    .sum::<Decimal>()
                    .round_dp(2),
            );
            assert_eq!(tiny.sum_to_cents(items.iter().copied()), slow, "{items:?}");
            let last = items.len() - 1;
            let flagged = items
                .iter()
                .enumerate()
                .map(|(k, (c, a))| (*c, *a, k == last));
            assert_eq!(
                tiny.sum_and_part_to_cents(flagged),
                (slow, tiny.sum_to_cents(items[last..].iter().copied())),
                "{items:?}"
            );
        }
    }

    #[test]
    fn rounding_to_cents_is_the_decimals_round_dp_on_either_width() {
        let big = i128::from(i64::MAX) * 1000;
        for value in (-2_050i128..=2_050).chain([big + 5, -big - 5, big + 15, i128::from(i64::MIN)])
        {
            for scale in 3..=6u32 {
                let unit = pow10(scale - 2).unwrap();
                let by_decimal = Decimal::from_i128_with_scale(value, scale).round_dp(2);
                assert_eq!(
                    Decimal::from_i128_with_scale(round_half_even(value, unit), 2),
                    by_decimal,
                    "{value} at scale {scale}"
                );
            }
        }
        assert_eq!(pow10(28), Some(10i128.pow(28)));
        assert_eq!(pow10(29), None);
    }

    #[test]
    fn floats_from_parts_are_the_decimals_floats_to_the_bit() {
        use rust_decimal::prelude::ToPrimitive;
        for a in spread() {
            let (m, s) = a.parts();
            let want = a.get().to_f64().unwrap();
            assert_eq!(parts_to_f64(m, s).to_bits(), want.to_bits(), "{m}e-{s}");
            assert_eq!(a.to_f64().to_bits(), want.to_bits());
            if s <= 2 {
                let c = CentAmount::from_parts(m, s).unwrap();
                assert_eq!(c.to_f64().to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn floats_in_base_are_the_decimal_products_floats_to_the_bit() {
        use rust_decimal::prelude::ToPrimitive;
        let fx =
            usd_with(&[WORLD_RATES.as_slice(), &[("XAU", Decimal::new(1, 27))]].concat()).unwrap();
        let currencies = ["USD", "COP", "EUR", "JPY", "CLF", "XAU", "ARS"].map(cur);
        let huge = Amount::from_parts(9_999_999_999_999_999, 2).unwrap();
        for a in spread().into_iter().chain([huge]) {
            for c in currencies {
                let want = fx.to_base(c, a.get()).to_f64().unwrap();
                let got = fx.to_base_f64(c, a);
                assert_eq!(got.to_bits(), want.to_bits(), "{a:?} in {c:?}");
            }
        }
    }

    #[test]
    fn non_positive_rate_is_rejected_naming_the_field() {
        let err = usd_with(&[("COP", dec!(0))]).unwrap_err();
        assert!(err.to_string().contains("fx.rates.COP"), "{err}");
    }
}
