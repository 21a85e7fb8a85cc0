//! Compiling policy files: validation, holiday calendars, and merging overlays most-restrictive-wins.

use std::collections::{BTreeMap, BTreeSet};

// foldhash through hashbrown: the guard looks up a policy and a holiday for nearly every action, and SipHash cost
// several times the lookup (these maps are never iterated in an order that matters).
use hashbrown::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use compact_str::CompactString;

use super::config::{
    ConsentConfig, ConsentMode, Counts, HoldKind, HolidayCalendarConfig, PolicyConfig, WindowConfig,
};
use crate::config_error::ConfigError;
use crate::ids::{Channel, ChannelSet};
use crate::time::parse_weekday;

pub(crate) const DAY_MINUTES: u16 = 24 * 60;

/// A compiled frequency cap.
#[derive(Clone, Debug)]
pub(crate) struct Cap {
    pub channels: ChannelSet,
    pub max: u16,
    pub per_ms: i64,
    pub counts: Counts,
}

/// A compiled gap rule.
#[derive(Clone, Debug)]
pub(crate) struct Gap {
    pub channels: ChannelSet,
    pub gap_ms: i64,
}

/// One jurisdiction's compiled policy (overlays already merged in).
#[derive(Clone, Debug)]
pub struct Policy {
    /// Jurisdiction id.
    pub id: String,
    pub(crate) window_channels: ChannelSet,
    pub(crate) blocked_day_channels: ChannelSet,
    /// Allowed minutes `[from, to)` per weekday, Monday first.
    pub(crate) windows: [Vec<(u16, u16)>; 7],
    pub(crate) blocked_weekdays: u8,
    pub(crate) block_holidays: bool,
    pub(crate) holidays: HashSet<NaiveDate>,
    /// Years every calendar of the policy covers; other years are unknown.
    pub(crate) covered_years: Option<BTreeSet<i32>>,
    pub(crate) max_defer_ms: i64,
    pub(crate) caps: Vec<Cap>,
    pub(crate) gaps: Vec<Gap>,
    pub(crate) diversity: Vec<(u8, i64)>,
    pub(crate) quiet: Vec<Gap>,
    pub(crate) consent_mode: ConsentMode,
    pub(crate) consent_channels: ChannelSet,
    pub(crate) holds: BTreeSet<HoldKind>,
    /// The rule its decisions name (`policy/<id>`), and the one of a deferral past the horizon
    /// (`policy/<id>/max_defer`): written once here instead of for every record.
    pub(crate) rule: CompactString,
    pub(crate) rule_beyond_horizon: CompactString,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn direct_or(channels: &[Channel]) -> ChannelSet {
    if channels.is_empty() {
        Channel::ALL
            .into_iter()
            .filter(|c| c.is_direct_contact())
            .collect()
    } else {
        channels.iter().copied().collect()
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn parse_days(s: &str) -> Option<u8> {
    if s == "daily" {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    parse_weekday(a)?.num_days_from_monday(),
                    parse_weekday(b)?.num_days_from_monday(),
                );
                if a > b {
                    return None;
                }
                for d in a..=b {
                    mask |= 1 << d;
                }
            }
            None => mask |= 1 << parse_weekday(part)?.num_days_from_monday(),
        }
    }
    Some(mask)
}

fn compile_windows(ws: &[WindowConfig]) -> Result<[Vec<(u16, u16)>; 7], ConfigError> {
    let mut out: [Vec<(u16, u16)>; 7] = Default::default();
    for (i, w) in ws.iter().enumerate() {
        let f = |name: &str| format!("windows[{i}].{name}");
        let days = parse_days(&w.days).ok_or_else(|| {
            ConfigError::invalid(
                f("days"),
                format!("`{}` is not like `mon-fri`, `sat` or `daily`", w.days),
            )
        })?;
        let from =
            parse_hhmm(&w.from).ok_or_else(|| ConfigError::invalid(f("from"), "expected HH:MM"))?;
        let to = parse_hhmm(&w.to)
            .ok_or_else(|| ConfigError::invalid(f("to"), "expected HH:MM or 24:00"))?;
        if from >= to {
            return Err(ConfigError::invalid(
                f("to"),
                "must be later than `from` (windows do not cross midnight)",
            ));
        }
        for (d, slot) in out.iter_mut().enumerate() {
            if days & (1 << d) != 0 {
                slot.push((from, to));
            }
        }
    }
    for slot in &mut out {
        slot.sort_unstable();
        // Merge overlapping windows so "next opening" search stays simple.
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(slot.len());
        for &(a, b) in slot.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *slot = merged;
    }
    Ok(out)
}

fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if lo < hi {
                out.push((lo, hi));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Every compiled policy, by jurisdiction.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    by_id: HashMap<CompactString, Policy>,
    /// The longest rolling window any rule looks back over (contact marks older than this are pruned).
    pub(crate) longest_lookback_ms: i64,
}

impl Policies {
    /// Validates and compiles policy files and holiday calendars; overlays are merged onto their parents.
    ///
    /// Errors name the policy id and field; the loader adds the file name.
    pub fn new(
        configs: &[PolicyConfig],
        calendars: &[HolidayCalendarConfig],
    ) -> Result<Self, ConfigError> {
        let mut cals: BTreeMap<&str, (HashSet<NaiveDate>, BTreeSet<i32>)> = BTreeMap::new();
        for c in calendars {
            let mut dates = HashSet::new();
            let mut years = BTreeSet::new();
            for (y, ds) in &c.years {
                let year: i32 = y.parse().map_err(|_| {
                    ConfigError::invalid(
                        format!("holidays.{}.years.{y}", c.id),
                        "year keys must be numbers like \"2026\"",
                    )
                })?;
                for d in ds {
                    if d.year() != year {
                        return Err(ConfigError::invalid(
                            format!("holidays.{}.years.{y}", c.id),
                            format!("{d} is not in {year}"),
                        ));
                    }
                    dates.insert(*d);
                }
                years.insert(year);
            }
            if cals.insert(c.id.as_str(), (dates, years)).is_some() {
                return Err(ConfigError::invalid(
                    format!("holidays.{}", c.id),
                    "calendar defined twice",
                ));
            }
        }
        let raw: BTreeMap<&str, &PolicyConfig> =
            configs.iter().map(|p| (p.id.as_str(), p)).collect();
        if raw.len() != configs.len() {
            return Err(ConfigError::invalid(
                "policies",
                "two policy files share an id",
            ));
        }
        let mut by_id = HashMap::new();
        let mut longest = 0i64;
        for p in configs {
            let compiled = compile_chain(p, &raw, &cals, 0)
                .map_err(|e| e.within(&format!("policy {}", p.id)))?;
            for c in &compiled.caps {
                longest = longest.max(c.per_ms);
            }
            for g in compiled.gaps.iter().chain(&compiled.quiet) {
                longest = longest.max(g.gap_ms);
            }
            for (_, per) in &compiled.diversity {
                longest = longest.max(*per);
            }
            by_id.insert(CompactString::from(p.id.as_str()), compiled);
        }
        Ok(Self {
            by_id,
            longest_lookback_ms: longest,
        })
    }

    /// Adds the engine's default gap on each channel of `defaults` to every policy with no gap rule covering it:
    /// each a gap between two attempts on that one channel.
    pub(crate) fn add_default_gaps(&mut self, defaults: &[super::config::GapConfig]) {
        for p in self.by_id.values_mut() {
            for g in defaults {
                let gap_ms = ms(g.gap);
                for &c in &g.channels {
                    if !p.gaps.iter().any(|x| x.channels.contains(c)) {
                        let mut channels = ChannelSet::EMPTY;
                        channels.insert(c);
                        p.gaps.push(Gap { channels, gap_ms });
                        self.longest_lookback_ms = self.longest_lookback_ms.max(gap_ms);
                    }
                }
            }
        }
    }

    /// The longest minimum gap between two attempts on `channel` in `policy` (0: none).
    pub(crate) fn gap_on(policy: &Policy, channel: Channel) -> i64 {
        policy
            .gaps
            .iter()
            .filter(|g| g.channels.contains(channel))
            .map(|g| g.gap_ms)
            .max()
            .unwrap_or(0)
    }

    /// The policy for a debtor in `country` (and `region`, when an overlay exists for it).
    pub fn lookup(&self, country: &str, region: Option<&str>) -> Option<&Policy> {
        if let Some(r) = region {
            let mut key = CompactString::from(country);
            key.push('-');
            key.push_str(r);
            if let Some(p) = self.by_id.get(&key) {
                return Some(p);
            }
        }
        self.by_id.get(country)
    }

    /// Jurisdiction ids, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_id.keys().map(|k| k.as_str()).collect();
        v.sort_unstable();
        v
    }
}

type Calendars<'a> = BTreeMap<&'a str, (HashSet<NaiveDate>, BTreeSet<i32>)>;

fn compile_chain(
    p: &PolicyConfig,
    raw: &BTreeMap<&str, &PolicyConfig>,
    cals: &Calendars<'_>,
    depth: usize,
) -> Result<Policy, ConfigError> {
    if depth > 8 {
        return Err(ConfigError::invalid(
            "extends",
            "overlay chain too deep or circular",
        ));
    }
    let own = compile_one(p, cals, p.extends.is_some())?;
    match &p.extends {
        None => Ok(own),
        Some(parent) => {
            let parent_cfg = raw.get(parent.as_str()).ok_or_else(|| {
                ConfigError::invalid("extends", format!("unknown parent policy `{parent}`"))
            })?;
            let parent = compile_chain(parent_cfg, raw, cals, depth + 1)?;
            Ok(merge(parent, own))
        }
    }
}

/// `blocked_days`: a bit per weekday blocked, and whether public holidays are.
fn compile_blocked_days(days: &[String]) -> Result<(u8, bool), ConfigError> {
    let mut blocked_weekdays = 0u8;
    let mut block_holidays = false;
    for (i, b) in days.iter().enumerate() {
        if b == "holiday" {
            block_holidays = true;
        } else {
            let w = parse_weekday(b).ok_or_else(|| {
                ConfigError::invalid(
                    format!("blocked_days[{i}]"),
                    format!("`{b}` is not a weekday (`sun`) or `holiday`"),
                )
            })?;
            blocked_weekdays |= 1 << w.num_days_from_monday();
        }
    }
    Ok((blocked_weekdays, block_holidays))
}

/// The holidays of every calendar a policy names, and the years all of them cover (`None`: no calendar).
fn compile_holidays(
    names: &[String],
    cals: &Calendars<'_>,
) -> Result<(HashSet<NaiveDate>, Option<BTreeSet<i32>>), ConfigError> {
    let mut holidays = HashSet::new();
    let mut covered: Option<BTreeSet<i32>> = None;
    for (i, c) in names.iter().enumerate() {
        let (dates, years) = cals.get(c.as_str()).ok_or_else(|| {
            ConfigError::invalid(
                format!("holiday_calendars[{i}]"),
                format!("no holiday calendar `{c}`"),
            )
        })?;
        holidays.extend(dates.iter().copied());
        covered = Some(match covered {
            None => years.clone(),
            Some(prev) => prev.intersection(years).copied().collect(),
        });
    }
    Ok((holidays, covered))
}

/// The longest rolling window, gap or deferral a policy may set: a year (every rule in the research is within
/// one; a longer one would keep every contact mark of every debtor for it).
const MAX_POLICY_SPAN: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// Caps and channel-diversity limits must count something over some time; windows, gaps and deferrals stay within
/// [`MAX_POLICY_SPAN`].
fn check_limits(p: &PolicyConfig) -> Result<(), ConfigError> {
    let within = |field: String, d: std::time::Duration| {
        if d > MAX_POLICY_SPAN {
            Err(ConfigError::invalid(
                field,
                format!(
                    "must be at most 366 days (got {})",
                    humantime_serde::re::humantime::format_duration(d)
                ),
            ))
        } else {
            Ok(())
        }
    };
    for (i, c) in p.caps.iter().enumerate() {
        if c.max == 0 || c.per.is_zero() {
            return Err(ConfigError::invalid(
                format!("caps[{i}]"),
                "max and per must be positive (to forbid a channel, leave it out of consent)",
            ));
        }
        within(format!("caps[{i}].per"), c.per)?;
    }
    for (i, d) in p.channel_diversity.iter().enumerate() {
        if d.max == 0 || d.per.is_zero() {
            return Err(ConfigError::invalid(
                format!("channel_diversity[{i}]"),
                "max and per must be positive",
            ));
        }
        within(format!("channel_diversity[{i}].per"), d.per)?;
    }
    for (i, g) in p.min_gaps.iter().enumerate() {
        within(format!("min_gaps[{i}].gap"), g.gap)?;
    }
    for (i, g) in p.quiet_after_conversation.iter().enumerate() {
        within(format!("quiet_after_conversation[{i}].gap"), g.gap)?;
    }
    within("max_defer".into(), p.max_defer)?;
    Ok(())
}

fn compile_one(
    p: &PolicyConfig,
    cals: &Calendars<'_>,
    overlay: bool,
) -> Result<Policy, ConfigError> {
    if p.id.is_empty() {
        return Err(ConfigError::invalid("id", "must not be empty"));
    }
    let windows = compile_windows(&p.windows)?;
    if !overlay && windows.iter().all(Vec::is_empty) && !p.window_channels.is_empty() {
        return Err(ConfigError::invalid(
            "windows",
            "a policy needs at least one window (an overlay may omit them)",
        ));
    }
    let (blocked_weekdays, block_holidays) = compile_blocked_days(&p.blocked_days)?;
    let (holidays, covered) = compile_holidays(&p.holiday_calendars, cals)?;
    if block_holidays && p.holiday_calendars.is_empty() {
        return Err(ConfigError::invalid(
            "blocked_days",
            "`holiday` needs at least one entry in holiday_calendars",
        ));
    }
    check_limits(p)?;
    let gaps = |v: &[super::config::GapConfig]| -> Vec<Gap> {
        v.iter()
            .map(|g| Gap {
                channels: direct_or(&g.channels),
                gap_ms: ms(g.gap),
            })
            .collect()
    };
    Ok(Policy {
        id: p.id.clone(),
        window_channels: p.window_channels.iter().copied().collect(),
        blocked_day_channels: p
            .blocked_day_channels
            .as_ref()
            .unwrap_or(&p.window_channels)
            .iter()
            .copied()
            .collect(),
        windows,
        blocked_weekdays,
        block_holidays,
        holidays,
        covered_years: covered,
        max_defer_ms: ms(p.max_defer),
        caps: p
            .caps
            .iter()
            .map(|c| Cap {
                channels: direct_or(&c.channels),
                max: c.max,
                per_ms: ms(c.per),
                counts: c.counts,
            })
            .collect(),
        gaps: gaps(&p.min_gaps),
        diversity: p
            .channel_diversity
            .iter()
            .map(|d| (d.max, ms(d.per)))
            .collect(),
        quiet: gaps(&p.quiet_after_conversation),
        consent_mode: match (&p.consent, overlay) {
            (Some(c), _) => c.mode,
            (None, true) => ConsentMode::OptOut, // neutral in the merge: the parent's mode stands
            (None, false) => ConsentMode::OptIn,
        },
        consent_channels: match (&p.consent, overlay) {
            (Some(c), _) => c.channels.iter().copied().collect(),
            (None, true) => ChannelSet::EMPTY,
            (None, false) => ConsentConfig::default().channels.into_iter().collect(),
        },
        holds: p.holds.iter().copied().collect(),
        rule: compact_str::format_compact!("policy/{}", p.id),
        rule_beyond_horizon: compact_str::format_compact!("policy/{}/max_defer", p.id),
    })
}

/// Merges an overlay onto its parent; every rule of both applies, so the most restrictive wins.
fn merge(parent: Policy, overlay: Policy) -> Policy {
    let overlay_has_windows = overlay.windows.iter().any(|w| !w.is_empty());
    let mut windows = parent.windows.clone();
    if overlay_has_windows {
        for (d, w) in windows.iter_mut().enumerate() {
            *w = intersect(w, &overlay.windows[d]);
        }
    }
    let union = |a: ChannelSet, b: ChannelSet| a.iter().chain(b.iter()).collect::<ChannelSet>();
    let covered = match (parent.covered_years, overlay.covered_years) {
        (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
        (a, b) => a.or(b),
    };
    Policy {
        id: overlay.id,
        rule: overlay.rule,
        rule_beyond_horizon: overlay.rule_beyond_horizon,
        window_channels: union(parent.window_channels, overlay.window_channels),
        blocked_day_channels: union(parent.blocked_day_channels, overlay.blocked_day_channels),
        windows,
        blocked_weekdays: parent.blocked_weekdays | overlay.blocked_weekdays,
        block_holidays: parent.block_holidays || overlay.block_holidays,
        holidays: parent.holidays.union(&overlay.holidays).copied().collect(),
        covered_years: covered,
        max_defer_ms: parent.max_defer_ms.min(overlay.max_defer_ms),
        caps: parent.caps.into_iter().chain(overlay.caps).collect(),
        gaps: parent.gaps.into_iter().chain(overlay.gaps).collect(),
        diversity: parent
            .diversity
            .into_iter()
            .chain(overlay.diversity)
            .collect(),
        quiet: parent.quiet.into_iter().chain(overlay.quiet).collect(),
        consent_mode: if parent.consent_mode == ConsentMode::OptIn
            || overlay.consent_mode == ConsentMode::OptIn
        {
            ConsentMode::OptIn
        } else {
            ConsentMode::OptOut
        },
        consent_channels: union(parent.consent_channels, overlay.consent_channels),
        holds: parent.holds.union(&overlay.holds).copied().collect(),
    }
}
