//! How amounts and dates serialise: as text in human-readable formats (JSON Lines, the API, configuration) and as
//! integers in binary ones (the state store). Use them with `#[serde(with = "...")]` on a field.
//!
//! Binary decoders also accept the text form, which is how MessagePack rows written before the state store's
//! format 2 hold amounts and dates (MessagePack is self-describing: its decoder hands over whatever was written).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in a binary format: `(flags, low 64 bits, high 32 bits)` of its 96-bit magnitude, `flags` holding the
/// scale (0-28) and the sign (bit 7). In a varint encoding (the state store's) a typical amount takes 5 or 6 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub(crate) struct AmountForm(pub(crate) Decimal);

const NEGATIVE: u8 = 0x80;

impl Serialize for AmountForm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return Serialize::serialize(&self.0, s);
        }
        let magnitude = self.0.mantissa().unsigned_abs();
        let sign = if self.0.is_sign_negative() {
            NEGATIVE
        } else {
            0
        };
        let scale = u8::try_from(self.0.scale()).unwrap_or(0); // a Decimal's scale is at most 28
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&(scale | sign))?;
        t.serialize_element(&(magnitude as u64))?;
        t.serialize_element(&((magnitude >> 64) as u32))?;
        t.end()
    }
}

struct AmountVisitor;

impl<'de> Visitor<'de> for AmountVisitor {
    type Value = AmountForm;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount: (flags, low, high) or a decimal string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AmountForm, A::Error> {
        let missing = || de::Error::custom("an amount needs flags, low and high parts");
        let flags: u8 = seq.next_element()?.ok_or_else(missing)?;
        let low: u64 = seq.next_element()?.ok_or_else(missing)?;
        let high: u32 = seq.next_element()?.ok_or_else(missing)?;
        let magnitude = (i128::from(high) << 64) | i128::from(low);
        let mantissa = if flags & NEGATIVE != 0 {
            -magnitude
        } else {
            magnitude
        };
        Decimal::try_from_i128_with_scale(mantissa, u32::from(flags & !NEGATIVE))
            .map(AmountForm)
            .map_err(de::Error::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AmountForm, E> {
        Decimal::from_str(v)
            .or_else(|_| Decimal::from_scientific(v))
            .map(AmountForm)
            .map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<AmountForm, E> {
        let s = std::str::from_utf8(v).map_err(E::custom)?;
        self.visit_str(s)
    }
}

impl<'de> Deserialize<'de> for AmountForm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            <Decimal as Deserialize>::deserialize(d).map(AmountForm)
        } else {
            d.deserialize_tuple(3, AmountVisitor)
        }
    }
}

/// A date in a binary format: days since 0001-01-01 of the proleptic Gregorian calendar (day 1).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub(crate) struct Day(pub(crate) NaiveDate);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            Serialize::serialize(&self.0, s)
        } else {
            use chrono::Datelike;
            // A one-element tuple rather than a bare integer: MessagePack's decoder hands a tuple request whatever
            // was written (the text of format 1), an integer request only an integer. Varint formats add nothing.
            let mut t = s.serialize_tuple(1)?;
            t.serialize_element(&self.0.num_days_from_ce())?;
            t.end()
        }
    }
}

struct DayVisitor;

impl<'de> Visitor<'de> for DayVisitor {
    type Value = Day;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date: (days from the common era) or YYYY-MM-DD")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Day, E> {
        i32::try_from(v)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .map(Day)
            .ok_or_else(|| E::custom(format!("day {v} is out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Day, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Day, A::Error> {
        let day: i32 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a date needs its day number"))?;
        self.visit_i64(i64::from(day))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Day, E> {
        NaiveDate::from_str(v).map(Day).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Day, E> {
        let s = std::str::from_utf8(v).map_err(E::custom)?;
        self.visit_str(s)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            NaiveDate::deserialize(d).map(Day)
        } else {
            d.deserialize_tuple(1, DayVisitor)
        }
    }
}

/// `#[serde(with = "crate::serde_forms::amount")]` on a `Decimal`.
pub mod amount {
    use super::*;

    /// Serialises `v` as text or integers, by format.
    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        AmountForm(*v).serialize(s)
    }

    /// Reads either form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        AmountForm::deserialize(d).map(|a| a.0)
    }
}

/// `#[serde(with = "crate::serde_forms::cent_amount")]` on a [`crate::money::CentAmount`]: the same forms as
/// [`amount`].
pub mod cent_amount {
    use super::*;
    use crate::money::CentAmount;

    /// Serialises `v` as text or integers, by format.
    pub fn serialize<S: Serializer>(v: &CentAmount, s: S) -> Result<S::Ok, S::Error> {
        AmountForm(v.get()).serialize(s)
    }

    /// Reads either form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CentAmount, D::Error> {
        AmountForm::deserialize(d).map(|a| CentAmount::new(a.0))
    }
}

/// `#[serde(with = "crate::serde_forms::never_as_none")]` on a [`Ts`](crate::time::Ts) where `Ts::MAX` means
/// never: serialised as an `Option<Ts>`, `None` for never.
pub mod never_as_none {
    use super::*;
    use crate::time::Ts;

    /// Serialises `v` as an optional instant.
    pub fn serialize<S: Serializer>(v: &Ts, s: S) -> Result<S::Ok, S::Error> {
        (*v != Ts::MAX).then_some(*v).serialize(s)
    }

    /// Reads an optional instant.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        Option::<Ts>::deserialize(d).map(|t| t.unwrap_or(Ts::MAX))
    }
}

/// `#[serde(with = "crate::serde_forms::date")]` on a `NaiveDate`.
pub mod date {
    use super::*;

    /// Serialises `v` as text or a day number, by format.
    pub fn serialize<S: Serializer>(v: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        Day(*v).serialize(s)
    }

    /// Reads either form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        Day::deserialize(d).map(|a| a.0)
    }
}

/// `#[serde(with = "crate::serde_forms::opt_date")]` on an `Option<NaiveDate>`.
pub mod opt_date {
    use super::*;

    /// Serialises `v` as text or a day number, by format.
    pub fn serialize<S: Serializer>(v: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Day).serialize(s)
    }

    /// Reads either form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        Ok(Option::<Day>::deserialize(d)?.map(|a| a.0))
    }
}

/// `#[serde(with = "crate::serde_forms::allocations")]` on a `Vec<(CompactString, Decimal)>`.
pub mod allocations {
    use super::*;

    /// Serialises each amount as text or integers, by format.
    pub fn serialize<S: Serializer>(
        v: &[(CompactString, Decimal)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(k, a)| (k, AmountForm(*a))))
    }

    /// Reads either form.
    pub fn deserialize<'de, D: Deserializer<'de>, C: FromIterator<(CompactString, Decimal)>>(
        d: D,
    ) -> Result<C, D::Error> {
        let v = Vec::<(CompactString, AmountForm)>::deserialize(d)?;
        Ok(v.into_iter().map(|(k, a)| (k, a.0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn amounts_keep_their_scale_and_sign_in_every_form() {
        for v in [
            dec!(0),
            dec!(400000.50),
            dec!(-12.345),
            dec!(79228162514264337593543950335),
            dec!(-0.0000000000000000000000000001),
        ] {
            let json = serde_json::to_string(&AmountForm(v)).unwrap();
            let back: AmountForm = serde_json::from_str(&json).unwrap();
            assert_eq!(back.0.to_string(), v.to_string(), "{json}");
            let bin = postcard::to_stdvec(&AmountForm(v)).unwrap();
            let back: AmountForm = postcard::from_bytes(&bin).unwrap();
            assert_eq!(back.0.to_string(), v.to_string());
            // MessagePack rows of format 1 hold the amount as text.
            let legacy = rmp_serde::to_vec(&v).unwrap();
            let back: AmountForm = rmp_serde::from_slice(&legacy).unwrap();
            assert_eq!(back.0.to_string(), v.to_string());
        }
        let typical = postcard::to_stdvec(&AmountForm(dec!(400000.50))).unwrap();
        assert_eq!(typical.len(), 6, "{typical:?}");
    }

    #[test]
    fn dates_keep_their_day_in_every_form() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let bin = postcard::to_stdvec(&Day(d)).unwrap();
        assert_eq!(postcard::from_bytes::<Day>(&bin).unwrap().0, d);
        assert_eq!(bin.len(), 3);
        let legacy = rmp_serde::to_vec(&d).unwrap();
        assert_eq!(rmp_serde::from_slice::<Day>(&legacy).unwrap().0, d);
        assert_eq!(serde_json::to_string(&Day(d)).unwrap(), "\"2026-03-10\"");
    }

    #[test]
    fn dates_read_day_numbers_and_text() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        assert_eq!(
            DayVisitor.visit_i64::<de::value::Error>(739_685).unwrap().0,
            NaiveDate::from_num_days_from_ce_opt(739_685).unwrap()
        );
        assert_eq!(
            DayVisitor
                .visit_str::<de::value::Error>("2026-03-10")
                .unwrap()
                .0,
            d
        );
        assert!(DayVisitor.visit_i64::<de::value::Error>(i64::MAX).is_err());
    }
}
