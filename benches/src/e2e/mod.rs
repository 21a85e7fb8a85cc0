//! The end-to-end harness: the simulator's realistic mix over a large portfolio, produced to the real broker, through
//! mora (and its state store) and through the Kafka Streams peer, in both delivery modes.
//!
//! Each run gets fresh topics. The first simulated days are produced as a backlog; the system then starts and
//! consumes it flat out, which gives its maximum sustainable rate (events consumed per second between 10% and 90%
//! of the backlog). The log then continues at 25%, 50%, 75% and 100% of that rate, a step each, and a
//! `read_committed` consumer times every action from the produce time of the record that triggered it to the
//! moment it became readable (HdrHistogram per step). Figures are reported, never asserted.

mod cpu;
mod engine_metrics;
mod kafka;
mod log;
mod plot;
mod probe;
mod report;
mod systems;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mora_connector_scylla::StateConfig;
use mora_domain::engine::Engine;

pub use report::Report;
pub use systems::{Mode, System};

use engine_metrics::EngineMetrics;
use kafka::{GroupProgress, Sender, WARMUP};
use log::Log;
use probe::{Probe, ProbeSpec};
use report::{Percentiles, RunReport, Sample, Step, Warmup};
use systems::Started;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// CQL contact points of the state store for mora (`None`: in memory only).
    pub state_nodes: Option<Vec<String>>,
    /// mora's `kafka.max_idle` (`None`: the engine's default).
    pub max_idle: Option<Duration>,
    /// Raw librdkafka options for mora's Kafka clients (`kafka.librdkafka_options`).
    pub librdkafka: Vec<(String, String)>,
    /// mora's `state.flush_interval` (`None`: the engine's default).
    pub state_flush: Option<Duration>,
    /// mora's `state.audit_ledger`.
    pub audit_ledger: bool,
    /// mora's engine threads.
    pub threads: usize,
    /// Debtors in the simulated portfolio.
    pub debtors: u64,
    /// Partitions of every topic.
    pub partitions: u32,
    /// Seed of the simulated log (the same for every system).
    pub seed: u64,
    /// Simulated days produced as the backlog.
    pub warmup_days: f64,
    /// Records after the backlog produced flat out to measure the maximum sustainable rate.
    pub capacity_records: usize,
    /// Seconds of each load step.
    pub step_seconds: f64,
    /// Shares of the maximum sustainable rate, one step each.
    pub loads: Vec<f64>,
    /// The rate (records/s) the load steps are shares of, instead of the maximum sustainable rate each run
    /// measures: runs of different builds are then offered the same steps.
    pub step_base_rate: Option<f64>,
    /// The systems and delivery modes to run, in order.
    pub runs: Vec<(System, Mode)>,
    /// The peer's Maven project.
    pub peer_dir: PathBuf,
    /// Where the report, plots and the peer's logs go.
    pub out: PathBuf,
    /// How the harness was invoked, for the report.
    pub command: String,
}

/// Runs everything and writes `report.json`, `latency_by_load.png` and `throughput.png` into `out`.
pub fn run(opts: &Options, engine: Arc<Engine>) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.out)?;
    // Before mora starts: its histograms bind to the recorder there when they are created.
    EngineMetrics::install();
    let origin = Instant::now();
    let spinner = |msg: String| {
        let pb = ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message(msg);
        pb
    };
    let classpath = if opts.runs.iter().any(|(s, _)| *s == System::Peer) {
        let pb = spinner("building the Kafka Streams peer with Maven".into());
        let cp = systems::build_peer(&opts.peer_dir)?;
        pb.finish_with_message("peer built");
        Some(cp)
    } else {
        None
    };
    let pb = spinner(format!(
        "generating the backlog: {} debtors, {} simulated days",
        opts.debtors, opts.warmup_days
    ));
    let mut log = Log::new(
        opts.debtors,
        opts.partitions,
        opts.seed,
        opts.warmup_days,
        engine.clone(),
    )?;
    pb.finish_with_message(format!(
        "backlog: {} records ({} events)",
        log.warmup,
        log.events_in(0..log.warmup)
    ));
    let state = opts.state_nodes.clone().map(|nodes| {
        let mut s = StateConfig::new(nodes);
        s.consistency = mora_connector_scylla::ConsistencyLevel::One;
        s.audit_ledger = opts.audit_ledger;
        if let Some(every) = opts.state_flush {
            s.flush_interval = every;
        }
        s
    });
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut runs = Vec::new();
    for (system, mode) in &opts.runs {
        let prefix = format!(
            "e2e{stamp}.{}.{}.",
            format!("{system:?}").to_lowercase(),
            mode.short()
        );
        let r = one_run(
            opts,
            &mut log,
            *system,
            *mode,
            &prefix,
            state.as_ref(),
            classpath.as_deref(),
            engine.clone(),
            origin,
        );
        runs.push(r);
    }
    let report = Report {
        machine: report::Machine::here(),
        command: opts.command.clone(),
        debtors: opts.debtors,
        partitions: opts.partitions,
        seed: opts.seed,
        state_store: state.is_some(),
        warmup_records: log.warmup,
        capacity_records: opts.capacity_records,
        warmup_simulated_until: format!("{}", log.warmup_until()),
        step_seconds: opts.step_seconds,
        loads: opts.loads.clone(),
        ratios: report::ratios(&runs),
        runs,
    };
    std::fs::write(
        opts.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    match plot::register_font() {
        Ok(()) => {
            plot::latency_by_load(&report, &opts.out.join("latency_by_load.png"))?;
            plot::throughput_over_time(&report, &opts.out.join("throughput.png"))?;
        }
        Err(e) => eprintln!("plots skipped: {e}"),
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn one_run(
    opts: &Options,
    log: &mut Log,
    system: System,
    mode: Mode,
    prefix: &str,
    state: Option<&StateConfig>,
    classpath: Option<&str>,
    engine: Arc<Engine>,
    origin: Instant,
) -> RunReport {
    let mut r = RunReport {
        system,
        mode,
        warmup: Warmup::default(),
        capacity: Warmup::default(),
        steps: Vec::new(),
        actions: 0,
        duplicates: 0,
        untimed: 0,
        peak_resident_mib: None,
        series: Vec::new(),
        engine: None,
        error: None,
    };
    if let Err(e) = drive(opts, log, prefix, state, classpath, engine, origin, &mut r) {
        eprintln!("{system:?} {}: {e:#}", mode.short());
        r.error = Some(format!("{e:#}"));
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn drive(
    opts: &Options,
    log: &mut Log,
    prefix: &str,
    state: Option<&StateConfig>,
    classpath: Option<&str>,
    engine: Arc<Engine>,
    origin: Instant,
    r: &mut RunReport,
) -> anyhow::Result<()> {
    let partitions = opts.partitions as i32;
    let title = format!("{:?} {}", r.system, r.mode.short()).to_lowercase();
    // Topics and the system (mora creates its own topics; the peer's are created for it).
    let mut started: Started = match r.system {
        System::Mora => systems::start_mora(
            &opts.brokers,
            prefix,
            r.mode,
            partitions,
            state,
            engine,
            opts,
        )?,
        System::Peer => {
            let cp = classpath.ok_or_else(|| anyhow::anyhow!("the peer was not built"))?;
            systems::start_peer(cp, &opts.brokers, prefix, r.mode, partitions, &opts.out)?
        }
    };
    let result = measure(opts, log, prefix, origin, &title, &mut started, r);
    if let Some(rss) = started.running.resident_bytes() {
        r.peak_resident_mib = Some(
            r.peak_resident_mib
                .unwrap_or(0.0)
                .max(rss as f64 / 1048576.0),
        );
    }
    let stats = started.running.stop()?;
    if let Some(s) = stats {
        r.engine = serde_json::to_value(&s).ok();
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn measure(
    opts: &Options,
    log: &mut Log,
    prefix: &str,
    origin: Instant,
    title: &str,
    started: &mut Started,
    r: &mut RunReport,
) -> anyhow::Result<()> {
    let partitions = opts.partitions as i32;
    let engine_metrics = EngineMetrics::install();
    let sender = Sender::new(&opts.brokers, prefix, opts.partitions as usize, origin)?;
    let probe = Probe::start(
        ProbeSpec {
            brokers: &opts.brokers,
            group: &format!("{prefix}probe"),
            topics: &started.outputs,
            format: started.format,
            partitions: opts.partitions,
            steps: opts.loads.len(),
        },
        sender.index.clone(),
        origin,
    )?;
    let progress = GroupProgress::new(
        &opts.brokers,
        &started.group,
        &systems::input_topics(prefix, false),
        partitions,
    )?;
    let run_start = Instant::now();
    let read_actions = || probe.actions.load(std::sync::atomic::Ordering::Relaxed);
    let sample = |r: &mut RunReport, phase: &str, produced: u64, consumed: u64| {
        r.series.push(Sample {
            t: (run_start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            phase: phase.to_string(),
            produced,
            consumed,
            actions: read_actions(),
        });
    };
    // Samples taken while producing (the producer's callback cannot borrow the report): pushed afterwards with
    // their own time and action count.
    let push_taken =
        |r: &mut RunReport, phase: &str, base: u64, taken: Vec<(f64, u64, u64, u64)>| {
            for (t, n, c, a) in taken {
                r.series.push(Sample {
                    t: (t * 100.0).round() / 100.0,
                    phase: phase.to_string(),
                    produced: base + n,
                    consumed: c,
                    actions: a,
                });
            }
        };
    let bar_style =
        ProgressStyle::with_template("{prefix:>12} {msg:<30} [{bar:40}] {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());

    // Two stretches of the log produced flat out and consumed as fast as the system can: the backlog builds the
    // portfolio (not timed), the capacity stretch that follows measures the maximum sustainable rate on a portfolio
    // in its stride (between 10% and 90% of it, so that start-up and the tail do not count).
    let capacity_end = log.warmup + opts.capacity_records;
    log.ensure(capacity_end)?;
    let mut produced = 0u64;
    let mut flat_out = |r: &mut RunReport,
                        range: std::ops::Range<usize>,
                        phase: &str|
     -> anyhow::Result<Warmup> {
        let events = log.events_in(range.clone());
        let bar = ProgressBar::new(events).with_style(bar_style.clone());
        bar.set_prefix(title.to_string());
        bar.set_message(format!("producing the {phase}"));
        let before = progress.committed();
        let cpu_before = cpu::CpuSnapshot::take(started.running.peer_pid());
        let stats_before = started.running.stats();
        let mut during = Vec::new();
        let mut last_sample = Instant::now();
        sender.send(log, range, WARMUP, None, |n| {
            bar.set_position(n.min(events));
            if last_sample.elapsed() >= Duration::from_millis(500) {
                during.push((
                    run_start.elapsed().as_secs_f64(),
                    n,
                    progress.committed(),
                    read_actions(),
                ));
                last_sample = Instant::now();
            }
        })?;
        push_taken(r, phase, produced, during);
        produced += events;
        bar.set_position(0);
        bar.reset_eta();
        bar.set_message(format!("consuming the {phase}"));
        let started_at = Instant::now();
        // When 10% and 90% of it were consumed: (seconds, events).
        let mut at_10: Option<(f64, u64)> = None;
        let mut at_90: Option<(f64, u64)> = None;
        loop {
            let c = progress.committed().saturating_sub(before);
            let t = started_at.elapsed().as_secs_f64();
            sample(r, phase, produced, c + before);
            bar.set_position(c.min(events));
            if at_10.is_none() && c >= events / 10 {
                at_10 = Some((t, c));
            }
            if at_90.is_none() && c >= events * 9 / 10 {
                at_90 = Some((t, c));
            }
            if c >= events {
                break;
            }
            anyhow::ensure!(
                started.running.alive(),
                "the system stopped during the {phase}"
            );
            anyhow::ensure!(
                started_at.elapsed() < Duration::from_secs(3600),
                "the {phase} was not consumed within an hour"
            );
            track_memory(started, r);
            std::thread::sleep(Duration::from_millis(250));
        }
        let seconds = started_at.elapsed().as_secs_f64();
        let rate = match (at_10, at_90) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => (c1 - c0) as f64 / (t1 - t0),
            _ => events as f64 / seconds,
        };
        bar.finish_with_message(format!("{phase}: {rate:.0} events/s"));
        let cpu_s_per_million_events =
            cpu::CpuSnapshot::take(started.running.peer_pid()).per_event_since(&cpu_before, events);
        let store = match (&stats_before, started.running.stats()) {
            (Some(b), Some(a)) => report::StoreLoad::between(b, &a, events),
            _ => None,
        };
        bar.println(format!(
                "{title} {phase}: CPU s per million events {cpu_s_per_million_events:?}; store {store:?}"
            ));
        Ok(Warmup {
            events,
            seconds: (seconds * 100.0).round() / 100.0,
            max_rate: rate.round(),
            cpu_s_per_million_events,
            store,
        })
    };
    r.warmup = flat_out(r, 0..log.warmup, "backlog")?;
    r.capacity = flat_out(r, log.warmup..capacity_end, "capacity stretch")?;
    let max_rate = opts.step_base_rate.unwrap_or(r.capacity.max_rate);
    let backlog = log.events_in(0..capacity_end);

    // The load steps: the log continues at a share of the maximum rate each.
    let sizes: Vec<usize> = opts
        .loads
        .iter()
        .map(|f| (f * max_rate * opts.step_seconds).ceil() as usize)
        .collect();
    log.ensure(capacity_end + sizes.iter().sum::<usize>())?;
    let mut next = capacity_end;
    let mut consumed_target = backlog;
    for (i, (load, n)) in opts.loads.iter().zip(sizes).enumerate() {
        let rate = load * max_rate;
        let events = log.events_in(next..next + n);
        let bar = ProgressBar::new(n as u64).with_style(
            ProgressStyle::with_template(
                "{prefix:>12} {msg:<28} [{bar:40}] {pos}/{len} ({per_sec})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(title.to_string());
        bar.set_message(format!("{:.0}% load, {:.0} records/s", load * 100.0, rate));
        let step_start = Instant::now();
        let consumed_before = progress.committed();
        let cpu_before = cpu::CpuSnapshot::take(started.running.peer_pid());
        let waits_before = engine_metrics.buckets(ENGINE_WAIT);
        let mut last_sample = Instant::now();
        let phase = format!("load {:.0}%", load * 100.0);
        let mut samples = Vec::new();
        sender.send(log, next..next + n, i as u8, Some(rate), |k| {
            bar.set_position(k);
            if last_sample.elapsed() >= Duration::from_millis(500) {
                samples.push((
                    run_start.elapsed().as_secs_f64(),
                    k,
                    progress.committed(),
                    read_actions(),
                ));
                last_sample = Instant::now();
            }
        })?;
        push_taken(r, &phase, produced, samples);
        produced += events;
        consumed_target += events;
        let sent_at = Instant::now();
        let drain_limit = Duration::from_secs(120);
        let mut drained_after = None;
        loop {
            let c = progress.committed();
            sample(r, &phase, produced, c);
            if c >= consumed_target {
                drained_after = Some(sent_at.elapsed().as_secs_f64());
                break;
            }
            if sent_at.elapsed() > drain_limit || !started.running.alive() {
                break;
            }
            track_memory(started, r);
            std::thread::sleep(Duration::from_millis(200));
        }
        let consumed = progress.committed().saturating_sub(consumed_before);
        let elapsed = step_start.elapsed().as_secs_f64();
        let cpu_s_per_million_events =
            cpu::CpuSnapshot::take(started.running.peer_pid()).per_event_since(&cpu_before, events);
        let engine_wait = started.running.peer_pid().is_none().then(|| {
            engine_metrics
                .buckets(ENGINE_WAIT)
                .since(&waits_before)
                .quantiles()
        });
        // Let the reader catch the last actions of the step.
        std::thread::sleep(Duration::from_secs(2));
        let measured = probe.latency(i);
        let of = |h: fn(&probe::StepLatency) -> &hdrhistogram::Histogram<u64>| {
            measured
                .as_ref()
                .map(|m| Percentiles::of(h(m)))
                .unwrap_or_default()
        };
        let (latency, by_event, by_time, by_event_produced) = (
            of(|m| &m.all),
            of(|m| &m.by_event),
            of(|m| &m.by_time),
            of(|m| &m.by_event_produced),
        );
        let released = measured
            .as_ref()
            .map(|m| report::Batches::of(&m.batches))
            .unwrap_or_default();
        bar.finish_with_message(format!(
            "{:.0}%: p50 {} ms, p99 {} ms (events: p99 {} ms; time-released: {} batches, drained in p50 {} ms)",
            load * 100.0,
            latency.p50,
            latency.p99,
            by_event.p99,
            released.batches,
            released.drain_ms_p50
        ));
        r.steps.push(Step {
            load: *load,
            offered_rate: rate.round(),
            events,
            consumed_rate: (consumed as f64 / elapsed).round(),
            drained_after: drained_after.map(|s| (s * 100.0).round() / 100.0),
            latency_ms: latency,
            by_event_ms: by_event,
            time_released_ms: by_time,
            by_event_produced_ms: by_event_produced,
            engine_wait,
            time_released_batches: released,
            cpu_s_per_million_events,
        });
        next += n;
    }
    probe.stop();
    let ord = std::sync::atomic::Ordering::Relaxed;
    r.actions = probe.actions.load(ord);
    r.duplicates = probe.duplicates.load(ord);
    r.untimed = probe.untimed.load(ord);
    Ok(())
}

/// The engine's histogram of each record's wait from arrival to application.
const ENGINE_WAIT: &str = "mora_processing_seconds";

fn track_memory(started: &Started, r: &mut RunReport) {
    if let Some(rss) = started.running.resident_bytes() {
        let mib = rss as f64 / 1048576.0;
        r.peak_resident_mib = Some(r.peak_resident_mib.unwrap_or(0.0).max(mib));
    }
}
