//! The harness's report: what ran, on what machine, and the figures, as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::systems::{Mode, System};

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where the figures come from.
    pub machine: Machine,
    /// The command line that produced the report.
    pub command: String,
    /// Debtors in the simulated portfolio.
    pub debtors: u64,
    /// Partitions of every topic.
    pub partitions: u32,
    /// Seed of the simulated log.
    pub seed: u64,
    /// Whether mora ran with its state store.
    pub state_store: bool,
    /// Records in the backlog.
    pub warmup_records: usize,
    /// Records produced flat out to measure the maximum sustainable rate.
    pub capacity_records: usize,
    /// The simulated instant the backlog reaches.
    pub warmup_simulated_until: String,
    /// Seconds of each load step.
    pub step_seconds: f64,
    /// Shares of the maximum sustainable rate, one step each.
    pub loads: Vec<f64>,
    /// One entry per system and mode.
    pub runs: Vec<RunReport>,
    /// mora against the peer, per mode.
    pub ratios: Vec<Ratio>,
}

/// The machine the figures come from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
}

impl Machine {
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// One system in one mode.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub system: System,
    pub mode: Mode,
    /// The backlog that builds the portfolio (not timed).
    pub warmup: Warmup,
    /// The stretch after it, produced flat out: its consumption rate (between 10% and 90% of it) is the maximum
    /// sustainable rate the load steps are shares of.
    pub capacity: Warmup,
    pub steps: Vec<Step>,
    /// Actions read, duplicates among them (same action id twice), and outputs that could not be timed.
    pub actions: u64,
    pub duplicates: u64,
    pub untimed: u64,
    /// Peak resident memory of the system's process seen during the run (mora's includes the harness).
    pub peak_resident_mib: Option<f64>,
    /// Progress over time.
    pub series: Vec<Sample>,
    /// mora's own counters at the end (records, actions, commits, aborts...).
    pub engine: Option<serde_json::Value>,
    /// What went wrong, if the run did not finish.
    pub error: Option<String>,
}

/// A stretch of the log produced flat out and consumed as fast as the system could.
#[derive(Debug, Default, Serialize)]
pub struct Warmup {
    pub events: u64,
    pub seconds: f64,
    pub max_rate: f64,
    /// CPU seconds per million events (the same figure as CPU microseconds per event) of each process (or, in
    /// this process, thread group) while the stretch was produced and consumed: `engine`, `state_io`, `harness`,
    /// `kafka`, `cassandra`.
    pub cpu_s_per_million_events: std::collections::BTreeMap<String, f64>,
    /// What mora's state store wrote during the stretch (`None`: the peer, or mora without its store).
    pub store: Option<StoreLoad>,
}

/// The state store's writes over a stretch of the log, per input event.
#[derive(Debug, Default, Serialize)]
pub struct StoreLoad {
    /// Requests sent to the database (a batch is one).
    pub requests_per_event: f64,
    /// Statements, counting each inside a batch.
    pub statements_per_event: f64,
    /// Debtor rows.
    pub rows_per_event: f64,
    /// Flushes written.
    pub flushes: u64,
    /// Times input was paused because the store fell behind `state.max_lag`.
    pub input_pauses: u64,
}

impl StoreLoad {
    /// The difference between two readings of mora's counters, over `events`.
    pub(super) fn between(
        before: &mora_connector_kafka::RunStats,
        after: &mora_connector_kafka::RunStats,
        events: u64,
    ) -> Option<Self> {
        let (b, a) = (before.state.unwrap_or_default(), after.state?);
        let per = |x: u64, y: u64| {
            (x.saturating_sub(y) as f64 / events.max(1) as f64 * 10_000.0).round() / 10_000.0
        };
        Some(Self {
            requests_per_event: per(a.requests, b.requests),
            statements_per_event: per(a.statements, b.statements),
            rows_per_event: per(a.rows, b.rows),
            flushes: a.flushes.saturating_sub(b.flushes),
            input_pauses: after.state_pauses.saturating_sub(before.state_pauses),
        })
    }
}

/// One load step.
#[derive(Debug, Serialize)]
pub struct Step {
    /// Share of the maximum sustainable rate.
    pub load: f64,
    /// Records per second offered.
    pub offered_rate: f64,
    pub events: u64,
    /// Events consumed per second from the step's start until it was drained (or the drain limit).
    pub consumed_rate: f64,
    /// Seconds after the last record was produced until everything was consumed (`None`: not within the limit).
    pub drained_after: Option<f64>,
    /// Every action whose trigger was produced in this step: from that record's produce time to readable.
    pub latency_ms: Percentiles,
    /// Actions answering an event of their own debtor (a payment, a broken promise seen, a contact outcome...).
    pub by_event_ms: Percentiles,
    /// mora only: the same actions from the trigger's produce time to the engine producing the action (its record's
    /// create time, millisecond resolution): the engine's share, ordering waits included; the rest of `by_event_ms`
    /// is the commit and the reader.
    pub by_event_produced_ms: Percentiles,
    /// mora only: each input record's wait inside the engine, from its arrival from the client to its application
    /// (ordering waits and the engine thread's other work included), from mora's `mora_processing_seconds`.
    pub engine_wait: Option<super::engine_metrics::BucketQuantiles>,
    /// Actions time released: a timer, a contact window opening or a day starting released them, usually many at
    /// one instant; timed from the record that moved the partition's time past that instant.
    pub time_released_ms: Percentiles,
    /// The time-released actions as the batches they came in (one partition, one instant).
    pub time_released_batches: Batches,
    /// CPU seconds per million events of each process over the step, from its first record produced until it was
    /// drained (as the capacity stretch's figure: the paced step applies records in smaller batches).
    pub cpu_s_per_million_events: std::collections::BTreeMap<String, f64>,
}

/// Actions released together, and how long each batch took to drain.
#[derive(Debug, Default, Serialize)]
pub struct Batches {
    pub batches: u64,
    pub actions: u64,
    /// Actions per batch.
    pub size_p50: u64,
    pub size_max: u64,
    /// From the record that released the batch to its last action readable (ms).
    pub drain_ms_p50: f64,
    pub drain_ms_p99: f64,
    pub drain_ms_max: f64,
    /// mora only: from the record that released the batch to its last action produced by the engine (ms).
    pub produced_ms_p50: f64,
    pub produced_ms_p99: f64,
    /// From the first action of a batch readable to its last (ms): the spread a dialer sees.
    pub spread_ms_p50: f64,
    pub spread_ms_max: f64,
}

impl Batches {
    pub(super) fn of(
        batches: &std::collections::HashMap<(usize, i64), super::probe::Batch>,
    ) -> Self {
        if batches.is_empty() {
            return Self::default();
        }
        let mut sizes: Vec<u64> = batches.values().map(|b| b.actions).collect();
        let mut drains: Vec<u64> = batches
            .values()
            .map(|b| b.last_us.saturating_sub(b.sent_us))
            .collect();
        let mut spreads: Vec<u64> = batches
            .values()
            .map(|b| b.last_us.saturating_sub(b.first_us))
            .collect();
        let mut produced: Vec<u64> = batches
            .values()
            .filter_map(|b| Some(b.last_produced_us?.saturating_sub(b.sent_us)))
            .collect();
        produced.sort_unstable();
        sizes.sort_unstable();
        drains.sort_unstable();
        spreads.sort_unstable();
        let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
        Self {
            batches: batches.len() as u64,
            actions: sizes.iter().sum(),
            size_p50: at(&sizes, 0.5),
            size_max: at(&sizes, 1.0),
            drain_ms_p50: ms(at(&drains, 0.5)),
            drain_ms_p99: ms(at(&drains, 0.99)),
            drain_ms_max: ms(at(&drains, 1.0)),
            produced_ms_p50: if produced.is_empty() {
                0.0
            } else {
                ms(at(&produced, 0.5))
            },
            produced_ms_p99: if produced.is_empty() {
                0.0
            } else {
                ms(at(&produced, 0.99))
            },
            spread_ms_p50: ms(at(&spreads, 0.5)),
            spread_ms_max: ms(at(&spreads, 1.0)),
        }
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean() / 100.0).round() / 10.0,
        }
    }
}

/// Progress at one moment of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the run's system started.
    pub t: f64,
    pub phase: String,
    pub produced: u64,
    pub consumed: u64,
    pub actions: u64,
}

/// mora against the peer, per mode.
#[derive(Debug, Serialize)]
pub struct Ratio {
    pub mode: Mode,
    /// mora's maximum sustainable rate over the peer's.
    pub throughput: f64,
    /// Per load step: the peer's p99 over mora's (above 1: mora's is lower).
    pub p99_peer_over_mora: Vec<(f64, Option<f64>)>,
}

/// Ratios of every mode both systems ran in.
pub(super) fn ratios(runs: &[RunReport]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for mode in [Mode::ExactlyOnce, Mode::AtLeastOnce] {
        let find = |s| {
            runs.iter()
                .find(|r| r.system == s && r.mode == mode && r.error.is_none())
        };
        let (Some(m), Some(p)) = (find(System::Mora), find(System::Peer)) else {
            continue;
        };
        let throughput = if p.capacity.max_rate > 0.0 {
            (m.capacity.max_rate / p.capacity.max_rate * 100.0).round() / 100.0
        } else {
            0.0
        };
        let p99 = m
            .steps
            .iter()
            .zip(&p.steps)
            .map(|(a, b)| {
                let r = (a.latency_ms.p99 > 0.0 && b.latency_ms.count > 0)
                    .then(|| (b.latency_ms.p99 / a.latency_ms.p99 * 100.0).round() / 100.0);
                (a.load, r)
            })
            .collect();
        out.push(Ratio {
            mode,
            throughput,
            p99_peer_over_mora: p99,
        });
    }
    out
}
