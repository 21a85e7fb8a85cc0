//! Portfolio figures: counts and amounts by bucket, stage, segment and currency.

use std::collections::BTreeMap;

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
