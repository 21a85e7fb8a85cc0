//! An amount of money with at most four decimal places (the scale the input schemas fix) in eight bytes instead of a
//! decimal's sixteen: what each obligation and each profile of a portfolio of millions holds.
//!
//! It keeps the decimal's mantissa and scale, so [`Amount::get`] gives back the very decimal it was made from
//! (`100` and `100.0000` print as they came). Amounts past [`MAX_UNITS`] or with more than [`MAX_PLACES`] decimal
//! places are refused where they enter (the event's checks name the field), never rounded.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::serde_forms::AmountForm;

/// Decimal places an amount may have: the scale of the input schemas' `decimal(28, 4)`.
pub const MAX_PLACES: u32 = 4;

/// The largest magnitude an amount may have, in units of its currency: a hundred trillion (10^14), beyond any single
/// obligation in any currency (10^14 Indonesian rupiah are about six billion US dollars).
pub const MAX_UNITS: i64 = 100_000_000_000_000;

/// Bits the scale takes below the mantissa.
const SCALE_BITS: u32 = 3;

/// An amount with at most [`MAX_PLACES`] decimal places and at most [`MAX_UNITS`] units in magnitude.
/// Equal and ordered as the decimals they hold (`100 == 100.0000`).
#[derive(Clone, Copy, Default)]
pub struct Amount(i64);

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || self.get() == other.get()
    }
}

impl Eq for Amount {}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Amount {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().cmp(&other.get())
    }
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `v` as an amount, or `None` if it has more decimal places than [`MAX_PLACES`] (once trailing zeros are
    /// dropped) or more units than [`MAX_UNITS`].
    pub fn new(v: Decimal) -> Option<Self> {
        let v = if v.scale() > MAX_PLACES {
            v.normalize()
        } else {
            v
        };
        let m = i64::try_from(v.mantissa()).ok()?;
        Self::from_parts(m, v.scale())
    }

    /// The amount `mantissa × 10^-scale`, if within bounds (the state store's reader builds amounts this way,
    /// without a decimal in between).
    pub fn from_parts(mantissa: i64, scale: u32) -> Option<Self> {
        if scale > MAX_PLACES {
            return None;
        }
        let limit = MAX_UNITS.checked_mul(10_i64.pow(scale))?;
        if mantissa.unsigned_abs() > limit.unsigned_abs() {
            return None;
        }
        Some(Amount(mantissa << SCALE_BITS | i64::from(scale)))
    }

    /// A value the engine computed from amounts already within bounds (a remainder, a corrected balance): sums and
    /// differences of such amounts keep their scale and stay within the amounts they came from. Out of bounds
    /// (a bug), it is rounded and clamped rather than wrapped.
    pub(crate) fn of(v: Decimal) -> Self {
        Self::new(v).unwrap_or_else(|| {
            debug_assert!(false, "amount {v} out of bounds");
            let max = Decimal::from(MAX_UNITS);
            Self::new(v.round_dp(MAX_PLACES).clamp(-max, max)).unwrap_or_default()
        })
    }

    /// The decimal it holds.
    pub fn get(self) -> Decimal {
        Decimal::new(
            self.0 >> SCALE_BITS,
            (self.0 & ((1 << SCALE_BITS) - 1)) as u32,
        )
    }

    /// Its mantissa and scale.
    pub fn parts(self) -> (i64, u32) {
        (
            self.0 >> SCALE_BITS,
            (self.0 & ((1 << SCALE_BITS) - 1)) as u32,
        )
    }

    /// As `f64`, the very value `Decimal::to_f64` gives for [`Amount::get`].
    pub fn to_f64(self) -> f64 {
        let (m, s) = self.parts();
        crate::money::parts_to_f64(m, s)
    }

    /// Whether it is above zero.
    pub fn is_positive(self) -> bool {
        self.0 >> SCALE_BITS > 0
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

/// The same forms as a decimal amount (`serde_forms::amount`): text in human-readable formats, integers in binary
/// ones.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AmountForm(self.get()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = AmountForm::deserialize(d)?.0;
        Amount::new(v).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "amount {v} has more than {MAX_PLACES} decimal places or more than {MAX_UNITS} units"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn an_amount_gives_back_the_decimal_it_was_made_from() {
        for v in [
            dec!(0),
            dec!(100),
            dec!(100.5),
            dec!(100.5000),
            dec!(-0.0001),
            dec!(123456789012.3456),
            dec!(-98765.4),
            dec!(100000000000000),
            dec!(-100000000000000.0000),
        ] {
            let a = Amount::new(v).unwrap_or_else(|| panic!("{v} fits"));
            assert_eq!(a.get(), v);
            assert_eq!(a.get().to_string(), v.to_string(), "the scale is kept");
            assert_eq!(Amount::from_parts(a.parts().0, a.parts().1), Some(a));
        }
        assert_eq!(Amount::default().get(), Decimal::ZERO);
        assert_eq!(Amount::ZERO, Amount::new(dec!(0)).unwrap());
    }

    #[test]
    fn amounts_past_the_bounds_are_refused_not_rounded() {
        assert_eq!(Amount::new(dec!(1.00001)), None, "five decimal places");
        assert_eq!(Amount::new(dec!(100000000000000.0001)), None);
        assert_eq!(Amount::new(dec!(-100000000000001)), None);
        assert_eq!(Amount::new(Decimal::MAX), None);
        assert_eq!(
            Amount::new(dec!(1.500000)).map(Amount::get),
            Some(dec!(1.5)),
            "trailing zeros past four places are dropped, the value kept"
        );
        assert_eq!(Amount::from_parts(1, 5), None);
        assert_eq!(Amount::from_parts(i64::MAX, 4), None);
    }

    #[test]
    fn comparisons_follow_the_decimal() {
        let a = Amount::new(dec!(10.50)).unwrap();
        assert!(a.is_positive());
        assert!(!Amount::new(dec!(-1)).unwrap().is_positive());
        assert!(!Amount::ZERO.is_positive());
        assert_eq!(a, Amount::new(dec!(10.5)).unwrap(), "equal as decimals");
        assert!(Amount::new(dec!(9.9999)).unwrap() < a);
    }

    #[test]
    fn it_serialises_as_the_decimal_it_holds() {
        let a = Amount::new(dec!(1234.5600)).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"1234.5600\"");
        assert_eq!(serde_json::from_str::<Amount>("\"1234.5600\"").unwrap(), a);
        let err = serde_json::from_str::<Amount>("\"1.000001\"").unwrap_err();
        assert!(err.to_string().contains("decimal places"), "{err}");
    }
}
