//! The comparison a replay writes: each side's figures and the candidate's difference from the configuration in
//! force, as `comparison.json` (for tools) and `comparison.md` (for people). No wall-clock figures go in, so the
//! files are byte-identical from run to run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use mora_domain::time::Ts;
use serde::Serialize;

use super::ReplayArgs;
use super::tally::Tally;

/// What was replayed.
#[derive(Debug, Serialize)]
pub struct Window {
    /// Source: `topics` or the export file as given.
    pub input: String,
    /// The candidate configuration as given (`null`: the configuration in force).
    pub candidate: Option<String>,
    /// Start instant.
    pub from: Option<Ts>,
    /// End instant.
    pub to: Option<Ts>,
    /// Start offsets.
    pub from_offsets: Vec<String>,
    /// End offsets.
    pub to_offsets: Vec<String>,
}

/// How actions spread over debtors.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Contacts {
    /// Debtors with at least one action.
    pub debtors_contacted: u64,
    /// Mean actions per contacted debtor.
    pub mean: f64,
    /// Median.
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
    /// Most actions for one debtor.
    pub max: u32,
    /// Debtors by number of actions (`1`, `2`, ... `5+`).
    pub histogram: BTreeMap<String, u64>,
}

/// One side's figures.
#[derive(Debug, Serialize)]
pub struct SideReport {
    /// The counters.
    #[serde(flatten)]
    pub tally: Tally,
    /// Actions per debtor.
    pub contacts_per_debtor: Contacts,
}

/// Candidate minus configuration in force.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// Actions.
    pub actions: i64,
    /// Actions per channel.
    pub actions_by_channel: BTreeMap<String, i64>,
    /// Blocked actions per reason (deferred and dropped together).
    pub blocked_by_reason: BTreeMap<String, i64>,
    /// Debtors contacted.
    pub debtors_contacted: i64,
    /// Records dead-lettered.
    pub dead_letters: i64,
    /// Promises kept.
    pub promises_kept: i64,
    /// Promises broken.
    pub promises_broken: i64,
    /// Cures.
    pub cures: i64,
    /// Segment migrations.
    pub segment_migrations: i64,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was replayed.
    pub window: Window,
    /// Records read.
    pub records: u64,
    /// Records inside the window.
    pub records_in_window: u64,
    /// The configuration in force.
    pub in_force: SideReport,
    /// The candidate.
    pub candidate: SideReport,
    /// Candidate minus in force.
    pub delta: Delta,
}

fn contacts(t: &Tally) -> Contacts {
    let mut counts: Vec<u32> = t.contacts.values().copied().collect();
    if counts.is_empty() {
        return Contacts::default();
    }
    counts.sort_unstable();
    let at = |q: f64| counts[((counts.len() - 1) as f64 * q).round() as usize];
    let mut histogram = BTreeMap::new();
    for &c in &counts {
        let k = if c >= 5 {
            "5+".to_string()
        } else {
            c.to_string()
        };
        *histogram.entry(k).or_default() += 1;
    }
    let total: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    Contacts {
        debtors_contacted: counts.len() as u64,
        mean: (total as f64 / counts.len() as f64 * 1000.0).round() / 1000.0,
        p50: at(0.5),
        p90: at(0.9),
        max: counts[counts.len() - 1],
        histogram,
    }
}

fn by_channel(t: &Tally) -> BTreeMap<String, i64> {
    t.actions_by_channel_step
        .iter()
        .map(|(c, steps)| (c.clone(), steps.values().sum::<u64>() as i64))
        .collect()
}

fn by_reason(t: &Tally) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for reasons in t.blocked.values() {
        for (r, n) in reasons {
            *out.entry(r.clone()).or_default() += *n as i64;
        }
    }
    out
}

fn diff(a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for k in a.keys().chain(b.keys()) {
        let d = b.get(k).copied().unwrap_or(0) - a.get(k).copied().unwrap_or(0);
        out.insert(k.clone(), d);
    }
    out
}

impl Report {
    pub(super) fn build(
        args: &ReplayArgs,
        records: u64,
        records_in_window: u64,
        a: Tally,
        b: Tally,
    ) -> Self {
        let offsets = |v: &[(String, i32, i64)]| {
            v.iter()
                .map(|(t, p, o)| format!("{t}:{p}:{o}"))
                .collect::<Vec<_>>()
        };
        let (ca, cb) = (contacts(&a), contacts(&b));
        let migrations = |t: &Tally| t.segment_migrations.values().sum::<u64>() as i64;
        let dead = |t: &Tally| t.dead_letters.values().sum::<u64>() as i64;
        let delta = Delta {
            actions: b.actions as i64 - a.actions as i64,
            actions_by_channel: diff(&by_channel(&a), &by_channel(&b)),
            blocked_by_reason: diff(&by_reason(&a), &by_reason(&b)),
            debtors_contacted: cb.debtors_contacted as i64 - ca.debtors_contacted as i64,
            dead_letters: dead(&b) - dead(&a),
            promises_kept: b.promises_kept as i64 - a.promises_kept as i64,
            promises_broken: b.promises_broken as i64 - a.promises_broken as i64,
            cures: b.cures as i64 - a.cures as i64,
            segment_migrations: migrations(&b) - migrations(&a),
        };
        Self {
            window: Window {
                input: args
                    .input
                    .as_ref()
                    .map_or_else(|| "topics".to_string(), |p| p.display().to_string()),
                candidate: args.candidate.as_ref().map(|p| p.display().to_string()),
                from: args.from,
                to: args.to,
                from_offsets: offsets(&args.from_offset),
                to_offsets: offsets(&args.to_offset),
            },
            records,
            records_in_window,
            in_force: SideReport {
                tally: a,
                contacts_per_debtor: ca,
            },
            candidate: SideReport {
                tally: b,
                contacts_per_debtor: cb,
            },
            delta,
        }
    }

    pub(super) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(dir.join("comparison.json"), json)
            .context("cannot write comparison.json")?;
        std::fs::write(dir.join("comparison.md"), self.render())
            .context("cannot write comparison.md")?;
        Ok(())
    }

    /// The comparison as a Markdown table.
    pub fn render(&self) -> String {
        let (a, b) = (&self.in_force, &self.candidate);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Replay: configuration in force vs candidate\n\n{} records read, {} in the window.\n",
            self.records, self.records_in_window
        );
        let _ = writeln!(s, "| figure | in force | candidate | difference |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        let mut row = |name: &str, x: i64, y: i64| {
            let _ = writeln!(s, "| {name} | {x} | {y} | {:+} |", y - x);
        };
        row("actions", a.tally.actions as i64, b.tally.actions as i64);
        let dead = |t: &Tally| t.dead_letters.values().sum::<u64>() as i64;
        row(
            "dead letters (each side's dead_letters.jsonl)",
            dead(&a.tally),
            dead(&b.tally),
        );
        for (label, per) in [
            ("actions", by_channel as fn(&Tally) -> BTreeMap<String, i64>),
            ("blocked", by_reason),
        ] {
            let (x, y) = (per(&a.tally), per(&b.tally));
            for k in x
                .keys()
                .chain(y.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                let get = |m: &BTreeMap<String, i64>| m.get(k).copied().unwrap_or(0);
                row(&format!("{label}: {k}"), get(&x), get(&y));
            }
        }
        row(
            "debtors contacted",
            a.contacts_per_debtor.debtors_contacted as i64,
            b.contacts_per_debtor.debtors_contacted as i64,
        );
        row(
            "most contacts for one debtor",
            i64::from(a.contacts_per_debtor.max),
            i64::from(b.contacts_per_debtor.max),
        );
        row(
            "promises kept (projected)",
            a.tally.promises_kept as i64,
            b.tally.promises_kept as i64,
        );
        row(
            "promises broken (projected)",
            a.tally.promises_broken as i64,
            b.tally.promises_broken as i64,
        );
        row(
            "cures (projected)",
            a.tally.cures as i64,
            b.tally.cures as i64,
        );
        row(
            "segment migrations",
            a.tally.segment_migrations.values().sum::<u64>() as i64,
            b.tally.segment_migrations.values().sum::<u64>() as i64,
        );
        let _ = writeln!(
            s,
            "\nProjections assume debtors behave as the log recorded (they reacted to the configuration in force)."
        );
        s
    }
}
