//! The decision function: `(state, input, now, configuration) -> (state', actions, audit records)`.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::action::{Action, AuditRecord, DecisionKind};
use crate::aging::{Aging, AgingConfig};
use crate::config_error::ConfigError;
use crate::debtor::Debtor;
use crate::event::Envelope;
use crate::facts::{self, Effects};
use crate::money::{FxConfig, FxTable};
use crate::policy::{GapConfig, HolidayCalendarConfig, Policies, PolicyConfig};
use crate::priority::PriorityWeights;
use crate::queues::{QueueConfig, QueueDefs};
use crate::rejected::Rejected;
use crate::segment::{Segmentation, SegmentationConfig};
use crate::stage::Stage;
use crate::strategy::{Strategies, StrategyConfig};
use crate::time::{Ts, local_midnight};

mod candidates;
mod text;

use candidates::{Candidate, cancel_pending, settle_promises, thank_for_payment};
use compact_str::CompactString;

/// The engine's decision configuration (policies and holiday calendars come from their own files).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Base currency and exchange rates.
    pub fx: FxConfig,
    /// Bucket and stage edges.
    #[serde(default)]
    pub aging: AgingConfig,
    /// Segmentation rules.
    pub segmentation: SegmentationConfig,
    /// Priority weights.
    #[serde(default)]
    pub priority: PriorityWeights,
    /// Work queues.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Strategies, the first matching a debtor's segment and stage in force.
    #[serde(default)]
    pub strategies: Vec<StrategyConfig>,
    /// Contact rules that hold in every jurisdiction unless its policy says more.
    #[serde(default)]
    pub contact: ContactConfig,
}

/// Contact rules of the engine itself, beneath every jurisdiction's policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    /// Minimum time between two attempts on the same channel to one debtor, for each channel listed, where the
    /// debtor's policy has no `min_gaps` rule covering that channel (no collector calls a debtor twice in a few
    /// minutes because two steps fell due together). Default: 4 hours on calls, SMS, WhatsApp and e-mail.
    #[serde(default = "default_min_gaps")]
    pub default_min_gaps: Vec<GapConfig>,
}

fn default_min_gaps() -> Vec<GapConfig> {
    vec![GapConfig {
        channels: vec![
            crate::ids::Channel::Dialer,
            crate::ids::Channel::Sms,
            crate::ids::Channel::Whatsapp,
            crate::ids::Channel::Email,
        ],
        gap: std::time::Duration::from_secs(4 * 3600),
    }]
}

impl Default for ContactConfig {
    fn default() -> Self {
        Self {
            default_min_gaps: default_min_gaps(),
        }
    }
}

/// Longest default gap accepted (a longer one is a cap, and belongs in a policy).
const MAX_DEFAULT_GAP: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

impl ContactConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (i, g) in self.default_min_gaps.iter().enumerate() {
            if g.channels.is_empty() {
                return Err(ConfigError::invalid(
                    format!("contact.default_min_gaps[{i}].channels"),
                    "name at least one channel",
                ));
            }
            if g.gap.is_zero() || g.gap > MAX_DEFAULT_GAP {
                return Err(ConfigError::invalid(
                    format!("contact.default_min_gaps[{i}].gap"),
                    format!(
                        "{} is outside 1s..=7d",
                        humantime_serde::re::humantime::format_duration(g.gap)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The compiled configuration the decision function reads. Immutable; swap a new one in to reload.
#[derive(Clone, Debug)]
pub struct Engine {
    /// FX table.
    pub fx: FxTable,
    /// Aging.
    pub aging: Aging,
    /// Segmentation.
    pub segmentation: Segmentation,
    /// Priority weights.
    pub priority: PriorityWeights,
    /// Work queues.
    pub queues: QueueDefs,
    /// Strategies.
    pub strategies: Strategies,
    /// Jurisdiction policies.
    pub policies: Policies,
}

/// What the decision function is asked to react to.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// An input event.
    Event(&'a Envelope),
    /// Time passed: one of the debtor's timers fell due.
    Wake,
}

/// Output buffers of one or more decisions (reused across calls to avoid allocation).
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    /// Actions to send.
    pub actions: Vec<Action>,
    /// Audit records.
    pub audits: Vec<AuditRecord>,
}

impl Decisions {
    /// Empties both buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.actions.clear();
        self.audits.clear();
    }
}

impl Engine {
    /// Validates and compiles every part, naming the part and field of the first error.
    pub fn new(
        cfg: &EngineConfig,
        policies: &[PolicyConfig],
        calendars: &[HolidayCalendarConfig],
    ) -> Result<Self, ConfigError> {
        let fx = FxTable::new(&cfg.fx)?;
        let aging = Aging::new(&cfg.aging).map_err(|e| e.within("aging"))?;
        let segmentation =
            Segmentation::new(&cfg.segmentation, &aging).map_err(|e| e.within("segmentation"))?;
        cfg.priority.validate().map_err(|e| e.within("priority"))?;
        let queues = QueueDefs::new(&cfg.queues, &segmentation)?;
        let strategies = Strategies::new(&cfg.strategies, &segmentation)?;
        cfg.contact.validate()?;
        let mut policies = Policies::new(policies, calendars)?;
        policies.add_default_gaps(&cfg.contact.default_min_gaps);
        Ok(Self {
            fx,
            aging,
            segmentation,
            priority: cfg.priority.clone(),
            queues,
            strategies,
            policies,
        })
    }

    /// Applies `input` to `d` at `now` and decides. A rejected event leaves `d` unchanged and emits nothing.
    ///
    /// `now` must not go backwards for a debtor; the runtime passes `max(clock, event time)`.
    pub fn process(
        &self,
        d: &mut Debtor,
        input: Input<'_>,
        now: Ts,
        out: &mut Decisions,
    ) -> Result<(), Rejected> {
        let owed_before = d.owes();
        let (effects, cause) = match input {
            Input::Event(ev) => (facts::apply(d, ev, &self.fx, now)?, Some(ev)),
            Input::Wake => (Effects::default(), None),
        };
        let first_new = out.audits.len();
        self.evaluate(d, now, owed_before, effects, cause, out);
        d.release_cold();
        // Records not about an action carry the strategy and arm the debtor is on after the decision.
        if let Some(s) = self.strategies.get(d.cursor.strategy) {
            for r in &mut out.audits[first_new..] {
                if r.arm.is_none() {
                    r.strategy = Some(s.id.clone());
                    r.arm = Some(s.arm.clone());
                }
            }
        }
        // Every record carries the debtor's figures the decision was taken on.
        if out.audits.len() > first_new {
            let at = self.at_decision(d);
            for r in &mut out.audits[first_new..] {
                r.debtor = Some(at.clone());
            }
        }
        Ok(())
    }

    /// The debtor's figures as a decision sees them (bucket and segment by name).
    fn at_decision(&self, d: &Debtor) -> crate::action::DebtorAtDecision {
        let name = |names: &[String], i: usize| {
            names
                .get(i)
                .map_or_else(|| "?".into(), |n| n.as_str().into())
        };
        crate::action::DebtorAtDecision {
            dpd: d.derived.dpd,
            bucket: name(self.aging.bucket_names(), usize::from(d.derived.bucket)),
            stage: d.derived.stage.as_str().into(),
            segment: name(self.segmentation.names(), usize::from(d.derived.segment)),
            priority: d.derived.priority,
        }
    }

    /// Re-derives segment, priority and queues with the current configuration (after a reload), deciding nothing.
    pub fn reclassify(&self, d: &mut Debtor, now: Ts) {
        let tz = tz_of(d);
        let mut sink = Decisions::default();
        self.derive(d, now, tz, &mut sink);
    }

    /// The decision half of processing, in phases: promises settled, the debtor re-derived, queued actions
    /// cancelled or released, new candidates (event-driven and scheduled) built and routed through the guard, old
    /// contact marks forgotten, and the next wake set.
    fn evaluate(
        &self,
        d: &mut Debtor,
        now: Ts,
        owed_before: bool,
        effects: Effects,
        cause: Option<&Envelope>,
        out: &mut Decisions,
    ) {
        let tz = tz_of(d);
        let mut candidates: Vec<Candidate> = Vec::new();
        // The strategy in force when the event arrived answers for it, even if re-deriving moves the debtor on.
        let in_force = self.strategies.get(d.cursor.strategy);
        settle_promises(
            d,
            now,
            &effects.promises_kept,
            in_force,
            &mut candidates,
            out,
        );
        self.derive(d, now, tz, out);
        if let Some((id, channel)) = &effects.unmatched_outcome {
            out.audits.push(AuditRecord {
                channel: Some(*channel),
                subject: Some(id.clone()),
                ..audit(
                    d,
                    now,
                    DecisionKind::Noted,
                    "facts/contact_outcome",
                    "unmatched_action",
                )
            });
        }
        cancel_pending(d, now, &effects, cause, out);
        if owed_before && !d.owes() && effects.paid {
            thank_for_payment(in_force, cause, &mut candidates);
        }
        self.release_deferred(d, now, out);
        let next_step = self.scheduled_steps(d, now, tz, &mut candidates, out);
        self.issue(d, candidates, now, out);
        self.forget_old_contacts(d, now);
        d.next_wake = self.next_wake(d, now, tz, next_step);
    }

    /// Contact marks older than the longest frequency-cap lookback of any policy can no longer matter.
    fn forget_old_contacts(&self, d: &mut Debtor, now: Ts) {
        let lookback = self.policies.longest_lookback_ms;
        let Some(cold) = d.cold_if_any() else {
            return;
        };
        if let Some(first_kept) = cold
            .contacts
            .iter()
            .position(|m| m.at.0 >= now.0.saturating_sub(lookback))
        {
            cold.contacts.drain(..first_kept);
        } else {
            cold.contacts.clear();
        }
    }

    /// Recomputes DPD, bucket, stage, history, segment, priority and queue membership.
    fn derive(&self, d: &mut Debtor, now: Ts, tz: Tz, out: &mut Decisions) {
        let first = d.derived.stage_entered.is_none();
        let today = now.local_date(tz);
        let oldest = d.oldest_unpaid_due();
        let dpd = d.days_past_due_on(today);
        let (outstanding, overdue) = self.fx.sum_and_part_to_cents(
            d.obligations
                .iter()
                .filter(|o| o.is_open())
                .map(|o| (o.currency, o.outstanding, o.due < today)),
        );
        let charged_off = d.status().charged_off;
        let dv = &mut d.derived;
        dv.outstanding_base = outstanding;
        dv.overdue_base = overdue;
        dv.dpd = dpd;
        dv.bucket = self.aging.bucket(dpd);
        let stage = if charged_off && oldest.is_some() {
            Stage::Judicial
        } else {
            self.aging.stage(dpd)
        };
        if first || stage != dv.stage {
            dv.stage_entered = Some(today);
            if !first {
                out.audits.push(AuditRecord {
                    previous: Some(CompactString::const_new(dv.stage.label())),
                    ..audit(d, now, DecisionKind::Reclassified, "aging", stage.label())
                });
            }
            d.derived.stage = stage;
        }
        let h = &mut d.history;
        if dpd > 0 && !h.in_episode {
            h.in_episode = true;
            h.episodes = h.episodes.saturating_add(1);
            h.contacted_in_episode = false;
        } else if dpd == 0 && h.in_episode {
            h.in_episode = false;
            h.cures = h.cures.saturating_add(1);
            if !h.contacted_in_episode {
                h.self_cures = h.self_cures.saturating_add(1);
            }
        }
        let segment = self.segmentation.classify(d);
        if segment != d.derived.segment && !first {
            let label = |i| self.segmentation.label(i).map_or("", CompactString::as_str);
            out.audits.push(AuditRecord {
                previous: self.segmentation.label(d.derived.segment).cloned(),
                ..audit(
                    d,
                    now,
                    DecisionKind::Reclassified,
                    "segmentation",
                    label(segment),
                )
            });
        }
        d.derived.segment = segment;
        d.derived.priority = self.priority.score(d, &self.fx);
        d.derived.queues = self.queues.membership(d);
    }

    fn next_wake(&self, d: &Debtor, now: Ts, tz: Tz, next_step: Option<Ts>) -> Ts {
        let mut next = next_step.unwrap_or(Ts::MAX);
        for p in &d.cold().promises {
            next = next.min(p.deadline);
        }
        for p in &d.cold().pending {
            next = next.min(p.release);
        }
        // The next bucket, stage or queue edge, at the debtor's local midnight. There is deliberately no daily wake
        // for the DPD term of the priority: work queues are ordered by a rank that does not decay
        // (`PriorityWeights::queue_rank`), and the term is refreshed whenever the debtor is evaluated (events, edges,
        // steps, promises, releases), which keeps the cost of time proportional to what really changes.
        if let Some(due) = d.oldest_unpaid_due() {
            let dpd = d.derived.dpd;
            let edge = [self.aging.next_edge(dpd), self.queues.next_threshold(dpd)]
                .into_iter()
                .flatten()
                .min()
                .and_then(|e| due.checked_add_days(chrono::Days::new(e.into())));
            if let Some(date) = edge {
                next = next.min(local_midnight(date, tz));
            }
        }
        // Never wake in the past: a timer at `now` already ran.
        if next <= now { now.plus_ms(1) } else { next }
    }
}

fn tz_of(d: &Debtor) -> Tz {
    d.profile.as_ref().map_or(Tz::UTC, |p| p.time_zone)
}

fn audit(d: &Debtor, now: Ts, kind: DecisionKind, rule: &str, reason: &str) -> AuditRecord {
    AuditRecord {
        debtor_id: d.id.clone(),
        at: now,
        kind,
        action_id: None,
        channel: None,
        rule: rule.into(),
        reason: reason.into(),
        until: None,
        strategy: None,
        arm: None,
        subject: None,
        previous: None,
        debtor: None,
    }
}
