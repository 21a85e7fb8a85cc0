//! The demo's summary: written to summary.json and printed for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use compact_str::CompactString;
use mora_domain::engine::Engine;
use mora_domain::ids::Channel;
use mora_runtime::{Portfolio, Tally, WorkerStats};
use rust_decimal::Decimal;
use serde::Serialize;

use super::DemoArgs;
use super::partition::PartitionResult;

/// One debtor at the top of the dialer queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    /// Debtor.
    pub debtor_id: String,
    /// Priority score (points).
    pub priority: Decimal,
    /// Days past due.
    pub dpd: u16,
    /// Outstanding, base currency.
    pub outstanding_base: Decimal,
    /// Segment.
    pub segment: String,
    /// Stage.
    pub stage: String,
}

/// What the demo did.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Debtors simulated.
    pub debtors: u64,
    /// Simulated days.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Partitions.
    pub partitions: u32,
    /// Base currency of amounts.
    pub base_currency: String,
    /// Input records read (events, dead letters included).
    pub records: u64,
    /// Events applied.
    pub events: u64,
    /// Events applied per wall-clock second (Avro decode, decision, guard, output).
    pub events_per_sec: u64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Events by kind.
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Timer wake-ups.
    pub wakes: u64,
    /// Records sent to dead_letters.jsonl (undecodable or refused).
    pub dead_letters: u64,
    /// Actions emitted.
    pub actions: u64,
    /// Actions by channel.
    pub actions_by_channel: BTreeMap<Channel, u64>,
    /// Guard deferrals and drops by reason.
    pub blocked_by_reason: BTreeMap<CompactString, u64>,
    /// Audit records by decision kind.
    pub decisions: BTreeMap<&'static str, u64>,
    /// Per strategy and arm (champion/challenger): actions and decisions.
    pub arms: BTreeMap<CompactString, BTreeMap<CompactString, mora_runtime::ArmStats>>,
    /// Portfolio figures at the end (amounts in the base currency; by_currency in each currency).
    pub portfolio: Portfolio,
    /// Debtors in the dialer queue.
    pub dialer_queue_len: usize,
    /// Top 10 of the dialer queue.
    pub dialer_top10: Vec<QueueEntry>,
}

impl Summary {
    pub(super) fn build(
        args: &DemoArgs,
        engine: &Engine,
        results: &[PartitionResult],
        wall: Duration,
    ) -> Self {
        let mut stats = WorkerStats::default();
        let mut portfolio = Portfolio::default();
        let mut top = Vec::new();
        let mut dialer_len = 0;
        for r in results {
            stats.merge(&r.stats);
            portfolio.merge(&r.portfolio);
            dialer_len += r.dialer_len;
            top.extend(r.dialer_top.iter());
        }
        top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let dialer_top10 = top
            .into_iter()
            .take(10)
            .map(|(_, d)| QueueEntry {
                debtor_id: d.id.to_string(),
                priority: Decimal::new(d.derived.priority, 2),
                dpd: d.derived.dpd,
                outstanding_base: d.derived.outstanding_base.get(),
                segment: engine.segmentation.names()[d.derived.segment as usize].clone(),
                stage: d.derived.stage.as_str().to_string(),
            })
            .collect();
        let events = stats.events();
        let secs = wall.as_secs_f64().max(1e-9);
        Self {
            debtors: args.debtors,
            days: args.days,
            seed: args.seed,
            partitions: args.partitions,
            base_currency: engine.fx.base().to_string(),
            records: stats.records,
            events,
            events_per_sec: (events as f64 / secs) as u64,
            wall_seconds: (secs * 1000.0).round() / 1000.0,
            events_by_kind: stats.events_by_kind.clone(),
            wakes: stats.wakes,
            dead_letters: stats.decode_errors + stats.rejected,
            actions: stats.actions(),
            actions_by_channel: stats.actions_by_channel(),
            blocked_by_reason: stats.blocked_by_reason.clone(),
            decisions: stats.decisions(),
            arms: stats.arms(),
            portfolio,
            dialer_queue_len: dialer_len,
            dialer_top10,
        }
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let base = &self.base_currency;
        let _ = writeln!(
            s,
            "mora demo: {} debtors, {} simulated days, seed {}, {} partitions",
            self.debtors, self.days, self.seed, self.partitions
        );
        let _ = writeln!(
            s,
            "  {} events in {:.1}s ({} events/s), {} timer wake-ups, {} dead letters",
            self.events, self.wall_seconds, self.events_per_sec, self.wakes, self.dead_letters
        );
        let _ = writeln!(s, "\nActions sent: {}", self.actions);
        for (c, n) in &self.actions_by_channel {
            let _ = writeln!(s, "  {:<10} {n:>10}", c.as_str());
        }
        let _ = writeln!(
            s,
            "\nBlocked by the compliance guard (deferred or dropped), by reason:"
        );
        let mut blocked: Vec<_> = self.blocked_by_reason.iter().collect();
        blocked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (r, n) in blocked {
            let _ = writeln!(s, "  {:<24} {n:>10}", r.as_str());
        }
        if self.arms.values().any(|a| a.len() > 1) {
            let _ = writeln!(
                s,
                "\nChampion/challenger (actions; promises kept / broken):"
            );
            for (strategy, arms) in self.arms.iter().filter(|(_, a)| a.len() > 1) {
                for (arm, t) in arms {
                    let d = |k: &str| t.decisions.get(k).copied().unwrap_or(0);
                    let _ = writeln!(
                        s,
                        "  {:<32} {:>10} {:>7} / {}",
                        format!("{strategy}/{arm}"),
                        t.actions,
                        d("promise_kept"),
                        d("promise_broken")
                    );
                }
            }
        }
        let table = |s: &mut String, title: &str, rows: &BTreeMap<String, Tally>| {
            let _ = writeln!(s, "\n{title}:");
            for (k, t) in rows {
                let _ = writeln!(
                    s,
                    "  {k:<20} {:>9} debtors {:>18} {base}",
                    t.count,
                    t.amount.round_dp(2)
                );
            }
        };
        let _ = writeln!(
            s,
            "\nPortfolio: {} debtors, {} owing {} {base} ({} {base} overdue)",
            self.portfolio.debtors,
            self.portfolio.owing,
            self.portfolio.outstanding_base.round_dp(2),
            self.portfolio.overdue_base.round_dp(2)
        );
        table(&mut s, "By aging bucket", &self.portfolio.by_bucket);
        table(&mut s, "By stage", &self.portfolio.by_stage);
        let _ = writeln!(
            s,
            "\nDialer queue: {} debtors; top 10:",
            self.dialer_queue_len
        );
        for e in &self.dialer_top10 {
            let _ = writeln!(
                s,
                "  {:<10} priority {:>8} dpd {:>4} {:>12} {base} {:<16} {}",
                e.debtor_id,
                e.priority,
                e.dpd,
                e.outstanding_base.round_dp(2),
                e.segment,
                e.stage
            );
        }
        s
    }
}
