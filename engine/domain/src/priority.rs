//! The priority score work queues are ordered by.

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
use crate::debtor::Debtor;
use crate::money::FxTable;

/// The largest weight, in absolute value, a priority term may have.
pub const MAX_WEIGHT: f64 = 1_000_000.0;

/// Weights of the priority score. The score is the weighted sum of the terms; higher is worked first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityWeights {
    /// Per unit of ln(1 + outstanding in the base currency).
    pub debt: f64,
    /// Per day past due.
    pub dpd: f64,
    /// Per unit of credit-limit utilisation (outstanding / limit, capped at 2).
    pub utilization: f64,
    /// Per broken promise.
    pub broken_promises: f64,
    /// Per open dispute (usually negative: disputed debtors wait).
    pub open_disputes: f64,
    /// Per debtor reply awaiting an answer.
    pub pending_replies: f64,
    /// Per unit of risk score / 1000.
    pub risk: f64,
}

impl Default for PriorityWeights {
    // Debt and lateness dominate, as in the seeds ("debt, days past due, credit limit, management status, pending
    // replies and claims"); a dispute pushes the debtor down the queue.
    fn default() -> Self {
        Self {
            debt: 10.0,
            dpd: 1.0,
            utilization: 20.0,
            broken_promises: 15.0,
            open_disputes: -50.0,
            pending_replies: 25.0,
            risk: 30.0,
        }
    }
}

impl PriorityWeights {
    /// Every weight must be a finite number within ±[`MAX_WEIGHT`]: the largest term (days past due, up to 65 535)
    /// times the largest weight, in hundredths, stays far inside the score's `i64`, so queue order always means
    /// something.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let all = [
            ("debt", self.debt),
            ("dpd", self.dpd),
            ("utilization", self.utilization),
            ("broken_promises", self.broken_promises),
            ("open_disputes", self.open_disputes),
            ("pending_replies", self.pending_replies),
            ("risk", self.risk),
        ];
        match all
            .iter()
            .find(|(_, w)| !w.is_finite() || w.abs() > MAX_WEIGHT)
        {
            Some((name, w)) => Err(ConfigError::invalid(
                *name,
                format!("must be a number from -{MAX_WEIGHT} to {MAX_WEIGHT} (got {w})"),
            )),
            None => Ok(()),
        }
    }

    /// The score of `d` (from its freshly derived figures), in hundredths of a point.
    pub fn score(&self, d: &Debtor, fx: &FxTable) -> i64 {
        let debt = d.derived.outstanding_base.to_f64().max(0.0);
        let (util, risk) = match d.profile.as_ref() {
            Some(p) if p.credit_currency == fx.base() => {
                // The base currency's rate is exactly one: the limit as it is.
                (utilization(debt, p.credit_limit.to_f64()), risk_of(p))
            }
            Some(p) => {
                let limit = fx.to_base_f64(p.credit_currency, p.credit_limit);
                (utilization(debt, limit), risk_of(p))
            }
            None => (0.0, 0.0),
        };
        let s = self.debt * debt.ln_1p()
            + self.dpd * f64::from(d.derived.dpd)
            + self.utilization * util
            + self.broken_promises * f64::from(d.history.promises_broken)
            + self.open_disputes * d.cold().disputes.len() as f64
            + self.pending_replies * f64::from(d.status().pending_replies)
            + self.risk * risk;
        (s * 100.0).round() as i64
    }

    /// The key work queues are ordered by (highest first): the debtor's score with days past due counted from its
    /// oldest unpaid due date to a fixed day (the start of the calendar) instead of to the day it was last
    /// evaluated. The DPD term is the only one that moves with time alone, and it moves alike for every debtor, so
    /// this key keeps the order by current score without re-evaluating anyone when a day passes: two debtors'
    /// keys compare as their scores would if both were evaluated now. Before the due date the days count negative
    /// (a debtor due tomorrow ranks below one due today, other terms equal). Exact for whole-number DPD weights
    /// times 100; otherwise to the hundredth of a point.
    pub fn queue_rank(&self, d: &Debtor) -> i64 {
        let Some(due) = d.oldest_unpaid_due() else {
            return d.derived.priority;
        };
        let evaluated = i64::from(due.num_days_from_ce()) + i64::from(d.derived.dpd);
        d.derived.priority - (self.dpd * 100.0 * evaluated as f64).round() as i64
    }
}

/// Debt over credit limit, capped at 2 (none without a limit).
fn utilization(debt: f64, limit: f64) -> f64 {
    if limit > 0.0 {
        (debt / limit).min(2.0)
    } else {
        0.0
    }
}

/// The profile's risk score as a fraction.
fn risk_of(p: &crate::event::Profile) -> f64 {
    f64::from(p.risk_score) / 1000.0
}
