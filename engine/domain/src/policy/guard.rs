//! The guard itself: may this action go now, later, or never?

use chrono::{Datelike, NaiveTime};
use serde::{Deserialize, Serialize};

use super::compile::{DAY_MINUTES, Policy};
use super::config::{ConsentMode, Counts, HoldKind};
use crate::debtor::{Consent, ContactMark, Debtor, MarkKind};
use crate::ids::Channel;
use crate::time::{Ts, local_instant, local_midnight, weekday_index};

/// How far ahead the guard looks for an allowed window before giving up.
const WINDOW_SEARCH_DAYS: u64 = 15;

/// Why an action was not sent now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// Outside the allowed hours.
    OutsideWindow,
    /// A blocked weekday.
    BlockedDay,
    /// A public holiday.
    Holiday,
    /// A frequency cap is reached.
    FrequencyCap,
    /// Too soon after the last contact on the channel.
    MinGap,
    /// Too many distinct channels in the period.
    ChannelDiversity,
    /// Too soon after a conversation.
    ConversationQuiet,
    /// No consent for the channel (withdrawn, or unknown under opt-in).
    NoConsent,
    /// A hold is in force.
    Hold(HoldKind),
    /// No policy for the debtor's jurisdiction.
    UnknownJurisdiction,
    /// No master data for the debtor (time zone, country, consent unknown).
    UnknownProfile,
    /// The holiday calendar does not cover the date, so whether it is a holiday is unknown.
    CalendarNotCovered,
    /// No allowed window in the next two weeks.
    NoWindow,
}

impl BlockReason {
    /// The reason's stable name (summaries, metrics labels, audit records).
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::OutsideWindow => "outside_window",
            BlockReason::BlockedDay => "blocked_day",
            BlockReason::Holiday => "holiday",
            BlockReason::FrequencyCap => "frequency_cap",
            BlockReason::MinGap => "min_gap",
            BlockReason::ChannelDiversity => "channel_diversity",
            BlockReason::ConversationQuiet => "conversation_quiet",
            BlockReason::NoConsent => "no_consent",
            BlockReason::Hold(HoldKind::DisputeOpen) => "hold_dispute_open",
            BlockReason::Hold(HoldKind::CeaseAndDesist) => "hold_cease_and_desist",
            BlockReason::Hold(HoldKind::Bankruptcy) => "hold_bankruptcy",
            BlockReason::Hold(HoldKind::Deceased) => "hold_deceased",
            BlockReason::Hold(HoldKind::LawsuitServed) => "hold_lawsuit_served",
            BlockReason::Hold(HoldKind::Attorney) => "hold_attorney",
            BlockReason::UnknownJurisdiction => "unknown_jurisdiction",
            BlockReason::UnknownProfile => "unknown_profile",
            BlockReason::CalendarNotCovered => "calendar_not_covered",
            BlockReason::NoWindow => "no_window",
        }
    }
}

/// The guard's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send now; the window it is sent in closes at `not_after`.
    Allow {
        /// End of the allowed window (or `Ts::MAX` when no window applies).
        not_after: Ts,
    },
    /// Not now; ask again at `until`.
    Defer {
        /// The next instant every rule allows.
        until: Ts,
        /// The first rule that blocked it.
        reason: BlockReason,
    },
    /// Never, as things stand.
    Drop {
        /// The rule that blocked it.
        reason: BlockReason,
        /// Whether it was dropped only because the next allowed instant lies beyond `max_defer`.
        beyond_horizon: bool,
    },
}

fn holds(policy: &Policy, d: &Debtor) -> Option<HoldKind> {
    let flags = d.profile.as_ref().map(|p| p.flags).unwrap_or_default();
    let active = [
        (HoldKind::DisputeOpen, !d.cold().disputes.is_empty()),
        (HoldKind::CeaseAndDesist, flags.cease_and_desist),
        (HoldKind::Bankruptcy, flags.bankruptcy),
        (HoldKind::Deceased, flags.deceased),
        (HoldKind::LawsuitServed, flags.lawsuit_served),
        (HoldKind::Attorney, flags.attorney),
    ];
    active
        .into_iter()
        .find(|(k, on)| *on && policy.holds.contains(k))
        .map(|(k, _)| k)
}

impl Policy {
    /// Checks a candidate action on `channel` for debtor `d` at `now`.
    pub fn check(&self, d: &Debtor, channel: Channel, now: Ts) -> Verdict {
        let Some(profile) = d.profile.as_ref() else {
            return Verdict::Drop {
                reason: BlockReason::UnknownProfile,
                beyond_horizon: false,
            };
        };
        if let Some(h) = holds(self, d) {
            return Verdict::Drop {
                reason: BlockReason::Hold(h),
                beyond_horizon: false,
            };
        }
        let consent = d.consent_for(channel);
        let needs_opt_in =
            self.consent_mode == ConsentMode::OptIn && self.consent_channels.contains(channel);
        if consent == Consent::Revoked || (needs_opt_in && consent != Consent::Granted) {
            return Verdict::Drop {
                reason: BlockReason::NoConsent,
                beyond_horizon: false,
            };
        }
        let tz = profile.time_zone;
        let mut t = now;
        let mut first: Option<BlockReason> = None;
        let mut not_after = Ts::MAX;
        // Each round moves `t` forward to satisfy one more rule; a handful of rounds settles any real policy.
        for _ in 0..32 {
            let (in_windows, on_days) = (
                self.window_channels.contains(channel),
                self.blocked_day_channels.contains(channel),
            );
            if in_windows || on_days {
                match self.next_window(t, tz, in_windows, on_days) {
                    Ok((open, close, why)) => {
                        if open > t {
                            first = first.or(why);
                            t = open;
                        }
                        not_after = close;
                    }
                    Err(reason) => {
                        return Verdict::Drop {
                            reason: first.unwrap_or(reason),
                            beyond_horizon: false,
                        };
                    }
                }
            }
            let (until, why) = self.contact_rules(&d.cold().contacts, channel, t);
            if until > t {
                first = first.or(why);
                t = until;
                continue;
            }
            break;
        }
        if t == now {
            return Verdict::Allow { not_after };
        }
        let reason = first.unwrap_or(BlockReason::OutsideWindow);
        if t.0 - now.0 > self.max_defer_ms {
            Verdict::Drop {
                reason,
                beyond_horizon: true,
            }
        } else {
            Verdict::Defer { until: t, reason }
        }
    }

    /// The first window at or after `t`: (open, close, why `t` itself was not allowed). `windows`: the hours of the
    /// policy's windows bind (otherwise the whole of a day is open); `days`: its blocked days and holidays bind.
    fn next_window(
        &self,
        t: Ts,
        tz: chrono_tz::Tz,
        windows: bool,
        days: bool,
    ) -> Result<(Ts, Ts, Option<BlockReason>), BlockReason> {
        const WHOLE_DAY: [(u16, u16); 1] = [(0, DAY_MINUTES)];
        let start = t.local_date(tz);
        let mut why = None;
        for offset in 0..WINDOW_SEARCH_DAYS {
            let date = start + chrono::Days::new(offset);
            if self
                .covered_years
                .as_ref()
                .is_some_and(|y| !y.contains(&date.year()))
            {
                return Err(BlockReason::CalendarNotCovered);
            }
            let wd = weekday_index(date);
            let reason = if !days {
                None
            } else if self.blocked_weekdays & (1 << wd) != 0 {
                Some(BlockReason::BlockedDay)
            } else if self.block_holidays && self.holidays.contains(&date) {
                Some(BlockReason::Holiday)
            } else {
                None
            };
            if let Some(r) = reason {
                if offset == 0 {
                    why = Some(r);
                }
                continue;
            }
            let hours: &[(u16, u16)] = if windows {
                &self.windows[wd]
            } else {
                &WHOLE_DAY
            };
            for &(from, to) in hours {
                let open = local_instant(date, minutes(from), tz);
                let close = if to >= DAY_MINUTES {
                    local_midnight(date + chrono::Days::new(1), tz)
                } else {
                    local_instant(date, minutes(to), tz)
                };
                if t < close {
                    let why = why.or((open > t).then_some(BlockReason::OutsideWindow));
                    return Ok((open.max(t), close, why));
                }
            }
            if offset == 0 {
                why = Some(BlockReason::OutsideWindow);
            }
        }
        Err(BlockReason::NoWindow)
    }

    /// The earliest instant at or after `t` that caps, gaps, diversity and quiet periods allow.
    fn contact_rules(
        &self,
        marks: &[ContactMark],
        channel: Channel,
        t: Ts,
    ) -> (Ts, Option<BlockReason>) {
        let mut until = t;
        let mut why = None;
        let mut push = |at: Ts, reason: BlockReason| {
            if at > until {
                until = at;
                why = why.or(Some(reason));
            }
        };
        for cap in self.caps.iter().filter(|c| c.channels.contains(channel)) {
            let kind = match cap.counts {
                Counts::Attempt => MarkKind::Attempt,
                Counts::Conversation => MarkKind::Conversation,
            };
            let since = t.minus_ms(cap.per_ms);
            let counted: Vec<Ts> = marks
                .iter()
                .filter(|m| {
                    m.kind == kind && cap.channels.contains(m.channel) && m.at > since && m.at <= t
                })
                .map(|m| m.at)
                .collect();
            if counted.len() >= usize::from(cap.max) {
                let oldest_to_expire = counted[counted.len() - usize::from(cap.max)];
                push(
                    oldest_to_expire.plus_ms(cap.per_ms),
                    BlockReason::FrequencyCap,
                );
            }
        }
        for g in self.gaps.iter().filter(|g| g.channels.contains(channel)) {
            if let Some(last) = marks.iter().rev().find(|m| {
                m.kind == MarkKind::Attempt && g.channels.contains(m.channel) && m.at <= t
            }) {
                push(last.at.plus_ms(g.gap_ms), BlockReason::MinGap);
            }
        }
        for q in self.quiet.iter().filter(|q| q.channels.contains(channel)) {
            if let Some(last) = marks.iter().rev().find(|m| {
                m.kind == MarkKind::Conversation && q.channels.contains(m.channel) && m.at <= t
            }) {
                push(last.at.plus_ms(q.gap_ms), BlockReason::ConversationQuiet);
            }
        }
        if channel.is_direct_contact() {
            for &(max, per) in &self.diversity {
                let since = t.minus_ms(per);
                // Last attempt per other direct channel within the window, newest first.
                let mut last: Vec<Ts> = Channel::ALL
                    .into_iter()
                    .filter(|c| *c != channel && c.is_direct_contact())
                    .filter_map(|c| {
                        marks
                            .iter()
                            .rev()
                            .find(|m| {
                                m.kind == MarkKind::Attempt
                                    && m.channel == c
                                    && m.at > since
                                    && m.at <= t
                            })
                            .map(|m| m.at)
                    })
                    .collect();
                last.sort_unstable_by(|a, b| b.cmp(a));
                if last.len() >= usize::from(max) {
                    push(
                        last[usize::from(max) - 1].plus_ms(per),
                        BlockReason::ChannelDiversity,
                    );
                }
            }
        }
        (until, why)
    }
}

fn minutes(m: u16) -> NaiveTime {
    NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0).unwrap_or(NaiveTime::MIN)
}
