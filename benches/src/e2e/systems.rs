//! The systems under test: mora (the Kafka pipeline in this process, with the state store when one is given) and
//! the Kafka Streams peer (a JVM of its own, built with Maven).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mora_connector_kafka::{ClockSource, DeliveryMode, KafkaConfig, RunHandle, RunStats};
use mora_connector_scylla::StateConfig;
use mora_domain::engine::Engine;
use mora_domain::ids::Channel;
use mora_schemas::Family;
use serde::Serialize;

use super::probe::OutputFormat;

/// Which system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// mora.
    Mora,
    /// The Kafka Streams peer.
    Peer,
}

/// Delivery guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// mora's transactional output; the peer's `exactly_once_v2`.
    ExactlyOnce,
    /// Plain producers and offset commits.
    AtLeastOnce,
}

impl Mode {
    /// A short label for tables and plots.
    pub fn short(self) -> &'static str {
        match self {
            Mode::ExactlyOnce => "eos",
            Mode::AtLeastOnce => "alo",
        }
    }
}

/// A system started for one run.
#[derive(Debug)]
pub(super) enum Running {
    /// mora in this process.
    Mora(Box<RunHandle>),
    /// The peer's JVM.
    Peer(Child),
}

/// What the harness needs to know about a started system.
#[derive(Debug)]
pub(super) struct Started {
    pub running: Running,
    /// The consumer group whose committed offsets show progress.
    pub group: String,
    /// Where its actions go.
    pub outputs: Vec<String>,
    pub format: OutputFormat,
}

impl Running {
    /// The peer's process id (mora runs in this process).
    pub(super) fn peer_pid(&self) -> Option<u32> {
        match self {
            Running::Mora(_) => None,
            Running::Peer(child) => Some(child.id()),
        }
    }

    /// Stops the system; mora's run statistics, if it was mora.
    pub(super) fn stop(self) -> anyhow::Result<Option<RunStats>> {
        match self {
            Running::Mora(h) => Ok(Some(h.stop()?)),
            Running::Peer(mut child) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(30);
                while child.try_wait()?.is_none() {
                    if Instant::now() > deadline {
                        child.kill()?;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.wait();
                Ok(None)
            }
        }
    }

    /// Resident memory of the system's process, bytes (mora shares this process with the harness).
    pub(super) fn resident_bytes(&self) -> Option<u64> {
        let pid = match self {
            Running::Mora(_) => "self".to_string(),
            Running::Peer(c) => c.id().to_string(),
        };
        crate::process_memory(&pid, "VmRSS")
    }

    /// mora's counters so far (`None` for the peer).
    pub(super) fn stats(&self) -> Option<RunStats> {
        match self {
            Running::Mora(h) => Some(h.stats()),
            Running::Peer(_) => None,
        }
    }

    /// Whether it is still running.
    pub(super) fn alive(&mut self) -> bool {
        match self {
            Running::Mora(h) => h.stats().error.is_none(),
            Running::Peer(c) => matches!(c.try_wait(), Ok(None)),
        }
    }
}

/// Input topic names under `prefix`.
pub(super) fn input_topics(prefix: &str, with_clock: bool) -> Vec<String> {
    Family::ALL
        .iter()
        .filter(|f| with_clock || **f != Family::Clock)
        .map(|f| format!("{prefix}{}", f.name()))
        .collect()
}

/// Starts mora on the topics under `prefix`.
pub(super) fn start_mora(
    brokers: &str,
    prefix: &str,
    mode: Mode,
    partitions: i32,
    state: Option<&StateConfig>,
    engine: Arc<Engine>,
    opts: &super::Options,
) -> anyhow::Result<Started> {
    let mut cfg = KafkaConfig::new(brokers.to_string());
    if let Some(idle) = opts.max_idle {
        cfg.max_idle = idle;
    }
    cfg.mode = match mode {
        Mode::ExactlyOnce => DeliveryMode::ExactlyOnce,
        Mode::AtLeastOnce => DeliveryMode::AtLeastOnce,
    };
    cfg.librdkafka_options
        .extend(opts.librdkafka.iter().cloned());
    cfg.group_id = format!("{prefix}engine");
    cfg.topics.input_prefix = prefix.to_string();
    cfg.topics.actions_prefix = format!("{prefix}actions.");
    cfg.topics.audit = format!("{prefix}audit");
    cfg.topics.dead_letter = format!("{prefix}dead-letter");
    cfg.clock.source = ClockSource::Log;
    mora_connector_kafka::create_topics(&cfg, partitions, 1)?;
    let state = match state {
        Some(s) => {
            let mut s = s.clone();
            s.keyspace = prefix
                .replace(['.', '-'], "_")
                .trim_end_matches('_')
                .to_string();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(mora_connector_scylla::migrate(&s))
                .context("migrating the state store (is it up? deploy/services.sh up)")?;
            Some(s)
        }
        None => None,
    };
    let outputs = Channel::ALL
        .iter()
        .map(|c| cfg.topics.actions(*c))
        .collect();
    let group = cfg.group_id.clone();
    let store = mora::stream::connect_store(state, opts.threads)?;
    let handle = mora_connector_kafka::run_with_state(cfg, engine, store, opts.threads)?;
    Ok(Started {
        running: Running::Mora(Box::new(handle)),
        group,
        outputs,
        format: OutputFormat::MoraAction,
    })
}

/// Builds the peer with Maven (once per harness run) and returns its class path.
pub(super) fn build_peer(dir: &Path) -> anyhow::Result<String> {
    let status = Command::new("mvn")
        .args(["-q", "-B", "package"])
        .current_dir(dir)
        .status()
        .context("running Maven (mvn) to build the peer")?;
    anyhow::ensure!(status.success(), "building the peer with Maven failed");
    let classes = dir.join("target/classes");
    let deps = dir.join("target/dependency/*");
    Ok(format!("{}:{}", classes.display(), deps.display()))
}

/// Starts the peer on the topics under `prefix`, its log in `log`.
pub(super) fn start_peer(
    classpath: &str,
    brokers: &str,
    prefix: &str,
    mode: Mode,
    partitions: i32,
    work: &Path,
) -> anyhow::Result<Started> {
    let output = format!("{prefix}peer-actions");
    let mut topics = input_topics(prefix, true);
    topics.push(output.clone());
    super::kafka::create_topics(brokers, &topics, partitions)?;
    let app = format!("{}peer", prefix.replace('.', "-"));
    let state_dir: PathBuf = work.join(format!("{app}-state"));
    let log = std::fs::File::create(work.join(format!("{app}.log")))?;
    let child = Command::new("java")
        .args([
            "-Xms1g",
            "-Xmx4g",
            "-cp",
            classpath,
            "dev.mora.peer.PeerApp",
        ])
        .args([
            "--brokers",
            brokers,
            "--input-prefix",
            prefix,
            "--output",
            &output,
        ])
        .args(["--application-id", &app, "--state-dir"])
        .arg(&state_dir)
        .args([
            "--guarantee",
            match mode {
                Mode::ExactlyOnce => "exactly_once_v2",
                Mode::AtLeastOnce => "at_least_once",
            },
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the peer (java)")?;
    Ok(Started {
        running: Running::Peer(child),
        group: app,
        outputs: vec![output],
        format: OutputFormat::PeerJson,
    })
}
