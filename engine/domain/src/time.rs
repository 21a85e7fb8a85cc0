//! Instants and local calendars. The core never reads a clock: `now` is always an argument.

use std::cell::Cell;
use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in one day of 24 hours (not a calendar day: see [`local_midnight`]).
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Slots of the per-thread memo of local dates.
const LOCAL_DATE_SLOTS: usize = 16;
/// Slots of the per-thread memo of local wall times resolved to instants.
const LOCAL_INSTANT_SLOTS: usize = 256;

thread_local! {
    /// (instant, zone, its local date) per slot; the zone `u32::MAX` marks an empty slot.
    static LOCAL_DATES: [Cell<(i64, u32, NaiveDate)>; LOCAL_DATE_SLOTS] =
        const { [const { Cell::new((0, u32::MAX, NaiveDate::MIN)) }; LOCAL_DATE_SLOTS] };
    /// (zone, day number, second of the day, instant) per slot; the zone `u32::MAX` marks an empty slot.
    static LOCAL_INSTANTS: [Cell<(u32, i32, u32, i64)>; LOCAL_INSTANT_SLOTS] =
        const { [const { Cell::new((u32::MAX, 0, 0, 0)) }; LOCAL_INSTANT_SLOTS] };
}

/// An instant: milliseconds since the Unix epoch, UTC.
///
/// Serialises as RFC 3339 text (`2026-03-02T14:00:00.000Z`) in human-readable formats such as JSON, and as the
/// integer in binary ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 instant or milliseconds since the epoch")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Ts, E> {
                Ok(Ts(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ts, E> {
                i64::try_from(v).map(Ts).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ts, E> {
                DateTime::parse_from_rfc3339(v)
                    .map(|d| Ts(d.timestamp_millis()))
                    .map_err(E::custom)
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_i64(V)
        }
    }
}

impl Ts {
    /// The earliest representable instant; used as "never happened".
    pub const MIN: Ts = Ts(i64::MIN);
    /// The latest representable instant; used as "never due".
    pub const MAX: Ts = Ts(i64::MAX);

    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }

    /// `self - ms`, saturating.
    pub fn minus_ms(self, ms: i64) -> Ts {
        Ts(self.0.saturating_sub(ms))
    }

    /// The instant as a UTC date-time (`None` outside chrono's range).
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// The instant in the zone `tz`; out-of-range instants clamp to the epoch.
    pub fn in_tz(self, tz: Tz) -> DateTime<Tz> {
        self.to_utc().unwrap_or_default().with_timezone(&tz)
    }

    /// The calendar date in the zone `tz`. Each thread keeps its last answers, one per zone slot: a step of time or
    /// a reload asks it of the same instant for every debtor of a zone, and the zone's rules are a search each.
    pub fn local_date(self, tz: Tz) -> NaiveDate {
        let zone = tz as u32;
        LOCAL_DATES.with(|memo| {
            let slot = &memo[zone as usize % LOCAL_DATE_SLOTS];
            let (at, in_zone, date) = slot.get();
            if at == self.0 && in_zone == zone {
                return date;
            }
            let date = self.in_tz(tz).date_naive();
            slot.set((self.0, zone, date));
            date
        })
    }

    /// Builds an instant from a UTC date-time.
    pub fn from_utc(dt: DateTime<Utc>) -> Ts {
        Ts(dt.timestamp_millis())
    }
}

impl fmt::Debug for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_utc() {
            Some(dt) => write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            None => write!(f, "Ts({})", self.0),
        }
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The first instant of local wall time `date time` in `tz`.
///
/// Wall times skipped by a DST jump (Santiago moves from 00:00 to 01:00) resolve to the first instant after the
/// gap; repeated wall times (clocks going back) resolve to the earlier of the two.
///
/// Each thread keeps recent answers by zone, date and second of the day: a guard's windows and a day's steps ask
/// the same few wall times for every debtor of a zone, and the zone's rules are a search each.
pub fn local_instant(date: NaiveDate, time: NaiveTime, tz: Tz) -> Ts {
    if time.nanosecond() != 0 {
        return resolve_local(date, time, tz);
    }
    let (zone, day, second) = (
        tz as u32,
        date.num_days_from_ce(),
        time.num_seconds_from_midnight(),
    );
    let index = (zone as usize)
        .wrapping_mul(37)
        .wrapping_add((day as usize).wrapping_mul(13))
        .wrapping_add(second as usize / 60)
        % LOCAL_INSTANT_SLOTS;
    LOCAL_INSTANTS.with(|memo| {
        let slot = &memo[index];
        let (in_zone, on_day, at_second, at) = slot.get();
        if (in_zone, on_day, at_second) == (zone, day, second) {
            return Ts(at);
        }
        let at = resolve_local(date, time, tz);
        slot.set((zone, day, second, at.0));
        at
    })
}

/// [`local_instant`] without the memo.
fn resolve_local(date: NaiveDate, time: NaiveTime, tz: Tz) -> Ts {
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Ts(dt.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => Ts(a.timestamp_millis().min(b.timestamp_millis())),
        LocalResult::None => {
            // Inside a DST gap: walk forward a minute at a time (gaps are at most a few hours).
            let mut probe = naive;
            for _ in 0..(6 * 60) {
                probe += chrono::Duration::minutes(1);
                if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
                    return Ts(dt.timestamp_millis());
                }
            }
            Ts(Utc.from_utc_datetime(&naive).timestamp_millis())
        }
    }
}

/// The instant the local calendar day `date` begins in `tz`.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> Ts {
    local_instant(date, NaiveTime::MIN, tz)
}

/// Whole calendar days from `from` to `to` (negative when `to` is earlier).
pub fn days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days()
}

/// Weekday index, Monday = 0.
pub fn weekday_index(d: NaiveDate) -> usize {
    d.weekday().num_days_from_monday() as usize
}

/// Parses `mon`..`sun` (three letters).
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The `named` zones, then 40 more taken `stride` apart from the zone list (so that memo slots are shared).
    fn zones(named: &[&str], stride: u32) -> Vec<Tz> {
        named
            .iter()
            .map(|z| z.parse().unwrap())
            .chain((0..40u32).map(|i| chrono_tz::TZ_VARIANTS[(i * stride) as usize % 400]))
            .collect()
    }

    #[test]
    fn remembered_local_dates_answer_as_the_zone_rules_do() {
        // Zones sharing memo slots, instants repeated and interleaved, around midnights and a DST change.
        let zones = zones(
            &[
                "America/Santiago",
                "America/Bogota",
                "Europe/Madrid",
                "Pacific/Kiritimati",
                "America/Mexico_City",
                "UTC",
            ],
            13,
        );
        let start = crate::testkit::ts("2026-09-05T20:00:00Z").0;
        for round in 0..3 {
            for step in 0..72 {
                let at = Ts(start + step * HOUR_MS + round * 7 * MINUTE_MS);
                for &tz in zones.iter().chain(zones.iter().rev()) {
                    let want = at.in_tz(tz).date_naive();
                    assert_eq!(at.local_date(tz), want, "{at:?} in {tz}");
                    assert_eq!(at.local_date(tz), want, "asked again");
                }
            }
        }
    }

    #[test]
    fn remembered_local_instants_answer_as_the_zone_rules_do() {
        // Zones sharing memo slots, wall times repeated and interleaved, across DST gaps and overlaps, a fraction of a
        // second (not remembered) and a date before the era.
        let zones = zones(
            &[
                "America/Santiago",
                "America/New_York",
                "Europe/Madrid",
                "UTC",
            ],
            11,
        );
        let dates = [
            d(2026, 9, 5),
            d(2026, 9, 6),
            d(2026, 11, 1),
            d(2026, 3, 8),
            d(-3, 1, 1),
        ];
        let times = [
            NaiveTime::MIN,
            NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            NaiveTime::from_hms_milli_opt(8, 0, 0, 250).unwrap(),
            NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
        ];
        for _round in 0..3 {
            for &date in &dates {
                for &time in &times {
                    for &tz in zones.iter().chain(zones.iter().rev()) {
                        let want = resolve_local(date, time, tz);
                        assert_eq!(local_instant(date, time, tz), want, "{date} {time} in {tz}");
                        assert_eq!(local_instant(date, time, tz), want, "asked again");
                    }
                }
            }
        }
    }

    #[test]
    fn santiago_midnight_in_dst_gap_resolves_after_the_gap() {
        // Chile moved clocks from 24:00 to 01:00 on 2026-09-06 (first Sunday of September).
        let tz: Tz = "America/Santiago".parse().unwrap();
        let m = local_midnight(d(2026, 9, 6), tz);
        let local = m.in_tz(tz);
        assert_eq!(local.date_naive(), d(2026, 9, 6));
        assert_eq!(local.time(), NaiveTime::from_hms_opt(1, 0, 0).unwrap());
    }

    #[test]
    fn new_york_fall_back_picks_the_earlier_instant() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let t = local_instant(
            d(2026, 11, 1),
            NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
            tz,
        );
        // 01:30 EDT (UTC-4) is 05:30 UTC; the repeated 01:30 EST would be 06:30 UTC.
        assert_eq!(format!("{t:?}"), "2026-11-01T05:30:00.000Z");
    }

    #[test]
    fn instants_are_text_in_json() {
        let t = Ts(1_772_460_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-03-02T14:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Ts>(&json).unwrap(), t);
        assert_eq!(serde_json::from_str::<Ts>("1772460000123").unwrap(), t);
    }

    #[test]
    fn day_lengths_follow_dst() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let a = local_midnight(d(2026, 3, 8), tz);
        let b = local_midnight(d(2026, 3, 9), tz);
        assert_eq!(b.0 - a.0, 23 * HOUR_MS);
        let bogota: Tz = "America/Bogota".parse().unwrap();
        let a = local_midnight(d(2026, 3, 8), bogota);
        let b = local_midnight(d(2026, 3, 9), bogota);
        assert_eq!(b.0 - a.0, DAY_MS);
    }
}
