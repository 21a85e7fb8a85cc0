//! `mora run` and `mora loadgen`: the streaming engine on Kafka and its load generator.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use mora_connector_kafka::{KafkaConfig, create_topics, run_with_registry};
use mora_connector_scylla::{StateConfig, StateHandle};
use mora_loadgen::{LoadgenOptions, loadgen_with_ids};

use crate::config;

/// Options of `mora run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Runtime configuration file with a `[kafka]` section (e.g. deploy/mora.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Where the HTTP API listens (default: `api.listen`, or 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Do not start the HTTP API.
    #[arg(long)]
    pub no_api: bool,
}

/// Options of `mora migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// Runtime configuration file with a `[state]` section (e.g. deploy/mora.toml).
    #[arg(long)]
    pub config: PathBuf,
}

/// Creates the state store's keyspace and tables (idempotent).
#[allow(clippy::print_stdout)]
pub fn run_migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let loaded = config::load(Some(&args.config))?;
    let state = loaded.app.state.clone().with_context(|| {
        format!(
            "{}: `state`: section missing (mora migrate needs state.nodes)",
            args.config.display()
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shards = rt.block_on(mora_connector_scylla::migrate(&state))?;
    println!(
        "keyspace {} ready on {:?}: {} tables, {} shards per Kafka partition",
        state.keyspace,
        state.nodes,
        mora_connector_scylla::schema_statements(&state).len() - 1,
        shards
    );
    Ok(())
}

/// Options of `mora loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Bootstrap servers.
    #[arg(long, env = "MORA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Debtors in the simulated portfolio.
    #[arg(long, default_value_t = 10_000)]
    pub debtors: u64,
    /// Records to produce.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Records per second at most (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated days available.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Create the input and output topics first (skipping those that exist).
    #[arg(long)]
    pub create_topics: bool,
    /// Partitions of created topics.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Runtime configuration whose topic names and decision configuration to use (default: built-in).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// How long `mora run` waits for the state store at start before giving up.
const STORE_PATIENCE: Duration = Duration::from_secs(60);

/// Connects the state store of `[state]`, if configured: the ScyllaDB connector behind the runtime's port. Its
/// driver runs on one I/O thread per engine thread (two at least): encoding rows and the driver's requests scale
/// with the threads that flush, and an idle runtime thread costs nothing.
pub fn connect_store(
    state: Option<StateConfig>,
    engine_threads: usize,
) -> anyhow::Result<Option<Box<dyn mora_runtime::StateStore>>> {
    let Some(cfg) = state else {
        return Ok(None);
    };
    let handle = StateHandle::connect_with_workers(cfg, STORE_PATIENCE, engine_threads.max(2))
        .context("connecting the state store")?;
    Ok(Some(Box::new(handle)))
}

/// How long past `kafka.shutdown_timeout` a stopping process waits for its engine threads before exiting anyway: a
/// commit already in progress when the stop comes finishes first (up to 30 s), and the client's own requests can
/// outlast the deadline by their timeout.
const STOP_GRACE: Duration = Duration::from_secs(40);

/// Runs the engine until SIGINT or SIGTERM.
#[allow(clippy::print_stdout)]
pub fn run_engine(args: &RunArgs) -> anyhow::Result<()> {
    // Before anything records a metric: handles taken earlier would stay detached from the exporter.
    let metrics = crate::telemetry::prometheus();
    let loaded = config::load(Some(&args.config))?;
    let kafka = loaded.app.kafka.clone().with_context(|| {
        format!(
            "{}: `kafka`: section missing (mora run needs kafka.brokers)",
            args.config.display()
        )
    })?;
    if loaded.app.state.is_none() {
        tracing::warn!(
            "No [state] section: partitions are rebuilt by replaying their input from the beginning."
        );
    }
    let threads = loaded.app.engine.threads();
    let store = connect_store(loaded.app.state.clone(), threads)?;
    let schemas = match &loaded.app.schema_registry {
        Some(r) => Some(crate::schemas::connect(r, &kafka.topics)?),
        None => None,
    };
    let shutdown_timeout = kafka.shutdown_timeout;
    let handle = run_with_registry(kafka, Arc::new(loaded.engine), store, threads, schemas)?;
    let server = if args.no_api {
        None
    } else {
        let mut api = loaded.app.api.clone().unwrap_or_default();
        if let Some(l) = &args.listen {
            api.listen.clone_from(l);
        }
        let backend: Arc<dyn crate::api::Backend> =
            Arc::new(crate::api::KafkaBackend(handle.view()));
        let reloader = crate::api::Reloader::new(Some(args.config.clone()));
        let router = crate::api::router(
            backend.clone(),
            &api,
            reloader.clone(),
            metrics,
            loaded.app.state.clone(),
        )?;
        if api.watch {
            reloader.watch(backend);
        }
        Some(crate::api::Server::start(&api.listen, router)?)
    };
    let stop = handle.stopper();
    let backstop = shutdown_timeout + STOP_GRACE;
    let once = std::sync::Once::new();
    ctrlc::set_handler(move || {
        stop.store(true, Ordering::SeqCst);
        // The engine threads bound every wait of their stop by `shutdown_timeout`; this is the net under them.
        once.call_once(|| {
            std::thread::spawn(move || {
                std::thread::sleep(backstop);
                tracing::error!(after = ?backstop, "The engine did not stop in time; exiting without waiting further (the open transaction is aborted by the next owner).");
                std::process::exit(1);
            });
        });
    })
    .context("cannot install the signal handler")?;
    tracing::info!("Engine running; SIGINT or SIGTERM stops it after a final commit.");
    let mut last = std::time::Instant::now();
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= Duration::from_secs(10) {
            let s = handle.stats();
            let (rows, lag_ms) = (s.state.map(|st| st.rows), s.state_lag_ms);
            tracing::info!(threads, records = s.records, actions = s.actions, dead_letters = s.dead_letters, commits = s.commits, state_rows = ?rows, state_lag_ms = lag_ms, partitions = ?s.assigned, "Progress.");
            last = std::time::Instant::now();
        }
    }
    let mut handle = handle;
    let stats = handle.join();
    if let Some(s) = server {
        s.stop();
    }
    let stats = stats?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

/// Produces the simulated event mix.
#[allow(clippy::print_stdout)]
pub fn run_loadgen(args: &LoadgenArgs) -> anyhow::Result<()> {
    let loaded = config::load(args.config.as_deref())?;
    let mut kafka = loaded
        .app
        .kafka
        .clone()
        .unwrap_or_else(|| KafkaConfig::new(args.brokers.clone()));
    kafka.brokers.clone_from(&args.brokers);
    if args.create_topics {
        let created = create_topics(&kafka, args.partitions, 1)?;
        println!("created {} topics", created.len());
    }
    let opts = LoadgenOptions {
        debtors: args.debtors,
        events: args.events,
        rate: args.rate,
        seed: args.seed,
        days: args.days,
    };
    let ids = match &loaded.app.schema_registry {
        Some(r) => crate::schemas::register_for_producer(r, &kafka.topics)?,
        None => Default::default(),
    };
    let report = loadgen_with_ids(&kafka, &opts, Arc::new(loaded.engine), &ids)?;
    for (topic, n) in &report.per_topic {
        println!("{topic:<32} {n:>10}");
    }
    println!(
        "{} records in {:.1}s ({:.0}/s); last simulated instant {}",
        report.total,
        report.seconds,
        report.total as f64 / report.seconds.max(1e-9),
        report
            .last_event_at
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    Ok(())
}
