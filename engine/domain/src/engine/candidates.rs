//! Candidate actions: where they come from (scheduled strategy steps, a broken promise, a debt paid in full, a
//! deferral whose instant has come), how each becomes an action with a deterministic id, and its way through the
//! compliance guard, the only way out.

use thin_vec::ThinVec;

use crate::action::{Action, ActionId, AuditRecord, DecisionKind, Reason};
use crate::debtor::{Cold, ContactMark, Debtor, MarkKind, PendingAction, push_tight};
use crate::event::Envelope;
use crate::facts::Effects;
use crate::ids::Channel;
use crate::policy::{BlockReason, Verdict};
use crate::stage::Stage;
use crate::strategy::{AnchorKind, CatchUp, Strategy};
use crate::time::Ts;
use chrono_tz::Tz;
use compact_str::CompactString;
use rust_decimal::Decimal;

use super::text::{joined, tagged};
use super::{Decisions, Engine, audit};

/// Whether an action's copy of the debtor's figures (amounts, days past due, stage, segment, priority) was taken in
/// the decision routing it, or earlier (a deferred action released).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Figures {
    /// Built from the debtor as it is now.
    Current,
    /// Built at an earlier decision: refreshed before it goes out.
    Stale,
}

/// An action the strategy wants, before the guard has seen it.
pub(super) struct Candidate {
    pub(super) arm: CompactString,
    pub(super) channel: Channel,
    pub(super) template: CompactString,
    pub(super) strategy: CompactString,
    pub(super) step: CompactString,
    pub(super) trigger: CompactString,
    pub(super) cause: CompactString,
}

impl Engine {
    /// Deferred actions whose instant has come. Each was decided about the debtor as it was then, so it is checked
    /// again against the debtor as it is now (whatever would stop a new action stops it: nothing owed any more, an
    /// open promise, an agency placement, another strategy in force); then, per channel, the ones released together
    /// catch up as their strategy says (only the latest, the others `superseded`; or spaced by the channel's
    /// minimum gap), and what goes on passes the guard again.
    pub(super) fn release_deferred(&self, d: &mut Debtor, now: Ts, out: &mut Decisions) {
        if !d.cold().pending.iter().any(|p| p.release <= now) {
            return;
        }
        let pending = &mut d.cold_mut().pending;
        let (due, keep): (ThinVec<_>, ThinVec<_>) = std::mem::take(pending)
            .into_iter()
            .partition(|p| p.release <= now);
        *pending = keep;
        let mut live: Vec<Action> = Vec::with_capacity(due.len());
        for p in due {
            match self.stale(d, &p.action) {
                Some(reason) => out.audits.push(about(
                    &p.action,
                    audit(d, now, DecisionKind::Cancelled, "engine/release", reason),
                )),
                None => live.push(p.action),
            }
        }
        // Channels in the order their first action was queued; each channel's actions in the order they were.
        while let Some(first) = live.first() {
            let channel = first.channel;
            let (mut group, rest): (Vec<Action>, Vec<Action>) =
                live.into_iter().partition(|a| a.channel == channel);
            live = rest;
            let Some(latest) = group.pop() else { continue };
            if group.is_empty() {
                self.route(d, latest, Figures::Stale, now, out);
                continue;
            }
            match self
                .strategies
                .by_id(&latest.reason.strategy)
                .map(|s| s.catch_up)
            {
                Some(CatchUp::Spaced) => {
                    group.push(latest);
                    let gap = self.spacing(d, channel);
                    let mut queued = group.into_iter();
                    let Some(now_one) = queued.next() else {
                        continue;
                    };
                    for (k, a) in queued.enumerate() {
                        let release = now.plus_ms(gap.saturating_mul(k as i64 + 1));
                        let mut rec = about(
                            &a,
                            audit(
                                d,
                                now,
                                DecisionKind::Deferred,
                                "engine/catch_up",
                                "catch_up_spaced",
                            ),
                        );
                        rec.until = Some(release);
                        out.audits.push(rec);
                        d.cold_mut()
                            .pending
                            .push(PendingAction { release, action: a });
                    }
                    self.route(d, now_one, Figures::Stale, now, out);
                }
                _ => {
                    for a in group {
                        out.audits.push(about(
                            &a,
                            audit(
                                d,
                                now,
                                DecisionKind::Dropped,
                                "engine/catch_up",
                                "superseded",
                            ),
                        ));
                    }
                    self.route(d, latest, Figures::Stale, now, out);
                }
            }
        }
    }

    /// Why a queued action must not go out now, if it must not: what would stop the same action decided now.
    fn stale(&self, d: &Debtor, a: &Action) -> Option<&'static str> {
        if a.reason.trigger == "paid_in_full" {
            return None; // a thank-you is for a debt that is gone
        }
        if !d.owes() {
            return Some("nothing_owed");
        }
        if d.status().agency.is_some() && !matches!(a.channel, Channel::Agency | Channel::Legal) {
            return Some("agency_placed");
        }
        if a.reason.trigger == "schedule" {
            if !d.cold().promises.is_empty() {
                return Some("promise_open");
            }
            let (_, in_force) = self
                .strategies
                .select(d.derived.segment, d.derived.stage, &d.id);
            if in_force.is_none_or(|s| s.id != a.reason.strategy || s.arm != a.arm) {
                return Some("strategy_changed");
            }
        }
        None
    }

    /// How far apart actions caught up one by one on `channel` go: the debtor's policy's minimum gap on it (the
    /// engine's default gap included), an hour where there is none.
    fn spacing(&self, d: &Debtor, channel: Channel) -> i64 {
        const HOUR_MS: i64 = 3_600_000;
        d.profile
            .as_ref()
            .and_then(|p| self.policies.lookup(&p.country, p.region.as_deref()))
            .map(|p| crate::policy::Policies::gap_on(p, channel))
            .filter(|g| *g > 0)
            .unwrap_or(HOUR_MS)
    }

    /// Builds each candidate's action and routes it through the guard, unless an action with the same id was
    /// already issued to this debtor (suppressed, audited).
    pub(super) fn issue(
        &self,
        d: &mut Debtor,
        candidates: Vec<Candidate>,
        now: Ts,
        out: &mut Decisions,
    ) {
        for c in candidates {
            let action = self.build_action(d, c, now);
            let fp = fingerprint(&action.action_id);
            if d.cold().issued.contains(&fp) {
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
            self.route(d, action, Figures::Current, now, out);
        }
    }

    /// Advances the strategy cursor and adds the scheduled step due now, if any. Returns the next step instant.
    pub(super) fn scheduled_steps(
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
            d.cursor.next_step = Ts::MAX;
            return None;
        };
        if !reset && d.cursor.next_step > now {
            return d.cursor.next_step(); // nothing due: skip recomputing step instants
        }
        let mut done = d.cursor.done;
        let steps = s.due_steps(d, &mut done, due, tz, now);
        d.cursor.done = done;
        d.cursor.next_step = steps.next.unwrap_or(Ts::MAX);
        let Some(i) = steps.take else {
            return steps.next;
        };
        let step = &s.steps[i];
        let suppressed = if !d.cold().promises.is_empty() {
            Some("promise_open")
        } else if d.status().agency.is_some()
            && !matches!(step.channel, Channel::Agency | Channel::Legal)
        {
            Some("agency_placed")
        } else {
            None
        };
        if let Some(reason) = suppressed {
            out.audits.push(AuditRecord {
                channel: Some(step.channel),
                ..audit(d, now, DecisionKind::Suppressed, &step.rule, reason)
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

    pub(super) fn build_action(&self, d: &Debtor, c: Candidate, now: Ts) -> Action {
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
    pub(super) fn refresh(&self, d: &Debtor, a: &mut Action) {
        a.amounts_due = d.outstanding();
        a.overdue_base = d.derived.overdue_base.get();
        a.dpd = d.derived.dpd;
        a.stage = d.derived.stage;
        a.segment = self.segmentation.names()[d.derived.segment as usize]
            .as_str()
            .into();
        a.priority = d.derived.priority;
    }

    /// Passes an action through the compliance guard: the only way out of the engine. An action that goes out
    /// carries the debtor's figures as they are now: refreshed unless it was built from them in this decision.
    pub(super) fn route(
        &self,
        d: &mut Debtor,
        mut action: Action,
        figures: Figures,
        now: Ts,
        out: &mut Decisions,
    ) {
        // The step's rule as compiled when the action comes from the strategy in force (nearly always), built
        // from the action's reason otherwise (an event-driven step, or a strategy since left).
        let rule_for = |d: &Debtor, a: &Action| {
            self.strategies
                .get(d.cursor.strategy)
                .filter(|s| s.id == a.reason.strategy)
                .and_then(|s| s.steps.iter().find(|step| step.id == a.reason.step))
                .map_or_else(
                    || joined(&["strategy/", &a.reason.strategy, "/", &a.reason.step]),
                    |step| step.rule.clone(),
                )
        };
        let policy = d
            .profile
            .as_ref()
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
            // The rule is the step's when the action goes out, the policy's when it is held back.
            ..audit(d, now, DecisionKind::Emitted, "", "")
        };
        match verdict {
            Verdict::Allow { not_after } => {
                match figures {
                    Figures::Stale => self.refresh(d, &mut action),
                    Figures::Current => debug_assert!(
                        {
                            let mut refreshed = action.clone();
                            self.refresh(d, &mut refreshed);
                            refreshed == action
                        },
                        "an action built in this decision already has the debtor's figures"
                    ),
                }
                action.jurisdiction = policy.id.as_str().into();
                action.not_before = now;
                action.not_after = (not_after != Ts::MAX).then_some(not_after);
                let cold = d.cold_mut();
                push_tight(
                    &mut cold.contacts,
                    ContactMark {
                        at: now,
                        channel: action.channel,
                        kind: MarkKind::Attempt,
                    },
                );
                remember(cold, &action.action_id);
                if action.channel.is_direct_contact() {
                    cold.status.pending_replies = 0;
                }
                rec.rule = rule_for(d, &action);
                rec.reason = CompactString::const_new("allowed");
                out.audits.push(rec);
                out.actions.push(action);
            }
            Verdict::Defer { until, reason } => {
                rec.kind = DecisionKind::Deferred;
                rec.rule = policy.rule.clone();
                rec.reason = reason.as_str().into();
                rec.until = Some(until);
                out.audits.push(rec);
                let cold = d.cold_mut();
                remember(cold, &action.action_id);
                push_tight(
                    &mut cold.pending,
                    PendingAction {
                        release: until,
                        action,
                    },
                );
            }
            Verdict::Drop {
                reason,
                beyond_horizon,
            } => {
                rec.kind = DecisionKind::Dropped;
                rec.reason = reason.as_str().into();
                rec.rule = if beyond_horizon {
                    policy.rule_beyond_horizon.clone()
                } else {
                    policy.rule.clone()
                };
                out.audits.push(rec);
            }
        }
    }
}

/// An audit record about a queued action: its id, channel, strategy and arm.
fn about(a: &Action, rec: AuditRecord) -> AuditRecord {
    AuditRecord {
        action_id: Some(a.action_id.clone()),
        channel: Some(a.channel),
        strategy: Some(a.reason.strategy.clone()),
        arm: Some(a.arm.clone()),
        ..rec
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
        AnchorKind::Due => tagged("due:", due.num_days_from_ce()),
        AnchorKind::StageEntry => tagged("entered:", entered.map_or(0, |e| e.num_days_from_ce())),
    }
}

/// How many issued action ids a debtor remembers (steps are days apart; a flip back happens within a few).
const ISSUED_MEMORY: usize = 8;

fn fingerprint(id: &ActionId) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.0.as_bytes())
}

fn remember(cold: &mut Cold, id: &ActionId) {
    let fp = fingerprint(id);
    if !cold.issued.contains(&fp) {
        if cold.issued.len() >= ISSUED_MEMORY {
            cold.issued.remove(0);
        }
        push_tight(&mut cold.issued, fp);
    }
}

/// Audits the promises this event kept, and breaks those whose deadline has come (each a candidate for the
/// strategy's broken-promise step).
pub(super) fn settle_promises(
    d: &mut Debtor,
    now: Ts,
    kept: &[CompactString],
    in_force: Option<&Strategy>,
    candidates: &mut Vec<Candidate>,
    out: &mut Decisions,
) {
    for id in kept {
        out.audits.push(AuditRecord {
            subject: Some(id.clone()),
            ..audit(
                d,
                now,
                DecisionKind::PromiseKept,
                "promise",
                "paid_by_deadline",
            )
        });
    }
    let mut broken = Vec::new();
    if let Some(cold) = d.cold_if_any() {
        cold.promises.retain(|p| {
            if p.deadline <= now {
                broken.push(p.id.clone());
                false
            } else {
                true
            }
        });
    }
    for id in broken {
        d.history.promises_broken = d.history.promises_broken.saturating_add(1);
        out.audits.push(AuditRecord {
            subject: Some(id.clone()),
            ..audit(
                d,
                now,
                DecisionKind::PromiseBroken,
                "promise",
                "deadline_passed",
            )
        });
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
pub(super) fn thank_for_payment(
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
pub(super) fn cancel_pending(
    d: &mut Debtor,
    now: Ts,
    effects: &Effects,
    cause: Option<&Envelope>,
    out: &mut Decisions,
) {
    let reason = if effects.dispute_opened {
        "dispute_opened"
    } else if effects.paid {
        "payment_received"
    } else {
        return;
    };
    let pending = d.cold_if_any().map(|c| std::mem::take(&mut c.pending));
    for p in pending.unwrap_or_default() {
        out.audits.push(AuditRecord {
            action_id: Some(p.action.action_id.clone()),
            channel: Some(p.action.channel),
            subject: cause.map(|ev| ev.event_id.clone()),
            ..audit(d, now, DecisionKind::Cancelled, "engine/pending", reason)
        });
    }
}
