//! The decision function: `(state, input, now, configuration) -> (state', actions, audit records)`.

use chrono_tz::Tz;
use compact_str::{CompactString, format_compact};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionId, AuditRecord, DecisionKind, Reason};
use crate::aging::{Aging, AgingConfig};
use crate::config_error::ConfigError;
use crate::debtor::{ContactMark, Debtor, MarkKind, PendingAction};
use crate::event::Envelope;
use crate::facts::{self, Effects};
use crate::ids::Channel;
use crate::money::{FxConfig, FxTable};
use crate::policy::{BlockReason, HolidayCalendarConfig, Policies, PolicyConfig, Verdict};
use crate::priority::PriorityWeights;
use crate::queues::{QueueConfig, QueueDefs};
use crate::rejected::Rejected;
use crate::segment::{Segmentation, SegmentationConfig};
use crate::stage::Stage;
use crate::strategy::{AnchorKind, Strategies, Strategy, StrategyConfig};
use crate::time::{Ts, local_midnight};

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

/// An action the strategy wants, before the guard has seen it.
struct Candidate {
    arm: CompactString,
    channel: Channel,
    template: CompactString,
    strategy: CompactString,
    step: CompactString,
    trigger: CompactString,
    cause: CompactString,
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
        let policies = Policies::new(policies, calendars)?;
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
        // Records not about an action carry the strategy and arm the debtor is on after the decision.
        if let Some(s) = self.strategies.get(d.cursor.strategy) {
            for r in &mut out.audits[first_new..] {
                if r.arm.is_none() {
                    r.strategy = Some(s.id.clone());
                    r.arm = Some(s.arm.clone());
                }
            }
        }
        Ok(())
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
            effects.promises_kept,
            in_force,
            &mut candidates,
            out,
        );
        self.derive(d, now, tz, out);
        cancel_pending(d, now, effects, out);
        if owed_before && !d.owes() && effects.paid {
            thank_for_payment(in_force, cause, &mut candidates);
        }
        self.release_deferred(d, now, out);
        let next_step = self.scheduled_steps(d, now, tz, &mut candidates, out);
        self.issue(d, candidates, now, out);
        self.forget_old_contacts(d, now);
        d.next_wake = self.next_wake(d, now, tz, next_step);
    }

    /// Deferred actions whose instant has come go back to the guard.
    fn release_deferred(&self, d: &mut Debtor, now: Ts, out: &mut Decisions) {
        if !d.pending.iter().any(|p| p.release <= now) {
            return;
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut d.pending)
            .into_iter()
            .partition(|p| p.release <= now);
        d.pending = keep;
        for p in due {
            self.route(d, p.action, now, out);
        }
    }

    /// Builds each candidate's action and routes it through the guard, unless an action with the same id was
    /// already issued to this debtor (suppressed, audited).
    fn issue(&self, d: &mut Debtor, candidates: Vec<Candidate>, now: Ts, out: &mut Decisions) {
        for c in candidates {
            let action = self.build_action(d, c, now);
            let fp = fingerprint(&action.action_id);
            if d.issued.contains(&fp) {
                out.audits.push(AuditRecord {
                    action_id: Some(action.action_id.clone()),
                    channel: Some(action.channel),
                    ..audit(
                        d,
                        now,
                        DecisionKind::Suppressed,
                        "engine/issued",
                        "already_issued",
                    )
                });
                continue;
            }
            self.route(d, action, now, out);
        }
    }

    /// Contact marks older than the longest frequency-cap lookback of any policy can no longer matter.
    fn forget_old_contacts(&self, d: &mut Debtor, now: Ts) {
        let lookback = self.policies.longest_lookback_ms;
        if let Some(first_kept) = d
            .contacts
            .iter()
            .position(|m| m.at.0 >= now.0.saturating_sub(lookback))
        {
            d.contacts.drain(..first_kept);
        } else {
            d.contacts.clear();
        }
    }

    /// Recomputes DPD, bucket, stage, history, segment, priority and queue membership.
    fn derive(&self, d: &mut Debtor, now: Ts, tz: Tz, out: &mut Decisions) {
        let first = d.derived.stage_entered.is_none();
        let today = now.local_date(tz);
        let oldest = d.oldest_unpaid_due();
        let dpd = d.days_past_due(now);
        let mut overdue = Decimal::ZERO;
        for o in d
            .obligations
            .iter()
            .filter(|o| o.is_open() && o.due < today)
        {
            overdue += self.fx.to_base(o.currency, o.outstanding);
        }
        let outstanding_base = d.outstanding_base(&self.fx);
        let dv = &mut d.derived;
        dv.outstanding_base = outstanding_base;
        dv.overdue_base = overdue.round_dp(2);
        dv.dpd = dpd;
        dv.bucket = self.aging.bucket(dpd);
        let stage = if d.status.charged_off && oldest.is_some() {
            Stage::Judicial
        } else {
            self.aging.stage(dpd)
        };
        if first || stage != dv.stage {
            dv.stage_entered = Some(today);
            if !first {
                out.audits.push(audit(
                    d,
                    now,
                    DecisionKind::Reclassified,
                    "aging",
                    &format!("stage:{}", stage.as_str()),
                ));
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
            let name = &self.segmentation.names()[segment as usize];
            out.audits.push(audit(
                d,
                now,
                DecisionKind::Reclassified,
                "segmentation",
                &format!("segment:{name}"),
            ));
        }
        d.derived.segment = segment;
        d.derived.priority = self.priority.score(d, &self.fx);
        d.derived.queues = self.queues.membership(d);
    }

    /// Advances the strategy cursor and adds the scheduled step due now, if any. Returns the next step instant.
    fn scheduled_steps(
        &self,
        d: &mut Debtor,
        now: Ts,
        tz: Tz,
        candidates: &mut Vec<Candidate>,
        out: &mut Decisions,
    ) -> Option<Ts> {
        let (idx, strategy) = self
            .strategies
            .select(d.derived.segment, d.derived.stage, &d.id);
        let anchor = d.oldest_unpaid_due();
        let entered = d.derived.stage_entered;
        let c = &mut d.cursor;
        let mut reset = false;
        if c.strategy != idx || c.anchor != anchor {
            // A new path or a new debt to count from: start the steps over (the latest one due is taken).
            c.done = 0;
            reset = true;
        } else if c.entered != entered {
            // Same path, new stage: only steps counted from stage entry start over.
            c.done &= !strategy.map_or(0, |s| s.stage_entry_mask());
            reset = true;
        }
        c.strategy = idx;
        c.anchor = anchor;
        c.entered = entered;
        let (Some(s), Some(due)) = (strategy, anchor) else {
            d.cursor.next_step = None;
            return None;
        };
        if !reset && d.cursor.next_step.is_none_or(|t| t > now) {
            return d.cursor.next_step; // nothing due: skip recomputing step instants
        }
        let mut done = d.cursor.done;
        let steps = s.due_steps(d, &mut done, due, tz, now);
        d.cursor.done = done;
        d.cursor.next_step = steps.next;
        let Some(i) = steps.take else {
            return steps.next;
        };
        let step = &s.steps[i];
        let suppressed = if !d.promises.is_empty() {
            Some("promise_open")
        } else if d.status.agency.is_some()
            && !matches!(step.channel, Channel::Agency | Channel::Legal)
        {
            Some("agency_placed")
        } else {
            None
        };
        if let Some(reason) = suppressed {
            let rule = format_compact!("strategy/{}/{}", s.id, step.id);
            out.audits.push(AuditRecord {
                channel: Some(step.channel),
                ..audit(d, now, DecisionKind::Suppressed, &rule, reason)
            });
            return steps.next;
        }
        candidates.push(Candidate {
            arm: s.arm.clone(),
            channel: step.channel,
            template: step.template.clone(),
            strategy: s.id.clone(),
            step: step.id.clone(),
            trigger: CompactString::const_new("schedule"),
            cause: step_cause(step.from, due, entered),
        });
        steps.next
    }

    fn build_action(&self, d: &Debtor, c: Candidate, now: Ts) -> Action {
        let action_id = ActionId::derive(&[
            d.id.as_bytes(),
            c.strategy.as_bytes(),
            c.step.as_bytes(),
            c.cause.as_bytes(),
        ]);
        let mut a = Action {
            action_id,
            debtor_id: d.id.clone(),
            channel: c.channel,
            template: c.template,
            amounts_due: Default::default(),
            overdue_base: Decimal::ZERO,
            dpd: 0,
            stage: Stage::Preventive,
            segment: CompactString::default(),
            priority: 0,
            reason: Reason {
                strategy: c.strategy,
                step: c.step,
                trigger: c.trigger,
            },
            jurisdiction: CompactString::default(),
            created_at: now,
            not_before: now,
            not_after: None,
            arm: c.arm,
        };
        self.refresh(d, &mut a);
        a
    }

    /// Brings an action's figures up to date with the debtor's state (a deferred action may wait days).
    fn refresh(&self, d: &Debtor, a: &mut Action) {
        a.amounts_due = d.outstanding();
        a.overdue_base = d.derived.overdue_base;
        a.dpd = d.derived.dpd;
        a.stage = d.derived.stage;
        a.segment = self.segmentation.names()[d.derived.segment as usize]
            .as_str()
            .into();
        a.priority = d.derived.priority;
    }

    /// Passes an action through the compliance guard: the only way out of the engine.
    fn route(&self, d: &mut Debtor, mut action: Action, now: Ts, out: &mut Decisions) {
        let rule_for =
            |a: &Action| format_compact!("strategy/{}/{}", a.reason.strategy, a.reason.step);
        let policy = d
            .profile
            .as_deref()
            .and_then(|p| self.policies.lookup(&p.country, p.region.as_deref()));
        let Some(policy) = policy else {
            let reason = if d.profile.is_none() {
                BlockReason::UnknownProfile
            } else {
                BlockReason::UnknownJurisdiction
            };
            out.audits.push(AuditRecord {
                action_id: Some(action.action_id.clone()),
                channel: Some(action.channel),
                ..audit(
                    d,
                    now,
                    DecisionKind::Dropped,
                    "policy/none",
                    reason.as_str(),
                )
            });
            return;
        };
        let rule = format_compact!("policy/{}", policy.id);
        let verdict = match policy.check(d, action.channel, now) {
            Verdict::Defer { until, reason }
                if until.0 - action.created_at.0 > policy.max_defer_ms =>
            {
                Verdict::Drop {
                    reason,
                    beyond_horizon: true,
                }
            }
            v => v,
        };
        let mut rec = AuditRecord {
            action_id: Some(action.action_id.clone()),
            channel: Some(action.channel),
            strategy: Some(action.reason.strategy.clone()),
            arm: Some(action.arm.clone()),
            ..audit(d, now, DecisionKind::Emitted, &rule, "")
        };
        match verdict {
            Verdict::Allow { not_after } => {
                self.refresh(d, &mut action);
                action.jurisdiction = policy.id.as_str().into();
                action.not_before = now;
                action.not_after = (not_after != Ts::MAX).then_some(not_after);
                d.contacts.push(ContactMark {
                    at: now,
                    channel: action.channel,
                    kind: MarkKind::Attempt,
                });
                remember(d, &action.action_id);
                if action.channel.is_direct_contact() {
                    d.status.pending_replies = 0;
                }
                rec.rule = rule_for(&action);
                rec.reason = CompactString::const_new("allowed");
                out.audits.push(rec);
                out.actions.push(action);
            }
            Verdict::Defer { until, reason } => {
                rec.kind = DecisionKind::Deferred;
                rec.reason = reason.as_str().into();
                rec.until = Some(until);
                out.audits.push(rec);
                remember(d, &action.action_id);
                d.pending.push(PendingAction {
                    release: until,
                    action,
                });
            }
            Verdict::Drop {
                reason,
                beyond_horizon,
            } => {
                rec.kind = DecisionKind::Dropped;
                rec.reason = reason.as_str().into();
                if beyond_horizon {
                    rec.rule = format_compact!("policy/{}/max_defer", policy.id);
                }
                out.audits.push(rec);
            }
        }
    }

    fn next_wake(&self, d: &Debtor, now: Ts, tz: Tz, next_step: Option<Ts>) -> Ts {
        let mut next = next_step.unwrap_or(Ts::MAX);
        for p in &d.promises {
            next = next.min(p.deadline);
        }
        for p in &d.pending {
            next = next.min(p.release);
        }
        // The next bucket or stage edge, at the debtor's local midnight. There is deliberately no daily wake for the
        // DPD term of the priority: it is refreshed whenever the debtor is evaluated (events, edges, steps, promises,
        // releases), which keeps the cost of time proportional to what really changes.
        if let Some(due) = d.oldest_unpaid_due() {
            let edge = self
                .aging
                .next_edge(d.derived.dpd)
                .and_then(|e| due.checked_add_days(chrono::Days::new(e.into())));
            if let Some(date) = edge {
                next = next.min(local_midnight(date, tz));
            }
        }
        // Never wake in the past: a timer at `now` already ran.
        if next <= now { now.plus_ms(1) } else { next }
    }
}

/// The cause part of a scheduled step's action id: the anchor the step counts from, as a day number (formatting
/// dates is far slower and the id only needs to be stable). Only that anchor: re-entering a stage must not give a
/// due-date step a new id.
fn step_cause(
    from: AnchorKind,
    due: chrono::NaiveDate,
    entered: Option<chrono::NaiveDate>,
) -> CompactString {
    use chrono::Datelike;
    match from {
        AnchorKind::Due => format_compact!("due:{}", due.num_days_from_ce()),
        AnchorKind::StageEntry => {
            format_compact!("entered:{}", entered.map_or(0, |e| e.num_days_from_ce()))
        }
    }
}

/// How many issued action ids a debtor remembers (steps are days apart; a flip back happens within a few).
const ISSUED_MEMORY: usize = 8;

fn fingerprint(id: &ActionId) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.0.as_bytes())
}

fn remember(d: &mut Debtor, id: &ActionId) {
    let fp = fingerprint(id);
    if !d.issued.contains(&fp) {
        if d.issued.len() >= ISSUED_MEMORY {
            d.issued.remove(0);
        }
        d.issued.push(fp);
    }
}

/// Audits the promises this event kept, and breaks those whose deadline has come (each a candidate for the
/// strategy's broken-promise step).
fn settle_promises(
    d: &mut Debtor,
    now: Ts,
    kept: u8,
    in_force: Option<&Strategy>,
    candidates: &mut Vec<Candidate>,
    out: &mut Decisions,
) {
    for _ in 0..kept {
        out.audits.push(audit(
            d,
            now,
            DecisionKind::PromiseKept,
            "promise",
            "paid_by_deadline",
        ));
    }
    let mut broken = Vec::new();
    d.promises.retain(|p| {
        if p.deadline <= now {
            broken.push(p.id.clone());
            false
        } else {
            true
        }
    });
    for id in broken {
        d.history.promises_broken = d.history.promises_broken.saturating_add(1);
        out.audits.push(audit(
            d,
            now,
            DecisionKind::PromiseBroken,
            "promise",
            "deadline_passed",
        ));
        if let Some(s) = in_force
            && let Some(step) = &s.on_broken_promise
        {
            candidates.push(Candidate {
                arm: s.arm.clone(),
                channel: step.channel,
                template: step.template.clone(),
                strategy: s.id.clone(),
                step: CompactString::const_new("on_broken_promise"),
                trigger: CompactString::const_new("promise_broken"),
                cause: id,
            });
        }
    }
}

/// The strategy's paid-in-full step, for the event that cleared the debt.
fn thank_for_payment(
    in_force: Option<&Strategy>,
    cause: Option<&Envelope>,
    candidates: &mut Vec<Candidate>,
) {
    if let (Some(s), Some(ev)) = (in_force, cause)
        && let Some(step) = &s.on_paid_in_full
    {
        candidates.push(Candidate {
            arm: s.arm.clone(),
            channel: step.channel,
            template: step.template.clone(),
            strategy: s.id.clone(),
            step: CompactString::const_new("on_paid_in_full"),
            trigger: CompactString::const_new("paid_in_full"),
            cause: ev.event_id.clone(),
        });
    }
}

/// Money in or a dispute: whatever is queued for this debtor is no longer right to send (each cancellation audited).
fn cancel_pending(d: &mut Debtor, now: Ts, effects: Effects, out: &mut Decisions) {
    let reason = if effects.dispute_opened {
        "dispute_opened"
    } else if effects.paid {
        "payment_received"
    } else {
        return;
    };
    for p in std::mem::take(&mut d.pending) {
        out.audits.push(AuditRecord {
            action_id: Some(p.action.action_id.clone()),
            channel: Some(p.action.channel),
            ..audit(d, now, DecisionKind::Cancelled, "engine/pending", reason)
        });
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
    }
}
