//! `mora`: the real-time collections engine.
//!
//! ```text
//! mora demo                      # a simulated portfolio through the whole engine, no servers needed
//! mora validate --config FILE    # load and check a configuration, naming the file and field of any error
//! mora migrate --config FILE     # create the state store's keyspace and tables
//! mora run --config FILE         # the engine on Kafka (and the state store, if configured)
//! mora schemas check --config FILE      # mora's schemas against a schema registry's subjects
//! mora loadgen ...               # the simulator's events to the input topics
//! mora replay --config FILE --candidate FILE --out DIR   # backtest a candidate configuration on the log
//! ```

use mora::{config, demo, replay, schemas, stream, telemetry};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// jemalloc: the engine thread allocates small objects at a high rate (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "mora",
    version,
    about = "Real-time collections engine: decides who to contact, how and when, as events arrive."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "MORA_LOG_FORMAT", value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream a simulated portfolio through the engine and write the actions to files (no servers needed).
    Demo(demo::DemoArgs),
    /// Run the engine on Kafka: consume the input topics, decide, write actions, audit and dead letters.
    Run(stream::RunArgs),
    /// Create the state store's keyspace and tables (idempotent).
    Migrate(stream::MigrateArgs),
    /// Produce the simulator's event mix to the input topics.
    Loadgen(stream::LoadgenArgs),
    /// Backtest: replay the input log through the configuration in force and a candidate, compare, write to files.
    Replay(replay::ReplayArgs),
    /// Check mora's schemas against a schema registry, or register its input schemas there.
    Schemas(schemas::SchemasArgs),
    /// Load and validate a configuration (runtime file, decision file, policies, holiday calendars).
    Validate {
        /// Runtime configuration file; omit to check the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logs(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "mora stopped.");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // the commands' output is for people, on stdout
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => {
            let loaded = config::load(args.config.as_deref())?;
            tracing::info!(source = %loaded.source, out = %args.out.display(), "Starting the demo.");
            let (summary, server) = demo::run_serving(
                &args,
                loaded.engine,
                args.config.clone(),
                loaded.app.api.clone(),
            )?;
            print!("{}", summary.render());
            println!(
                "\nWrote {0}/actions/<channel>.jsonl and {0}/summary.json",
                args.out.display()
            );
            if let Some(server) = server {
                if args.serve {
                    println!(
                        "Serving the API on http://{} until interrupted (GET /openapi.json).",
                        server.addr
                    );
                    while !demo::interrupted() {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                }
                server.stop();
            }
        }
        Command::Run(args) => stream::run_engine(&args)?,
        Command::Schemas(args) => schemas::run(&args)?,
        Command::Loadgen(args) => stream::run_loadgen(&args)?,
        Command::Migrate(args) => stream::run_migrate(&args)?,
        Command::Replay(args) => {
            let report = replay::run(&args)?;
            print!("{}", report.render());
            println!(
                "\nWrote {0}/comparison.json, {0}/comparison.md, {0}/in_force/ and {0}/candidate/",
                args.out.display()
            );
        }
        Command::Validate { config } => {
            let loaded = config::load(config.as_deref())?;
            // What `mora run` checks before it serves (tokens, their variables, the listen address).
            if let Some(api) = &loaded.app.api {
                api.validate().with_context(|| loaded.source.clone())?;
            }
            let e = &loaded.engine;
            println!(
                "{} (decisions {}): ok ({} segments, {} queues, jurisdictions {})",
                loaded.source,
                loaded.app.decisions.file.display(),
                e.segmentation.names().len(),
                e.queues.names().len(),
                e.policies.ids().join(", ")
            );
        }
    }
    Ok(())
}
