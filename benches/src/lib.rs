//! Workloads for mora's benchmarks: a realistic event log recorded from the simulator with the engine in the loop
//! (so contact outcomes, promises and payments after contact are in the mix), split into a warm-up part that builds
//! the portfolio and a measured part.
//!
//! Run: `cargo bench -p mora-benches` (set `MORA_BENCH_DEBTORS` to change the portfolio size, default 1 000 000).

pub mod e2e;

use std::sync::Arc;

use mora_domain::engine::Engine;
use mora_domain::event::Envelope;
use mora_domain::testkit;
use mora_domain::time::{MINUTE_MS, Ts};
use mora_runtime::{CollectingSink, PartitionWorker, Sink};
use mora_sim::{PartitionSim, SimConfig, SimRecord};

/// A recorded event log.
#[derive(Debug)]
pub struct Workload {
    /// Debtors in the portfolio.
    pub debtors: usize,
    /// Events that build the portfolio's state.
    pub warm: Vec<Envelope>,
    /// Events measured after the warm-up.
    pub measured: Vec<Envelope>,
}

/// Records `warm_days + measured_days` of a one-partition portfolio of `debtors`.
pub fn record(engine: &Arc<Engine>, debtors: u64, warm_days: u32, measured_days: u32) -> Workload {
    let cfg = SimConfig {
        debtors,
        days: warm_days + measured_days,
        partitions: 1,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    record_partition(engine, &cfg, 0, warm_days)
}

/// Records partition `p` of the portfolio `cfg` describes, the first `warm_days` as its warm-up.
pub fn record_partition(engine: &Arc<Engine>, cfg: &SimConfig, p: u32, warm_days: u32) -> Workload {
    let split = cfg
        .start_ts()
        .plus_ms(i64::from(warm_days) * mora_domain::time::DAY_MS);
    let mut sim = PartitionSim::new(cfg, p);
    let mut worker = PartitionWorker::new(p as i32, engine.clone());
    let mut sink = CollectingSink::default();
    let (mut warm, mut measured) = (Vec::new(), Vec::new());
    let mut t = cfg.start_ts();
    while t < cfg.end() {
        let tick = t.plus_ms(15 * MINUTE_MS);
        while let Some(SimRecord::Event(ev)) = sim.pop_until(tick) {
            let _ = worker.on_event(&ev, &mut sink);
            feed(&mut sim, &mut sink);
            if ev.occurred_at < split {
                warm.push(ev)
            } else {
                measured.push(ev)
            }
        }
        mora_runtime::Operator::on_tick(&mut worker, tick, &mut sink as &mut dyn Sink);
        feed(&mut sim, &mut sink);
        t = tick;
    }
    Workload {
        debtors: worker.len(),
        warm,
        measured,
    }
}

fn feed(sim: &mut PartitionSim, sink: &mut CollectingSink) {
    for a in sink.actions.drain(..) {
        sim.react(&a);
    }
    sink.audits.clear();
}

/// Builds a worker holding the warmed portfolio.
pub fn warmed(engine: &Arc<Engine>, events: &[Envelope]) -> PartitionWorker {
    let mut worker = PartitionWorker::new(0, engine.clone());
    let mut sink = NullSink;
    for ev in events {
        let _ = worker.on_event(ev, &mut sink);
    }
    worker
}

/// The value of environment variable `name` parsed, or `default` when it is unset or does not parse (benchmarks'
/// knobs).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A sink that drops everything (the benchmark measures deciding, not writing).
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn action(&mut self, _: i32, a: &mora_domain::action::Action) {
        std::hint::black_box(a);
    }
    fn dead_letter(&mut self, _: i32, d: mora_schemas::DeadLetter) {
        std::hint::black_box(d);
    }
}

/// Bytes the allocator (jemalloc, as in the `mora` binary) holds allocated for the program right now.
pub fn heap_allocated() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::allocated::read()
        .ok()
        .map(|b| b as u64)
}

/// Resident set size of this process, from /proc (Linux), in bytes.
pub fn resident_bytes() -> Option<u64> {
    process_memory("self", "VmRSS")
}

/// A memory figure of process `pid` (`self` for this one) from `/proc/<pid>/status` (Linux): `VmRSS` (resident now),
/// `VmHWM` (peak resident)..., in bytes.
pub fn process_memory(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The last instant of a log.
pub fn last_instant(events: &[Envelope]) -> Ts {
    events.last().map_or(Ts(0), |e| e.occurred_at)
}

/// The zones of the synthetic portfolio.
const ZONES: [(&str, &str); 4] = [
    ("CO", "America/Bogota"),
    ("MX", "America/Mexico_City"),
    ("CL", "America/Santiago"),
    ("US", "America/New_York"),
];

/// The shipped decision configuration, policies and calendars (`app/defaults`).
pub fn shipped_engine() -> Engine {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../app/defaults");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("config file");
    let parse_dir = |dir: &str| {
        let mut files: Vec<_> = std::fs::read_dir(format!("{root}/{dir}"))
            .expect("config dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
    };
    let decisions = toml::from_str(&read(std::path::Path::new(&format!(
        "{root}/decisions.toml"
    ))))
    .expect("decisions");
    let policies: Vec<_> = parse_dir("policies")
        .iter()
        .map(|p| toml::from_str(&read(p)).expect("policy"))
        .collect();
    let calendars: Vec<_> = parse_dir("holidays")
        .iter()
        .map(|p| toml::from_str(&read(p)).expect("calendar"))
        .collect();
    Engine::new(&decisions, &policies, &calendars).expect("valid configuration")
}

/// A synthetic portfolio: each debtor one obligation due on one of 1 000 days from 2026-03-10, across Bogotá,
/// Mexico City, Santiago and New York.
pub fn synthetic_portfolio(engine: &Arc<Engine>, debtors: usize) -> PartitionWorker {
    let mut w = PartitionWorker::new(0, engine.clone());
    let mut sink = NullSink;
    let at = testkit::ts("2026-03-02T12:00:00Z");
    let first_due = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).expect("date");
    for i in 0..debtors {
        let id = format!("D{i:08}");
        let (country, tz) = ZONES[i % ZONES.len()];
        let currency = match country {
            "CO" => "COP",
            "MX" => "MXN",
            "CL" => "CLP",
            _ => "USD",
        };
        let due = first_due + chrono::Days::new((i * 7919 % 1000) as u64);
        let _ = w.on_event(&testkit::debtor_upserted(&id, country, tz, at), &mut sink);
        let _ = w.on_event(
            &testkit::obligation(&id, "L1", currency, "1000", &due.to_string(), at),
            &mut sink,
        );
    }
    w
}
