//! `mora demo`: a simulated portfolio streamed through the production runtime and decision core, with actions
//! written to files and a summary printed. Needs no servers.

mod partition;
mod summary;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use mora_domain::engine::Engine;
use mora_runtime::PartitionWorker;
use mora_sim::SimConfig;

pub use summary::{QueueEntry, Summary};

/// Set by SIGINT or SIGTERM: the partitions stop at their next simulated quarter hour, the demo removes what it
/// wrote, and `--serve` stops serving.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived since the demo started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Routes SIGINT and SIGTERM to [`interrupted`] (once per process; a second call is a no-op).
fn catch_interrupts() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
            tracing::warn!(error = %e, "Interrupts will stop the demo without cleaning up.");
        }
    });
}

/// Options of `mora demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Debtors in the simulated portfolio.
    #[arg(long, default_value_t = 100_000)]
    pub debtors: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Seed of the simulation; the same seed and partitions give the same actions, byte for byte.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (actions/<channel>.jsonl, dead_letters.jsonl, summary.json).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Partitions (one worker thread each). Part of the simulation's identity: keep it to compare runs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub partitions: u32,
    /// First simulated day.
    #[arg(long, default_value = "2026-01-05")]
    pub start: NaiveDate,
    /// Runtime configuration file (default: the built-in configuration from deploy/config).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also write every decision's audit record to audit.jsonl (large).
    #[arg(long)]
    pub audit: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Keep serving the HTTP API after the simulation, until interrupted.
    #[arg(long)]
    pub serve: bool,
    /// Where the HTTP API listens while the demo runs (default: `listen` of the `[api]` section of `--config`,
    /// else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Do not start the HTTP API.
    #[arg(long, conflicts_with = "serve")]
    pub no_api: bool,
}

impl DemoArgs {
    /// A small, quick run writing to `out` (tests and examples).
    pub fn small(out: impl Into<PathBuf>) -> Self {
        Self {
            debtors: 2_000,
            days: 60,
            seed: 42,
            out: out.into(),
            partitions: 4,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default(),
            config: None,
            audit: false,
            no_progress: true,
            serve: false,
            listen: Some("127.0.0.1:0".into()),
            no_api: true,
        }
    }
}

/// Runs the demo and returns its summary (also written to `out/summary.json`).
pub fn run(args: &DemoArgs, engine: Engine) -> anyhow::Result<Summary> {
    run_serving(args, engine, None, None).map(|(s, _)| s)
}

/// Runs the demo with the HTTP API up while it runs (unless `--no-api`); returns the summary and the server, still
/// serving, for `--serve`. `config` is the runtime file reloads read (`None`: built-in defaults); `api` its `[api]`
/// section (tokens, address, file watching), served as `mora run` serves it.
pub fn run_serving(
    args: &DemoArgs,
    engine: Engine,
    config: Option<PathBuf>,
    api: Option<crate::api::ApiConfig>,
) -> anyhow::Result<(Summary, Option<crate::api::Server>)> {
    let metrics = if args.no_api {
        None
    } else {
        crate::telemetry::prometheus()
    };
    if args.debtors == 0 || args.days == 0 {
        anyhow::bail!("--debtors and --days must be positive");
    }
    let sim = SimConfig {
        debtors: args.debtors,
        days: args.days,
        seed: args.seed,
        start: args.start,
        partitions: args.partitions,
        ..SimConfig::default()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let engine = Arc::new(engine);
    let workers: Vec<Arc<Mutex<PartitionWorker>>> = (0..args.partitions)
        .map(|p| Arc::new(Mutex::new(PartitionWorker::new(p as i32, engine.clone()))))
        .collect();
    let backend = crate::api::DemoBackend {
        workers: workers.clone(),
        engine: Arc::new(Mutex::new(engine.clone())),
    };
    let server = if args.no_api {
        None
    } else {
        start_api(args, backend, (config, api), metrics)?
    };
    let started = Instant::now();
    let parts: Vec<PathBuf> = (0..args.partitions)
        .map(|p| args.out.join(format!(".partition-{p}")))
        .collect();
    catch_interrupts();
    let results = match run_partitions(args, &sim, &workers, &parts) {
        Ok(r) => r,
        Err(e) => {
            // Interrupted or failed: the partitions' unmerged files are of no use to anyone.
            for dir in &parts {
                let _ = std::fs::remove_dir_all(dir);
            }
            if let Some(s) = server {
                s.stop();
            }
            return Err(e);
        }
    };
    let wall = started.elapsed();
    mora_connector_files::merge_partitions(&args.out, &parts)
        .context("cannot merge partition outputs")?;
    let summary = Summary::build(args, &engine, &results, wall);
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(args.out.join("summary.json"), json + "\n")
        .context("cannot write summary.json")?;
    Ok((summary, server))
}

/// Starts the HTTP API over the demo's workers; the demo runs on without it if its port is taken.
fn start_api(
    args: &DemoArgs,
    backend: crate::api::DemoBackend,
    (config, api): (Option<PathBuf>, Option<crate::api::ApiConfig>),
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<Option<crate::api::Server>> {
    let mut api = api.unwrap_or_default();
    if let Some(l) = &args.listen {
        api.listen.clone_from(l);
    }
    let reloader = crate::api::Reloader::new(config);
    let backend: Arc<dyn crate::api::Backend> = Arc::new(backend);
    let router = crate::api::router(backend.clone(), &api, reloader.clone(), metrics, None)?;
    match crate::api::Server::start(&api.listen, router) {
        Ok(s) => {
            if api.watch {
                reloader.watch(backend);
            }
            Ok(Some(s))
        }
        // `--serve` exists to serve the API: without it there is nothing to run for.
        Err(e) if args.serve => Err(e.context(format!(
            "--serve: cannot listen on {} (use --listen to pick another address)",
            api.listen
        ))),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "The demo runs without its HTTP API.");
            Ok(None)
        }
    }
}

/// Simulates every partition on a thread of its own (writing to `parts`), with a progress bar of simulated days.
fn run_partitions(
    args: &DemoArgs,
    sim: &SimConfig,
    workers: &[Arc<Mutex<PartitionWorker>>],
    parts: &[PathBuf],
) -> anyhow::Result<Vec<partition::PartitionResult>> {
    let days_done = AtomicU64::new(0);
    let bar = progress_bar(args);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.partitions)
            .map(|p| {
                let (worker, dir, days_done) = (
                    workers[p as usize].clone(),
                    parts[p as usize].clone(),
                    &days_done,
                );
                std::thread::Builder::new()
                    .name(format!("partition-{p}"))
                    .spawn_scoped(scope, move || {
                        partition::run(p, sim, &worker, &dir, args.audit, days_done)
                    })
            })
            .collect();
        while handles
            .iter()
            .all(|h| h.as_ref().is_ok_and(|h| !h.is_finished()))
        {
            bar.set_position(days_done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .map_err(|_| anyhow::anyhow!("a partition worker panicked"))?,
                Err(e) => Err(anyhow::anyhow!("cannot start a partition thread: {e}")),
            })
            .collect::<anyhow::Result<Vec<_>>>()
    });
    bar.finish_and_clear();
    results
}

/// The progress bar of simulated days over all partitions (hidden with `--no-progress`).
fn progress_bar(args: &DemoArgs) -> ProgressBar {
    let total = u64::from(args.days) * u64::from(args.partitions);
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} simulated days {pos}/{len} [{bar:40}] {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
