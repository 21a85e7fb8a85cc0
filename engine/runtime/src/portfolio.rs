//! Portfolio figures: counts and amounts by bucket, stage, segment and currency.

use std::collections::BTreeMap;

use mora_domain::money::CentAmount;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A count of debtors and the amount they owe (base currency unless keyed by currency).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Debtors.
    pub count: u64,
    /// Amount outstanding.
    pub amount: Decimal,
}

impl Tally {
    pub(crate) fn add(&mut self, amount: Decimal) {
        self.count += 1;
        self.amount += amount;
    }

    fn merge(&mut self, o: &Tally) {
        self.count += o.count;
        self.amount += o.amount;
    }
}

/// A [`Tally`] being counted: amounts at cents summed as integers (a decimal addition per debtor was most of a
/// portfolio's walk), giving at the end the very decimal the additions would have (the largest scale added,
/// exactly).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CentSum {
    count: u64,
    cents: i128,
    scale: u32,
}

impl CentSum {
    /// Counts a debtor owing `amount`.
    pub(crate) fn add(&mut self, amount: CentAmount) {
        self.count += 1;
        self.add_amount(amount);
    }

    /// Adds `amount` without counting a debtor.
    pub(crate) fn add_amount(&mut self, amount: CentAmount) {
        let (mantissa, scale) = amount.parts();
        self.cents += i128::from(mantissa) * 10i128.pow(2 - scale);
        self.scale = self.scale.max(scale);
    }

    /// The sum as a decimal, at the largest scale added (as decimal additions from zero leave it).
    pub(crate) fn amount(&self) -> Decimal {
        Decimal::from_i128_with_scale(self.cents / 10i128.pow(2 - self.scale), self.scale)
    }

    /// The count and the sum.
    pub(crate) fn tally(&self) -> Tally {
        Tally {
            count: self.count,
            amount: self.amount(),
        }
    }
}

/// A partition's [`Portfolio`] being counted, debtor by debtor.
#[derive(Debug, Default)]
pub(crate) struct PortfolioTally {
    debtors: u64,
    owing: u64,
    outstanding: CentSum,
    overdue: CentSum,
    by_bucket: BTreeMap<u8, CentSum>,
    by_stage: BTreeMap<&'static str, CentSum>,
    by_segment: BTreeMap<u16, CentSum>,
    by_currency: BTreeMap<mora_domain::ids::Currency, Tally>,
}

impl PortfolioTally {
    /// Counts `d`.
    pub(crate) fn add(&mut self, d: &mora_domain::debtor::Debtor) {
        self.debtors += 1;
        if !d.owes() {
            return;
        }
        let dv = &d.derived;
        self.owing += 1;
        self.outstanding.add_amount(dv.outstanding_base);
        self.overdue.add_amount(dv.overdue_base);
        self.by_bucket
            .entry(dv.bucket)
            .or_default()
            .add(dv.outstanding_base);
        self.by_stage
            .entry(dv.stage.as_str())
            .or_default()
            .add(dv.outstanding_base);
        self.by_segment
            .entry(dv.segment)
            .or_default()
            .add(dv.outstanding_base);
        for (c, amount) in d.outstanding().iter() {
            self.by_currency.entry(c).or_default().add(amount);
        }
    }

    /// The figures, buckets and segments named by `engine`.
    pub(crate) fn finish(self, engine: &mora_domain::engine::Engine) -> Portfolio {
        let name = |names: &[String], i: usize| names.get(i).cloned().unwrap_or_else(|| "?".into());
        Portfolio {
            debtors: self.debtors,
            owing: self.owing,
            outstanding_base: self.outstanding.amount(),
            overdue_base: self.overdue.amount(),
            by_bucket: self
                .by_bucket
                .into_iter()
                .map(|(b, t)| (name(engine.aging.bucket_names(), b as usize), t.tally()))
                .collect(),
            by_stage: self
                .by_stage
                .into_iter()
                .map(|(s, t)| (s.to_string(), t.tally()))
                .collect(),
            by_segment: self
                .by_segment
                .into_iter()
                .map(|(i, t)| (name(engine.segmentation.names(), i as usize), t.tally()))
                .collect(),
            by_currency: self
                .by_currency
                .into_iter()
                .map(|(c, t)| (c.to_string(), t))
                .collect(),
        }
    }
}

/// The portfolio of one partition, or of several merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portfolio {
    /// Debtors known.
    pub debtors: u64,
    /// Debtors owing anything.
    pub owing: u64,
    /// Outstanding in the base currency.
    pub outstanding_base: Decimal,
    /// Overdue in the base currency.
    pub overdue_base: Decimal,
    /// By aging bucket (debtors owing anything).
    pub by_bucket: BTreeMap<String, Tally>,
    /// By stage (debtors owing anything).
    pub by_stage: BTreeMap<String, Tally>,
    /// By segment (debtors owing anything).
    pub by_segment: BTreeMap<String, Tally>,
    /// Outstanding by currency, in that currency.
    pub by_currency: BTreeMap<String, Tally>,
}

impl Portfolio {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Portfolio) {
        self.debtors += other.debtors;
        self.owing += other.owing;
        self.outstanding_base += other.outstanding_base;
        self.overdue_base += other.overdue_base;
        for (mine, theirs) in [
            (&mut self.by_bucket, &other.by_bucket),
            (&mut self.by_stage, &other.by_stage),
            (&mut self.by_segment, &other.by_segment),
            (&mut self.by_currency, &other.by_currency),
        ] {
            for (k, v) in theirs {
                mine.entry(k.clone()).or_default().merge(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    /// The integer sum gives the decimal that adding the same amounts from zero gives, scale included (`2.50`, not
    /// `2.5`), for amounts of every scale a cent amount holds, negative ones and none.
    #[test]
    fn a_cent_sum_is_the_decimal_sum_to_the_scale() {
        let cases: &[&[&str]] = &[
            &[],
            &["100"],
            &["100", "0.5"],
            &["1.50", "1"],
            &["1.5", "0.25", "-3"],
            &["-0.10", "0.10"],
            &["7", "8", "9"],
            &["23058430092136.93", "1", "0.1"],
        ];
        for amounts in cases {
            let mut sum = CentSum::default();
            let mut decimal = Decimal::ZERO;
            for a in *amounts {
                let v = Decimal::from_str(a).unwrap();
                sum.add(CentAmount::new(v));
                decimal += v;
            }
            let got = sum.tally();
            assert_eq!(got.count, amounts.len() as u64, "{amounts:?}");
            assert_eq!(got.amount.to_string(), decimal.to_string(), "{amounts:?}");
            assert_eq!(got.amount.scale(), decimal.scale(), "{amounts:?}");
        }
    }
}
