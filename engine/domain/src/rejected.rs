//! Why an event is refused, and the checks every fact shares. A refused record goes to the dead-letter topic with
//! the reason; the debtor's state is left as it was.

use compact_str::CompactString;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::amount::Amount;
use crate::ids::Currency;
use crate::money::FxTable;

/// Why an event was refused. The record goes to the dead-letter topic with this reason; state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Rejected {
    /// No FX rate is configured for the currency, so the debt cannot be valued.
    #[error("currency {0} has no configured FX rate")]
    UnknownCurrency(Currency),
    /// An amount that must be positive was zero or negative.
    #[error("field `{0}` must be positive")]
    NonPositive(&'static str),
    /// A reversal named a payment the engine does not hold.
    #[error("payment `{0}` is unknown or too old to reverse")]
    UnknownPayment(CompactString),
    /// An update named an obligation the engine does not hold.
    #[error("obligation `{0}` is unknown")]
    UnknownObligation(CompactString),
    /// A payment plan had no installments.
    #[error("payment plan `{0}` has no installments")]
    EmptyPlan(CompactString),
    /// A field held a value outside its domain.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

pub(crate) fn positive(amount: Decimal, field: &'static str) -> Result<(), Rejected> {
    if amount > Decimal::ZERO {
        Ok(())
    } else {
        Err(Rejected::NonPositive(field))
    }
}

/// A positive amount within what an obligation or a profile holds (see [`Amount`]).
pub(crate) fn positive_amount(v: Decimal, field: &'static str) -> Result<Amount, Rejected> {
    positive(v, field)?;
    bounded(v, field)
}

/// An amount within what an obligation or a profile holds: at most four decimal places (the input schemas' scale)
/// and at most a hundred trillion units.
pub(crate) fn bounded(v: Decimal, field: &'static str) -> Result<Amount, Rejected> {
    Amount::new(v).ok_or(Rejected::Invalid {
        field,
        reason: "must have at most 4 decimal places and at most 100000000000000 units",
    })
}

pub(crate) fn known(fx: &FxTable, c: Currency) -> Result<(), Rejected> {
    if fx.knows(c) {
        Ok(())
    } else {
        Err(Rejected::UnknownCurrency(c))
    }
}
