//! The schema registry in the binary: which schema each topic carries, the registry mode of `mora run`, and the
//! `mora schemas check` and `mora schemas register` commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mora_connector_kafka::TopicsConfig;
use mora_connector_registry::outputs::{self, PrepareError, TopicSchema};
use mora_connector_registry::{RegistryClient, RegistryConfig};
use mora_domain::ids::Channel;
use mora_runtime::RegistrySchemas;
use mora_schemas::{Family, SchemaKind, SchemaTable};

use crate::config;

/// The topics mora reads (the debtor event families) and writes (actions per channel, audit, dead letters, and the
/// clock topic, which its wall clock writes), each with its schema.
pub fn topic_schemas(topics: &TopicsConfig) -> (Vec<TopicSchema>, Vec<TopicSchema>) {
    let inputs = Family::ALL
        .iter()
        .filter(|f| **f != Family::Clock)
        .map(|f| TopicSchema {
            topic: topics.input(*f),
            kind: SchemaKind::Event(*f),
        })
        .collect();
    let mut outputs: Vec<TopicSchema> = Channel::ALL
        .iter()
        .map(|c| TopicSchema {
            topic: topics.actions(*c),
            kind: SchemaKind::Action,
        })
        .collect();
    outputs.push(TopicSchema {
        topic: topics.audit.clone(),
        kind: SchemaKind::Audit,
    });
    outputs.push(TopicSchema {
        topic: topics.dead_letter.clone(),
        kind: SchemaKind::DeadLetter,
    });
    outputs.push(TopicSchema {
        topic: topics.input(Family::Clock),
        kind: SchemaKind::Event(Family::Clock),
    });
    (inputs, outputs)
}

/// How long `mora run` waits at start for a registry that cannot be reached (as for the state store).
const REGISTRY_PATIENCE: Duration = Duration::from_secs(60);

/// `mora run`'s registry mode: the output schemas registered (or found) under their subjects, and an empty table
/// of writer schemas that fills as input ids arrive. A registry that cannot be reached is retried with backoff for
/// up to a minute; a refusal stops at once, naming the subject.
pub fn connect(
    cfg: &RegistryConfig,
    topics: &TopicsConfig,
) -> anyhow::Result<Arc<RegistrySchemas>> {
    let client = Arc::new(RegistryClient::new(cfg)?);
    let (_, outs) = topic_schemas(topics);
    let deadline = Instant::now() + REGISTRY_PATIENCE;
    let mut wait = Duration::from_millis(200);
    let ids = loop {
        match outputs::prepare(&client, cfg, &outs) {
            Ok(ids) => break ids,
            Err(PrepareError::Unavailable(m)) if Instant::now() + wait < deadline => {
                tracing::warn!(error = %m, retry_in = ?wait, "Schema registry unavailable at start; retrying.");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => anyhow::bail!("schema registry: {e}"),
        }
    };
    tracing::info!(registry = ?cfg.url, subjects = ids.len(), auto_register = cfg.auto_register, "Output schemas are registered; input records are read by their registry ids.");
    Ok(Arc::new(RegistrySchemas::new(
        client,
        SchemaTable::with_capacity(cfg.cache),
        ids,
    )))
}

/// What a producer using the registry does before writing: mora's input schemas (and the clock's) registered
/// under their topics' subjects; returns the id to frame each family's records with.
pub fn register_for_producer(
    cfg: &RegistryConfig,
    topics: &TopicsConfig,
) -> anyhow::Result<std::collections::HashMap<Family, u32>> {
    let client = RegistryClient::new(cfg)?;
    let (mut inputs, outs) = topic_schemas(topics);
    inputs.extend(
        outs.into_iter()
            .filter(|t| t.kind == SchemaKind::Event(Family::Clock)),
    );
    let registered = outputs::register_inputs(&client, cfg, &inputs).map_err(anyhow::Error::msg)?;
    Ok(inputs
        .iter()
        .zip(registered)
        .filter_map(|(t, (_, id))| match t.kind {
            SchemaKind::Event(f) => Some((f, id)),
            _ => None,
        })
        .collect())
}

/// `mora schemas ...`.
#[derive(Debug, clap::Args)]
pub struct SchemasArgs {
    #[command(subcommand)]
    command: SchemasCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SchemasCommand {
    /// Is every schema mora reads and writes compatible with what the registry holds (under each subject's level)?
    /// Exits non-zero naming the subject and the field when one is not.
    Check {
        /// Runtime configuration file (its [schema_registry] and [kafka] topics).
        #[arg(long)]
        config: PathBuf,
    },
    /// Registers mora's input schemas under the subjects of the input topics, for producers to write with.
    Register {
        /// Runtime configuration file (its [schema_registry] and [kafka] topics).
        #[arg(long)]
        config: PathBuf,
    },
}

fn setup(path: &std::path::Path) -> anyhow::Result<(RegistryConfig, TopicsConfig)> {
    let loaded = config::load(Some(path))?;
    let registry = loaded
        .app
        .schema_registry
        .clone()
        .with_context(|| format!("{}: `schema_registry`: section missing", path.display()))?;
    let topics = loaded.app.kafka.map(|k| k.topics).unwrap_or_default();
    Ok((registry, topics))
}

/// Runs `mora schemas check` or `register`.
#[allow(clippy::print_stdout)]
pub fn run(args: &SchemasArgs) -> anyhow::Result<()> {
    match &args.command {
        SchemasCommand::Check { config } => {
            let (cfg, topics) = setup(config)?;
            let client = RegistryClient::new(&cfg)?;
            let (inputs, outs) = topic_schemas(&topics);
            let findings = outputs::check(&client, &cfg, &inputs, &outs)?;
            let mut bad = Vec::new();
            for f in &findings {
                let verdict = match (&f.problem, &f.note) {
                    (Some(p), _) => format!("INCOMPATIBLE: {p}"),
                    (None, Some(n)) => format!("ok ({n})"),
                    (None, None) => "ok".into(),
                };
                println!(
                    "{:<6} {:<48} {:<10} {verdict}",
                    f.direction, f.subject, f.level
                );
                if f.problem.is_some() {
                    bad.push(f.subject.clone());
                }
            }
            if !bad.is_empty() {
                anyhow::bail!(
                    "{} subject(s) incompatible with mora's schemas: {}",
                    bad.len(),
                    bad.join(", ")
                );
            }
            println!("{} subjects compatible.", findings.len());
        }
        SchemasCommand::Register { config } => {
            let (cfg, topics) = setup(config)?;
            let client = RegistryClient::new(&cfg)?;
            let (inputs, _) = topic_schemas(&topics);
            for (subject, id) in
                outputs::register_inputs(&client, &cfg, &inputs).map_err(anyhow::Error::msg)?
            {
                println!("{subject:<48} id {id}");
            }
        }
    }
    Ok(())
}
