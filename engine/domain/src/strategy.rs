//! Strategies: treatment paths of steps at offsets from the due date or stage entry, plus event-driven steps.

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
use crate::debtor::Debtor;
use crate::ids::Channel;
use crate::segment::Segmentation;
use crate::stage::Stage;
use crate::time::{Ts, local_instant};

/// Most steps one strategy may have (the cursor is a 64-bit mask).
pub const MAX_STEPS: usize = 64;

/// One strategy (treatment path).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Unique id; appears in every action's reason.
    pub id: String,
    /// Segments it applies to; empty: any.
    #[serde(default)]
    pub segments: Vec<String>,
    /// Stages it applies to; empty: any.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Scheduled steps.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// Action when a promise to pay breaks (usually a call).
    pub on_broken_promise: Option<EventStepConfig>,
    /// Action when the debt is paid in full (an optional thank-you).
    pub on_paid_in_full: Option<EventStepConfig>,
    /// Champion/challenger: challenger arms, each taking `share` percent of the debtors this strategy applies to,
    /// chosen by a stable hash of the debtor id (salted with the strategy id, so experiments are independent).
    /// The remaining debtors follow the steps above: the `champion` arm.
    #[serde(default)]
    pub arms: Vec<ArmConfig>,
    /// What happens to steps that fell due while contact was blocked (a quiet period, a hold, a cap, a window),
    /// when contact opens again: `latest` (the default) sends only the latest per channel and drops the others as
    /// `superseded`; `spaced` sends them one by one, each at least the channel's minimum gap after the previous.
    #[serde(default)]
    pub catch_up: CatchUp,
}

/// How deferred actions released at the same instant on one channel go out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Only the latest per channel; the others are dropped as `superseded` (audited).
    #[default]
    Latest,
    /// One by one, each at least the channel's minimum gap after the previous.
    Spaced,
}

/// A challenger arm of a strategy: its own steps for a share of the strategy's debtors.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    /// Name, unique within the strategy and not `champion`; carried by every action and audit record.
    pub name: String,
    /// Percentage of the strategy's debtors (0.01 to 100, two decimals; the arms' total at most 100).
    pub share: f64,
    /// Scheduled steps.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// Action when a promise to pay breaks.
    pub on_broken_promise: Option<EventStepConfig>,
    /// Action when the debt is paid in full.
    pub on_paid_in_full: Option<EventStepConfig>,
}

/// The arm of a strategy without challengers, and of the debtors no challenger takes.
pub const CHAMPION: &str = "champion";

/// What a step's day offset counts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    /// The oldest unpaid due date.
    #[default]
    Due,
    /// The day the debtor entered its current stage.
    StageEntry,
}

/// A scheduled step.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Unique within the strategy.
    pub id: String,
    /// Channel.
    pub channel: Channel,
    /// Template.
    pub template: String,
    /// Day offset from the anchor (`-3` is three days before the due date).
    pub day: i32,
    /// The anchor.
    #[serde(default)]
    pub from: AnchorKind,
    /// Local time of day, `HH:MM` (default 09:00: inside every jurisdiction's window).
    #[serde(default = "default_at")]
    pub at: String,
}

fn default_at() -> String {
    "09:00".to_string()
}

/// An event-driven step.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventStepConfig {
    /// Channel.
    pub channel: Channel,
    /// Template.
    pub template: String,
}

/// A compiled step.
#[derive(Clone, Debug)]
pub struct Step {
    /// Id.
    pub id: CompactString,
    /// Channel.
    pub channel: Channel,
    /// Template.
    pub template: CompactString,
    day: i32,
    /// What the day offset counts from.
    pub from: AnchorKind,
    at: NaiveTime,
    /// `strategy/<strategy id>/<step id>`, the rule its decisions name.
    pub rule: CompactString,
}

/// A compiled event-driven step.
#[derive(Clone, Debug)]
pub struct EventStep {
    /// Channel.
    pub channel: Channel,
    /// Template.
    pub template: CompactString,
}

/// A compiled strategy (one arm of it: a strategy with challengers compiles to one entry per arm).
#[derive(Clone, Debug)]
pub struct Strategy {
    /// Id.
    pub id: CompactString,
    /// The arm (`champion` unless a challenger).
    pub arm: CompactString,
    /// For the champion entry: the challengers, as (upper bound in basis points, exclusive; list position).
    challengers: Vec<(u32, usize)>,
    /// Whether this entry is a challenger (selected only through its champion).
    is_challenger: bool,
    segments: Vec<u16>,
    stages: u8,
    /// Scheduled steps.
    pub steps: Vec<Step>,
    /// On broken promise.
    pub on_broken_promise: Option<EventStep>,
    /// On paid in full.
    pub on_paid_in_full: Option<EventStep>,
    /// What happens to actions released together after a block.
    pub catch_up: CatchUp,
}

/// Steps that fall due for a debtor at an instant.
#[derive(Debug, Default)]
pub struct DueSteps {
    /// The step to take now (the latest one due), if any.
    pub take: Option<usize>,
    /// Earlier due steps superseded by it.
    pub skipped: u32,
    /// The next instant a step of this strategy falls due.
    pub next: Option<Ts>,
}

impl Strategy {
    fn compile(cfg: &StrategyConfig, seg: &Segmentation) -> Result<Self, ConfigError> {
        if cfg.id.is_empty() {
            return Err(ConfigError::invalid("id", "must not be empty"));
        }
        Self::compile_arm(
            cfg,
            CHAMPION,
            &cfg.steps,
            &cfg.on_broken_promise,
            &cfg.on_paid_in_full,
            seg,
        )
    }

    fn compile_arm(
        cfg: &StrategyConfig,
        arm: &str,
        step_cfgs: &[StepConfig],
        on_broken_promise: &Option<EventStepConfig>,
        on_paid_in_full: &Option<EventStepConfig>,
        seg: &Segmentation,
    ) -> Result<Self, ConfigError> {
        if step_cfgs.len() > MAX_STEPS {
            return Err(ConfigError::invalid(
                "steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        let mut segments = Vec::new();
        for s in &cfg.segments {
            segments.push(seg.index(s).ok_or_else(|| {
                ConfigError::invalid("segments", format!("unknown segment `{s}`"))
            })?);
        }
        let mut steps = Vec::with_capacity(step_cfgs.len());
        for (i, s) in step_cfgs.iter().enumerate() {
            let f = |name: &str| format!("steps[{i}].{name}");
            if s.id.is_empty() || step_cfgs[..i].iter().any(|x| x.id == s.id) {
                return Err(ConfigError::invalid(
                    f("id"),
                    "must be non-empty and unique within the strategy",
                ));
            }
            if s.template.is_empty() {
                return Err(ConfigError::invalid(f("template"), "must not be empty"));
            }
            if !(-366..=3660).contains(&s.day) {
                return Err(ConfigError::invalid(f("day"), "must be within -366..=3660"));
            }
            let at = NaiveTime::parse_from_str(&s.at, "%H:%M")
                .map_err(|_| ConfigError::invalid(f("at"), format!("`{}` is not HH:MM", s.at)))?;
            steps.push(Step {
                rule: compact_str::format_compact!("strategy/{}/{}", cfg.id, s.id),
                id: s.id.as_str().into(),
                channel: s.channel,
                template: s.template.as_str().into(),
                day: s.day,
                from: s.from,
                at,
            });
        }
        let ev = |e: &Option<EventStepConfig>| {
            e.as_ref().map(|e| EventStep {
                channel: e.channel,
                template: e.template.as_str().into(),
            })
        };
        Ok(Self {
            id: cfg.id.as_str().into(),
            arm: arm.into(),
            challengers: Vec::new(),
            is_challenger: arm != CHAMPION,
            segments,
            stages: cfg.stages.iter().fold(0, |m, s| m | (1 << *s as u8)),
            steps,
            catch_up: cfg.catch_up,
            on_broken_promise: ev(on_broken_promise),
            on_paid_in_full: ev(on_paid_in_full),
        })
    }

    /// Compiles a strategy's challenger arms and returns them with their share in basis points.
    fn compile_arms(
        cfg: &StrategyConfig,
        seg: &Segmentation,
    ) -> Result<Vec<(u32, Strategy)>, ConfigError> {
        let mut out = Vec::with_capacity(cfg.arms.len());
        let mut total = 0u32;
        for (i, a) in cfg.arms.iter().enumerate() {
            let f = |name: &str| format!("arms[{i}].{name}");
            if a.name.is_empty()
                || a.name == CHAMPION
                || cfg.arms[..i].iter().any(|x| x.name == a.name)
            {
                return Err(ConfigError::invalid(
                    f("name"),
                    "must be non-empty, unique within the strategy and not `champion`",
                ));
            }
            let bps = a.share * 100.0;
            if !(1.0..=10_000.0).contains(&bps) || (bps - bps.round()).abs() > 1e-6 {
                return Err(ConfigError::invalid(
                    f("share"),
                    format!(
                        "{} is not a percentage between 0.01 and 100 with at most two decimals",
                        a.share
                    ),
                ));
            }
            total += bps.round() as u32;
            if total > 10_000 {
                return Err(ConfigError::invalid(
                    f("share"),
                    "the arms' shares add up to more than 100",
                ));
            }
            let arm = Self::compile_arm(
                cfg,
                &a.name,
                &a.steps,
                &a.on_broken_promise,
                &a.on_paid_in_full,
                seg,
            )
            .map_err(|e| e.within(&format!("arms[{i}]")))?;
            out.push((bps.round() as u32, arm));
        }
        Ok(out)
    }

    fn matches(&self, segment: u16, stage: Stage) -> bool {
        !self.is_challenger
            && (self.segments.is_empty() || self.segments.contains(&segment))
            && (self.stages == 0 || self.stages & (1 << stage as u8) != 0)
    }

    /// Whether this strategy runs an experiment (has challengers).
    pub fn has_challengers(&self) -> bool {
        !self.challengers.is_empty()
    }

    /// Bit mask of the steps counted from stage entry.
    pub fn stage_entry_mask(&self) -> u64 {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.from == AnchorKind::StageEntry)
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    /// The instant step `i` falls due, given the anchors.
    pub fn step_instant(
        &self,
        i: usize,
        due: NaiveDate,
        entered: Option<NaiveDate>,
        tz: Tz,
    ) -> Option<Ts> {
        let s = &self.steps[i];
        let anchor = match s.from {
            AnchorKind::Due => due,
            AnchorKind::StageEntry => entered?,
        };
        let date = if s.day >= 0 {
            anchor.checked_add_days(chrono::Days::new(s.day.unsigned_abs().into()))?
        } else {
            anchor.checked_sub_days(chrono::Days::new(s.day.unsigned_abs().into()))?
        };
        Some(local_instant(date, s.at, tz))
    }

    /// Which steps are due at `now` for `d`, given the cursor's `done` mask; marks them done.
    pub fn due_steps(
        &self,
        d: &Debtor,
        done: &mut u64,
        due: NaiveDate,
        tz: Tz,
        now: Ts,
    ) -> DueSteps {
        let mut out = DueSteps::default();
        let mut latest: Option<(Ts, usize)> = None;
        for i in 0..self.steps.len() {
            if *done & (1 << i) != 0 {
                continue;
            }
            let Some(at) = self.step_instant(i, due, d.derived.stage_entered, tz) else {
                continue;
            };
            if at <= now {
                *done |= 1 << i;
                if let Some((_, _)) = latest {
                    out.skipped += 1;
                }
                if latest.is_none_or(|(t, _)| at >= t) {
                    latest = Some((at, i));
                }
            } else {
                out.next = Some(out.next.map_or(at, |n: Ts| n.min(at)));
            }
        }
        out.take = latest.map(|(_, i)| i);
        out
    }
}

/// Every compiled strategy, in configuration order (the first that matches is in force).
#[derive(Clone, Debug, Default)]
pub struct Strategies {
    list: Vec<Strategy>,
}

impl Strategies {
    /// Validates against the segments and compiles.
    pub fn new(cfgs: &[StrategyConfig], seg: &Segmentation) -> Result<Self, ConfigError> {
        let mut list = Vec::with_capacity(cfgs.len());
        for (i, c) in cfgs.iter().enumerate() {
            if cfgs[..i].iter().any(|x| x.id == c.id) {
                return Err(ConfigError::invalid(
                    format!("strategies[{i}].id"),
                    format!("duplicate strategy id `{}`", c.id),
                ));
            }
            let within = |e: ConfigError| e.within(&format!("strategies[{i}]"));
            let champion = Strategy::compile(c, seg).map_err(within)?;
            let arms = Strategy::compile_arms(c, seg).map_err(within)?;
            let at = list.len();
            list.push(champion);
            let mut upper = 0;
            for (bps, arm) in arms {
                upper += bps;
                let pos = list.len();
                list[at].challengers.push((upper, pos));
                list.push(arm);
            }
        }
        if list.len() >= usize::from(u16::MAX) {
            return Err(ConfigError::invalid(
                "strategies",
                "too many strategies and arms",
            ));
        }
        Ok(Self { list })
    }

    /// The champion entry of the strategy with id `id`.
    pub fn by_id(&self, id: &str) -> Option<&Strategy> {
        self.list.iter().find(|s| s.id == id)
    }

    /// The strategy (arm) in force for a debtor of a segment and stage: its 1-based index (0: none) and itself.
    pub fn select(&self, segment: u16, stage: Stage, debtor: &str) -> (u16, Option<&Strategy>) {
        let Some(i) = self.list.iter().position(|s| s.matches(segment, stage)) else {
            return (0, None);
        };
        let champion = &self.list[i];
        let mut chosen = i;
        if champion.has_challengers() {
            let b = bucket(&champion.id, debtor);
            if let Some((_, pos)) = champion.challengers.iter().find(|(upper, _)| b < *upper) {
                chosen = *pos;
            }
        }
        ((chosen + 1) as u16, Some(&self.list[chosen]))
    }

    /// Every compiled entry (arms included), in index order (index = position + 1).
    pub fn iter(&self) -> impl Iterator<Item = &Strategy> {
        self.list.iter()
    }

    /// The strategy with 1-based index `i`.
    pub fn get(&self, i: u16) -> Option<&Strategy> {
        (i as usize).checked_sub(1).and_then(|i| self.list.get(i))
    }
}

/// A debtor's experiment bucket for a strategy, 0..10 000: stable across runs, versions and machines (XXH3 is a
/// fixed algorithm), salted with the strategy id so that two experiments split debtors independently.
pub fn bucket(strategy: &str, debtor: &str) -> u32 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(strategy.as_bytes());
    h.update(&[0]);
    h.update(debtor.as_bytes());
    (h.digest() % 10_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn with_arms(arms: Vec<ArmConfig>) -> Result<crate::engine::Engine, ConfigError> {
        let mut cfg = testkit::engine_config();
        cfg.strategies[0].arms = arms;
        crate::engine::Engine::new(&cfg, &testkit::policies(), &testkit::calendars())
    }

    fn arm(name: &str, share: f64) -> ArmConfig {
        ArmConfig {
            name: name.into(),
            share,
            steps: vec![StepConfig {
                id: "call-d1".into(),
                channel: Channel::Dialer,
                template: "t".into(),
                day: 1,
                from: AnchorKind::Due,
                at: "09:00".into(),
            }],
            on_broken_promise: None,
            on_paid_in_full: None,
        }
    }

    #[test]
    fn arms_split_debtors_by_share_stably_and_independently_per_strategy() {
        let e = with_arms(vec![arm("calls", 30.0), arm("tiny", 0.5)]).unwrap();
        let champion = &e.strategies.list[0];
        let (seg, stage) = (champion.segments.first().copied().unwrap_or(0), {
            Stage::ALL
                .into_iter()
                .find(|s| champion.stages == 0 || champion.stages & (1 << *s as u8) != 0)
                .unwrap()
        });
        let mut counts = std::collections::BTreeMap::<&str, u32>::new();
        let n = 20_000;
        for i in 0..n {
            let id = format!("D{i:07}");
            let (idx, s) = e.strategies.select(seg, stage, &id);
            let s = s.unwrap();
            assert_eq!(s.id, champion.id);
            assert_eq!(e.strategies.select(seg, stage, &id).0, idx, "stable");
            *counts.entry(s.arm.as_str()).or_default() += 1;
        }
        let share = |a: &str| f64::from(counts[a]) / f64::from(n) * 100.0;
        assert!((share("calls") - 30.0).abs() < 1.5, "{counts:?}");
        assert!((share("tiny") - 0.5).abs() < 0.3, "{counts:?}");
        assert!((share(CHAMPION) - 69.5).abs() < 1.5, "{counts:?}");
        // Another strategy's salt: being in one experiment's 30 % says nothing about another's.
        let both = (0..n)
            .filter(|i| {
                let id = format!("D{i:07}");
                bucket("a", &id) < 3_000 && bucket("b", &id) < 3_000
            })
            .count();
        assert!((both as f64 / f64::from(n) - 0.09).abs() < 0.015, "{both}");
    }

    #[test]
    fn bad_arms_name_the_field() {
        for (arms, field) in [
            (vec![arm("x", 0.0)], "strategies[0].arms[0].share"),
            (vec![arm("x", 33.333)], "strategies[0].arms[0].share"),
            (
                vec![arm("x", 60.0), arm("y", 50.0)],
                "strategies[0].arms[1].share",
            ),
            (vec![arm("champion", 10.0)], "strategies[0].arms[0].name"),
            (
                vec![arm("x", 10.0), arm("x", 10.0)],
                "strategies[0].arms[1].name",
            ),
        ] {
            let e = with_arms(arms).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
