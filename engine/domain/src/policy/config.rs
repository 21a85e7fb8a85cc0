//! Jurisdiction policy files, as written by compliance teams (one TOML file per jurisdiction).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::Channel;

/// One jurisdiction's contact rules. A file with `extends` is an overlay (a state, a creditor) merged onto its parent,
/// the most restrictive rule winning.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Jurisdiction id: a country (`CO`) or a country and region (`US-MA`).
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// The legal sources the rules come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Parent policy this overlay tightens.
    pub extends: Option<String>,
    /// Holiday calendars whose dates count as `holiday` (see the `holidays` files).
    #[serde(default)]
    pub holiday_calendars: Vec<String>,
    /// Channels the contact windows (hours) apply to (default: dialer, SMS, WhatsApp, e-mail: letters, agency
    /// placements and legal referrals are not contacts at an hour).
    #[serde(default = "default_window_channels")]
    pub window_channels: Vec<Channel>,
    /// Channels the blocked days and holidays apply to (default: the `window_channels`). Add `letter`, `agency` or
    /// `legal` where the jurisdiction forbids collection steps of those kinds on those days too.
    #[serde(default)]
    pub blocked_day_channels: Option<Vec<Channel>>,
    /// Allowed contact windows in the debtor's local time, `[from, to)`.
    #[serde(default)]
    pub windows: Vec<WindowConfig>,
    /// Days with no contact: weekday names (`sun`) and `holiday`.
    #[serde(default)]
    pub blocked_days: Vec<String>,
    /// Longest a blocked action may wait for its next allowed instant before it is dropped.
    #[serde(default = "default_max_defer", with = "humantime_serde")]
    pub max_defer: Duration,
    /// Frequency caps in rolling windows.
    #[serde(default)]
    pub caps: Vec<CapConfig>,
    /// Minimum time between two contacts on the given channels.
    #[serde(default)]
    pub min_gaps: Vec<GapConfig>,
    /// Limits on how many distinct channels may be used within a period.
    #[serde(default)]
    pub channel_diversity: Vec<DiversityConfig>,
    /// No contact on the given channels for a while after a conversation with the debtor.
    #[serde(default)]
    pub quiet_after_conversation: Vec<GapConfig>,
    /// Consent rules; a base policy without them is opt-in on the direct channels (unknown facts deny), an overlay
    /// without them inherits its parent's.
    pub consent: Option<ConsentConfig>,
    /// Conditions that stop all contact.
    #[serde(default)]
    pub holds: Vec<HoldKind>,
}

// Letters, agencies and legal referrals are not "contacts at an hour"; windows bind the direct channels.
fn default_window_channels() -> Vec<Channel> {
    vec![
        Channel::Dialer,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Email,
    ]
}

// A week: long enough to carry an action over a weekend and a holiday, short enough that it is still relevant.
fn default_max_defer() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// An allowed window.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Days: `mon-fri`, `sat`, `mon,wed`, `daily`.
    pub days: String,
    /// Opening time, `HH:MM`, inclusive.
    pub from: String,
    /// Closing time, `HH:MM` (or `24:00`), exclusive.
    pub to: String,
}

/// What a cap counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// Every action sent (the conservative reading).
    #[default]
    Attempt,
    /// Conversations with the debtor only.
    Conversation,
}

/// At most `max` contacts on `channels` in any rolling `per`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// Channels counted and limited; empty: the direct channels.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Maximum count.
    pub max: u16,
    /// Rolling window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// What is counted.
    #[serde(default)]
    pub counts: Counts,
    /// Evidence tag from the research (`V`, `S`, `B`).
    #[serde(default)]
    pub tag: String,
}

/// A minimum gap on some channels.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapConfig {
    /// Channels; empty: the direct channels.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The gap.
    #[serde(with = "humantime_serde")]
    pub gap: Duration,
}

/// At most `max` distinct channels in any rolling `per`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiversityConfig {
    /// Maximum number of distinct direct channels.
    pub max: u8,
    /// Rolling window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

/// How consent works in the jurisdiction.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    /// `opt_in`: listed channels need explicit consent; `opt_out`: allowed unless withdrawn.
    #[serde(default)]
    pub mode: ConsentMode,
    /// Channels the mode applies to; other channels only need "not withdrawn".
    #[serde(default = "default_window_channels")]
    pub channels: Vec<Channel>,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            mode: ConsentMode::OptIn,
            channels: default_window_channels(),
        }
    }
}

/// Consent mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Explicit consent needed (unknown denies).
    #[default]
    OptIn,
    /// Allowed unless withdrawn.
    OptOut,
}

/// A condition that stops all contact while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// An open dispute.
    DisputeOpen,
    /// A written cease-and-desist.
    CeaseAndDesist,
    /// Bankruptcy or insolvency.
    Bankruptcy,
    /// Deceased.
    Deceased,
    /// Served with a collection lawsuit.
    LawsuitServed,
    /// Represented by an attorney.
    Attorney,
}

impl HoldKind {
    /// The hold's name, as in policy files and block reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::DisputeOpen => "dispute_open",
            HoldKind::CeaseAndDesist => "cease_and_desist",
            HoldKind::Bankruptcy => "bankruptcy",
            HoldKind::Deceased => "deceased",
            HoldKind::LawsuitServed => "lawsuit_served",
            HoldKind::Attorney => "attorney",
        }
    }
}

/// A public-holiday calendar: dates per year. Years not listed are unknown, and unknown facts deny.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayCalendarConfig {
    /// Calendar id (`CO`, `US-MA`).
    pub id: String,
    /// Where the dates come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Dates by year (`"2026" = ["2026-01-01", ...]`).
    pub years: BTreeMap<String, Vec<NaiveDate>>,
}
