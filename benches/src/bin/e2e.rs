//! `cargo run --release -p mora-benches --bin e2e -- [OPTIONS]`: mora end to end against the real broker (and state
//! store), side by side with a Kafka Streams peer. Start the services first (`deploy/services.sh up`), or use
//! `benches/e2e.sh`, which does. See `benches/RESULTS.md` for figures and how they were made.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mora_benches::e2e::{self, Mode, System};

/// The engine's own allocator, so that the harness measures what `mora run` does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    about = "mora end to end: sustained events/s and event→action latency under load, beside a Kafka Streams peer"
)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MORA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// CQL contact points of the state store for mora (comma-separated).
    #[arg(long, env = "MORA_CQL_NODES", default_value = "127.0.0.1:9042")]
    cql: String,
    /// Run mora without the state store.
    #[arg(long)]
    no_state: bool,
    /// mora's `state.flush_interval` in milliseconds (default: the engine's, 1 s): longer coalesces more changes of
    /// a debtor into one row write.
    #[arg(long)]
    state_flush_ms: Option<u64>,
    /// mora's `state.audit_ledger = false`: audit records only on the audit topic, not also stored in the ledger table.
    #[arg(long)]
    no_audit_ledger: bool,
    /// mora's `kafka.max_idle` in milliseconds: how long a record waits for an input topic that has nothing new at
    /// the broker before it is applied (default: the engine's).
    #[arg(long)]
    max_idle_ms: Option<u64>,
    /// A raw librdkafka option for mora's Kafka clients, as `[kafka.librdkafka_options]` (repeatable), e.g.
    /// `--librdkafka linger.ms=20`.
    #[arg(long = "librdkafka", value_name = "KEY=VALUE", value_parser = key_value)]
    librdkafka: Vec<(String, String)>,
    /// mora's engine threads (`[engine] threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Debtors in the simulated portfolio.
    #[arg(long, default_value_t = 1_000_000)]
    debtors: u64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    partitions: u32,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Simulated days produced as the backlog that measures the maximum sustainable rate.
    #[arg(long, default_value_t = 5.0)]
    warmup_days: f64,
    /// Records after the backlog produced flat out to measure the maximum sustainable rate.
    #[arg(long, default_value_t = 600_000)]
    capacity_records: usize,
    /// Seconds of each load step.
    #[arg(long, default_value_t = 20.0)]
    step_seconds: f64,
    /// Loads, as percentages of the maximum sustainable rate.
    #[arg(long, value_delimiter = ',', default_value = "25,50,75,100")]
    loads: Vec<f64>,
    /// Size the load steps as percentages of this rate (records/s) instead of the maximum sustainable rate the
    /// run measured, so that runs of different builds, or on a busier machine, are offered the same load.
    #[arg(long)]
    step_base_rate: Option<f64>,
    /// Systems to run: mora, peer.
    #[arg(long, value_delimiter = ',', default_value = "mora,peer")]
    systems: Vec<String>,
    /// Delivery modes: eos, alo.
    #[arg(long, value_delimiter = ',', default_value = "eos,alo")]
    modes: Vec<String>,
    /// The peer's Maven project.
    #[arg(long, default_value = "benches/peers/kafka-streams")]
    peer_dir: PathBuf,
    /// Where the report and plots go.
    #[arg(long, default_value = "out/e2e")]
    out: PathBuf,
}

/// `KEY=VALUE`, both non-empty.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The engine's own logs (RUST_LOG, default warnings), on stderr with the progress display.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,apache_avro=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runs = Vec::new();
    for s in &args.systems {
        let system = match s.as_str() {
            "mora" => System::Mora,
            "peer" => System::Peer,
            other => anyhow::bail!("--systems: `{other}` is not mora or peer"),
        };
        for m in &args.modes {
            let mode = match m.as_str() {
                "eos" => Mode::ExactlyOnce,
                "alo" => Mode::AtLeastOnce,
                other => anyhow::bail!("--modes: `{other}` is not eos or alo"),
            };
            runs.push((system, mode));
        }
    }
    anyhow::ensure!(args.threads >= 1, "--threads: at least 1");
    anyhow::ensure!(
        args.loads.iter().all(|l| *l > 0.0 && *l <= 200.0),
        "--loads: percentages between 0 and 200"
    );
    let opts = e2e::Options {
        brokers: args.brokers.clone(),
        state_nodes: (!args.no_state)
            .then(|| args.cql.split(',').map(|s| s.trim().to_string()).collect()),
        max_idle: args.max_idle_ms.map(std::time::Duration::from_millis),
        librdkafka: args.librdkafka.clone(),
        state_flush: args.state_flush_ms.map(std::time::Duration::from_millis),
        audit_ledger: !args.no_audit_ledger,
        threads: args.threads,
        debtors: args.debtors,
        partitions: args.partitions,
        seed: args.seed,
        warmup_days: args.warmup_days,
        capacity_records: args.capacity_records,
        step_seconds: args.step_seconds,
        loads: args.loads.iter().map(|l| l / 100.0).collect(),
        step_base_rate: args.step_base_rate,
        runs,
        peer_dir: args.peer_dir.clone(),
        out: args.out.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let engine = Arc::new(
        mora::config::load(None)
            .context("the built-in configuration")?
            .engine,
    );
    let report = e2e::run(&opts, engine)?;
    for r in &report.runs {
        let name = format!("{:?} {}", r.system, r.mode.short()).to_lowercase();
        if let Some(e) = &r.error {
            eprintln!("{name}: failed: {e}");
            continue;
        }
        eprintln!(
            "{name}: backlog {:.0} events/s, capacity {:.0} events/s; {} actions, {} duplicates",
            r.warmup.max_rate, r.capacity.max_rate, r.actions, r.duplicates
        );
        eprintln!(
            "  capacity stretch, CPU seconds per million events: {}",
            cpu_line(&r.capacity.cpu_s_per_million_events)
        );
        if let Some(s) = &r.capacity.store {
            eprintln!(
                "  capacity stretch, state store per event: {:.4} requests, {:.3} statements, {:.3} rows; {} input pauses",
                s.requests_per_event, s.statements_per_event, s.rows_per_event, s.input_pauses
            );
        }
        for s in &r.steps {
            eprintln!(
                "  {:>4.0}% ({:>6.0}/s offered, {:>6.0}/s consumed): p50 {:>7.1} ms  p99 {:>7.1} ms  p99.9 {:>7.1} ms  ({} timed)",
                s.load * 100.0,
                s.offered_rate,
                s.consumed_rate,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.latency_ms.p999,
                s.latency_ms.count
            );
            let b = &s.time_released_batches;
            eprintln!(
                "        by event: p50 {:.1} ms p99 {:.1} ms ({}); time released: p50 {:.1} ms p99 {:.1} ms ({}) in {} batches (size p50 {}, max {}), drained in p50 {:.1} / p99 {:.1} / max {:.1} ms",
                s.by_event_ms.p50,
                s.by_event_ms.p99,
                s.by_event_ms.count,
                s.time_released_ms.p50,
                s.time_released_ms.p99,
                s.time_released_ms.count,
                b.batches,
                b.size_p50,
                b.size_max,
                b.drain_ms_p50,
                b.drain_ms_p99,
                b.drain_ms_max
            );
            if s.by_event_produced_ms.count > 0 {
                eprintln!(
                    "        produced by the engine after: by event p50 {:.1} ms p99 {:.1} ms; batches' last action p50 {:.1} ms p99 {:.1} ms",
                    s.by_event_produced_ms.p50,
                    s.by_event_produced_ms.p99,
                    b.produced_ms_p50,
                    b.produced_ms_p99
                );
            }
            if let Some(w) = s.engine_wait.as_ref().filter(|w| w.count > 0) {
                let bound = |v: Option<f64>| {
                    v.map_or("past the last bucket".into(), |ms| format!("<= {ms} ms"))
                };
                eprintln!(
                    "        records' wait in the engine, arrival to applied ({} records): p50 {}, p99 {}",
                    w.count,
                    bound(w.p50_at_most_ms),
                    bound(w.p99_at_most_ms)
                );
            }
            eprintln!(
                "        CPU seconds per million events: {}",
                cpu_line(&s.cpu_s_per_million_events)
            );
        }
    }
    for ratio in &report.ratios {
        eprintln!(
            "mora / peer ({}): throughput ×{:.2}; peer p99 over mora p99 by load: {:?}",
            ratio.mode.short(),
            ratio.throughput,
            ratio.p99_peer_over_mora
        );
    }
    eprintln!("report: {}", args.out.join("report.json").display());
    Ok(())
}

/// CPU seconds per million events by process, as one line.
fn cpu_line(per_process: &std::collections::BTreeMap<String, f64>) -> String {
    per_process
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}
