//! The state store on the real database, with the engine on the real broker: migration, restore after kill -9, and
//! the database going away mid-run. The engine runs as a subprocess (`mora run`), fed by the load generator; the
//! proof is the output topics read with read_committed and the rows in the database, compared with a clean
//! in-memory run over the same input log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_connector_kafka::{ClockSource, KafkaConfig, create_topics};
use mora_connector_scylla::{LedgerRecord, StateConfig, Store};
use mora_domain::action::Action;
use mora_domain::action::DecisionKind;
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::testkit::{self, ts};
use mora_domain::time::Ts;
use mora_loadgen::{LoadgenOptions, loadgen};
use mora_runtime::{CollectingSink, InputRecord, Operator, PartitionWorker};
use mora_schemas::{
    ClockTick, Family, Wire, decode_action, decode_audit, encode_action, encode_audit,
    encode_clock, encode_event, family_of,
};
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};

use crate::servers as utils;

pub(crate) const PARTITIONS: i32 = 4;
/// What the engines started by the tests log.
pub(crate) const ENGINE_LOG: &str = "warn,mora=info,mora_connector_kafka=info";

pub(crate) fn engine() -> Arc<Engine> {
    Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    )
}

/// The `mora` binary of this build (deploy/test.sh builds it before the tests).
pub(crate) fn mora_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("mora");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p mora` (deploy/test.sh does)",
        bin.display()
    );
    bin
}

/// An action in a line of a failure's report: debtor, channel, strategy step, when, id.
fn describe(a: &Action) -> String {
    format!(
        "{} {} {}/{} created {} ({})",
        a.debtor_id,
        a.channel.as_str(),
        a.reason.strategy,
        a.reason.step,
        a.created_at,
        a.action_id.0
    )
}

/// What [`World::verify`] found equal to a clean run: actions delivered exactly once, stored debtors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verified {
    pub(crate) actions: usize,
    pub(crate) debtors: usize,
}

/// One test's world: unique topics, group, keyspace, and a configuration file for `mora run`.
pub(crate) struct World {
    pub(crate) kafka: KafkaConfig,
    state: StateConfig,
    pub(crate) dir: PathBuf,
    /// Removes `dir` at the end, unless MORA_KEEP_TEST_LOGS is set.
    _cleanup: Option<tempfile::TempDir>,
    pub(crate) config: PathBuf,
    /// Engines started in this world: any still running when it is dropped (a test failed) are killed.
    started: std::sync::Mutex<Vec<u32>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for pid in self.started.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl World {
    /// A world on the single-node test servers (replication 1, consistency `one`).
    pub(crate) fn new() -> Self {
        Self::build(1)
    }

    /// A world on the three-node cluster of `deploy/services.sh up --cluster`: topics with replication 3 (and the
    /// brokers' `min.insync.replicas` 2), a keyspace with replication 3, statements at `local_quorum`.
    pub(crate) fn on_cluster() -> Self {
        Self::build(3)
    }

    fn build(replicas: u8) -> Self {
        let p = utils::unique("s");
        let mut kafka = KafkaConfig::new(utils::kafka_brokers());
        kafka.group_id = format!("{p}-group");
        kafka.topics.input_prefix = format!("{p}.in.");
        kafka.topics.actions_prefix = format!("{p}.actions.");
        kafka.topics.audit = format!("{p}.audit");
        kafka.topics.dead_letter = format!("{p}.dlq");
        kafka.clock.source = ClockSource::Log;
        let mut state = StateConfig::new(utils::cql_nodes());
        state.keyspace = p.clone();
        let consistency = if replicas > 1 { "local_quorum" } else { "one" };
        state.consistency = if replicas > 1 {
            mora_connector_scylla::ConsistencyLevel::LocalQuorum
        } else {
            mora_connector_scylla::ConsistencyLevel::One
        };
        state.replication = mora_connector_scylla::Replication::Simple { factor: replicas };
        state.flush_interval = Duration::from_millis(500);
        state.shards = 16;
        create_topics(&kafka, PARTITIONS, i32::from(replicas)).expect("topics created");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let cleanup = if std::env::var_os("MORA_KEEP_TEST_LOGS").is_some() {
            eprintln!("engine logs kept in {}", dir.display());
            let _ = tmp.keep();
            None
        } else {
            Some(tmp)
        };
        let config = dir.join("mora.toml");
        let decisions = format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"));
        let toml = format!(
            r#"
[decisions]
file = "{decisions}/decisions.toml"
policies_dir = "{decisions}/policies"
holidays_dir = "{decisions}/holidays"

[engine]
threads = 2

[kafka]
brokers = "{brokers}"
group_id = "{group}"
instance_id = "engine-1"
commit_interval = "100ms"
max_idle = "1s"
{lagging}

[kafka.clock]
source = "log"

[kafka.topics]
input_prefix = "{p}.in."
actions_prefix = "{p}.actions."
audit = "{p}.audit"
dead_letter = "{p}.dlq"

[state]
nodes = [{nodes}]
keyspace = "{p}"
consistency = "{consistency}"
replication = {{ class = "simple", factor = {replicas} }}
flush_interval = "500ms"
shards = 16
max_lag = "5s"

[api]
listen = "127.0.0.1:0"
"#,
            brokers = kafka.brokers,
            group = kafka.group_id,
            // On the cluster, a broker fault can keep an input topic's leader from delivering for longer than the
            // default wait; past it records are applied out of order (by design), and the run could no longer be
            // compared with a clean one. These tests are about delivery and state, so they wait out the fault.
            // The same for a stop right after a database outage: its last flush has a backlog to write, and the
            // checks read the store after the stop (50 s, under `stop_engine`'s 60).
            lagging = if replicas > 1 {
                "lagging_topic_wait = \"120s\"\nshutdown_timeout = \"50s\""
            } else {
                ""
            },
            nodes = state
                .nodes
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        std::fs::write(&config, toml).unwrap();
        let w = Self {
            kafka,
            state,
            dir,
            _cleanup: cleanup,
            config,
            started: std::sync::Mutex::new(Vec::new()),
        };
        w.migrate();
        w
    }

    /// Runs `mora migrate` on the world's configuration; returns what it printed.
    pub(crate) fn migrate(&self) -> String {
        let out = Command::new(mora_bin())
            .args(["migrate", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mora migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `mora run`; its log goes to a numbered file in the test's directory.
    pub(crate) fn start_engine(&self, n: u32) -> Child {
        self.start_with(n, &self.config, ENGINE_LOG)
    }

    /// As [`World::start_engine`], logging at `rust_log` (a `RUST_LOG` filter).
    pub(crate) fn start_engine_logging(&self, n: u32, rust_log: &str) -> Child {
        self.start_with(n, &self.config, rust_log)
    }

    /// As [`World::start_engine`], with `setting` (a `key = value` line) set in the `[kafka]` section (replacing
    /// the world's own value of that key, if any).
    pub(crate) fn start_engine_setting(&self, n: u32, setting: &str) -> Child {
        let key = setting.split('=').next().unwrap_or("").trim();
        let toml = std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .filter(|l| l.split('=').next().map(str::trim) != Some(key))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("[kafka.clock]", &format!("{setting}\n\n[kafka.clock]"));
        let config = self.dir.join(format!("mora-engine-{n}.toml"));
        std::fs::write(&config, toml).unwrap();
        self.start_with(n, &config, ENGINE_LOG)
    }

    /// Starts `mora run` as another member of the group: its own `instance_id` (so its own static membership and
    /// transactional ids), and a session timeout short enough that the group notices within seconds when it dies.
    pub(crate) fn start_instance(&self, n: u32, instance_id: &str) -> Child {
        let toml = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace(
                "instance_id = \"engine-1\"",
                &format!("instance_id = \"{instance_id}\""),
            )
            .replace(
                "[kafka.clock]",
                "[kafka.librdkafka_options]\n\"session.timeout.ms\" = \"8000\"\n\n[kafka.clock]",
            );
        let config = self.dir.join(format!("mora-{instance_id}.toml"));
        std::fs::write(&config, toml).unwrap();
        self.start_with(n, &config, ENGINE_LOG)
    }

    fn start_with(&self, n: u32, config: &Path, rust_log: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("engine-{n}.log"))).unwrap();
        let child = Command::new(mora_bin())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        if let Ok(mut started) = self.started.lock() {
            started.push(child.id());
        }
        child
    }

    pub(crate) fn engine_log(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("engine-{n}.log"))).unwrap_or_default()
    }

    /// Produces `events` simulated records before the engine starts. (Produced while it runs, records of one
    /// topic can reach the engine after `max_idle` behind another topic's, and a run that applies them out of
    /// time order rightly differs from the clean reference; that trade-off is the pipeline tests' subject.)
    pub(crate) fn loadgen(&self, events: u64) {
        let opts = LoadgenOptions {
            debtors: 4000,
            events,
            rate: None,
            seed: 11,
            days: 365,
        };
        let written = loadgen(&self.kafka, &opts, engine())
            .expect("loadgen")
            .total;
        assert_eq!(written, events);
    }

    /// Waits until every engine thread of engine `n` holds partitions (a new instance's threads join the group one
    /// after the other, and the first takes every partition until the next joins): faults injected after this hit
    /// a running engine, not its start-up rebalance.
    pub(crate) fn wait_threads_assigned(&self, n: u32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.engine_log(n);
            let threads: usize = log
                .split("threads=")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|t| t.parse().ok())
                .unwrap_or(usize::MAX);
            // Each thread's latest assignment or revocation.
            let mut holding: BTreeMap<&str, bool> = BTreeMap::new();
            for line in log.lines() {
                let Some(thread) = line.split_whitespace().nth(2) else {
                    continue;
                };
                if line.contains("Partitions assigned.") {
                    holding.insert(thread, !line.contains("partitions=[]"));
                } else if line.contains("Partitions revoked") {
                    holding.insert(thread, false);
                }
            }
            if holding.values().filter(|h| **h).count() >= threads {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "engine {n}'s {threads} threads not all assigned partitions within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the engine's group has committed every input record.
    pub(crate) fn wait_consumed(&self, engine: &mut Child, timeout: Duration) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("group.id", &self.kafka.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let deadline = Instant::now() + timeout;
        // On a cluster a leader can move while this asks (a broker killed or thawed): an answer refused then is
        // asked again.
        let look = || -> Result<_, rdkafka::error::KafkaError> {
            let mut tpl = rdkafka::TopicPartitionList::new();
            let mut ends = BTreeMap::new();
            for t in self.kafka.topics.inputs() {
                for p in 0..PARTITIONS {
                    tpl.add_partition(&t, p);
                    let (_, hi) = c.fetch_watermarks(&t, p, Duration::from_secs(10))?;
                    ends.insert((t.clone(), p), hi);
                }
            }
            Ok((ends, c.committed_offsets(tpl, Duration::from_secs(10))?))
        };
        loop {
            let (ends, committed) = match look() {
                Ok(x) => x,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "offsets unreadable within {timeout:?}: {e}"
                    );
                    eprintln!("reading offsets failed ({e}); asking again");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            let behind: Vec<_> = committed
                .elements()
                .iter()
                .filter(|e| {
                    let end = ends[&(e.topic().to_string(), e.partition())];
                    end > 0 && e.offset().to_raw().unwrap_or(-1) < end
                })
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            if behind.is_empty() {
                return;
            }
            if let Some(status) = engine.try_wait().unwrap() {
                panic!("the engine exited ({status}) before consuming everything");
            }
            assert!(
                Instant::now() < deadline,
                "input not consumed within {timeout:?}: {behind:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every input record, per partition, in the order the engine applies them: timestamp, then topic, then
    /// offset.
    pub(crate) fn input_log(&self) -> BTreeMap<i32, Vec<OwnedMessage>> {
        let mut by_partition: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
        for t in self.kafka.topics.inputs() {
            for m in utils::read_to_end(&self.kafka.brokers, &t, "read_uncommitted") {
                by_partition.entry(m.partition()).or_default().push(m);
            }
        }
        for log in by_partition.values_mut() {
            log.sort_by(|a, b| {
                let key = |m: &OwnedMessage| {
                    (
                        m.timestamp().to_millis().unwrap_or(0),
                        m.topic().to_string(),
                        m.offset(),
                    )
                };
                key(a).cmp(&key(b))
            });
        }
        by_partition
    }

    /// A clean, uninterrupted in-memory run over the input log: its actions and final debtor states.
    pub(crate) fn reference(&self) -> (Vec<Action>, BTreeMap<String, Debtor>) {
        let (mut actions, mut debtors) = (Vec::new(), BTreeMap::new());
        for (w, sink) in self.reference_workers() {
            actions.extend(sink.actions);
            for d in w.debtors() {
                debtors.insert(d.id.to_string(), d.clone());
            }
        }
        (actions, debtors)
    }

    /// The clean in-memory run's workers, one per partition, with what each decided.
    pub(crate) fn reference_workers(&self) -> Vec<(PartitionWorker, CollectingSink)> {
        let engine = engine();
        let mut out = Vec::new();
        for (p, log) in self.input_log() {
            let mut w = PartitionWorker::new(p, engine.clone());
            let mut sink = CollectingSink::default();
            for m in &log {
                let rec = InputRecord {
                    family: self.kafka.topics.family_of(m.topic()).unwrap(),
                    topic: m.topic(),
                    partition: p,
                    offset: m.offset(),
                    key: m.key(),
                    payload: m.payload().unwrap_or_default(),
                    writer: None,
                };
                w.process(&rec, &mut sink);
            }
            out.push((w, sink));
        }
        out
    }

    /// Every debtor stored in the database.
    pub(crate) fn stored(&self) -> BTreeMap<String, Debtor> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = Arc::new(Store::connect(&self.state).await.expect("store"));
            let mut all = BTreeMap::new();
            for p in 0..PARTITIONS {
                for d in store.restore(p).await.expect("restore").debtors {
                    all.insert(d.id.to_string(), d);
                }
            }
            all
        })
    }

    /// Every action on the action topics, read with read_committed.
    pub(crate) fn actions_out(&self) -> Vec<Action> {
        mora_domain::ids::Channel::ALL
            .iter()
            .flat_map(|c| {
                utils::read_to_end(
                    &self.kafka.brokers,
                    &self.kafka.topics.actions(*c),
                    "read_committed",
                )
            })
            .map(|m| decode_action(m.payload().unwrap_or_default()).expect("valid action"))
            .collect()
    }

    /// Asks the engine to stop (SIGTERM: final commit and flush) and waits for it.
    pub(crate) fn stop_engine(&self, mut engine: Child, n: u32) {
        let _ = Command::new("kill")
            .args(["-TERM", &engine.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = engine.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the engine did not stop cleanly ({status}):\n{}",
                    tail(&self.engine_log(n))
                );
                return;
            }
            if Instant::now() >= deadline {
                let _ = engine.kill();
                let _ = engine.wait();
                panic!(
                    "the engine did not stop within 60 s of SIGTERM (killed); its log ends:\n{}",
                    tail(&self.engine_log(n))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the engines' logs say about ordering and restores (printed when a check fails).
    pub(crate) fn diagnosis(&self) -> String {
        let mut out = Vec::new();
        for n in 0..32 {
            let log = self.engine_log(n);
            if log.is_empty() {
                continue;
            }
            // The engine's own warnings (the database driver's reconnection chatter during an outage is left out).
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| {
                    (l.contains("out of")
                        || l.contains("restored from")
                        || l.contains("WARN")
                        || l.contains("ERROR"))
                        && !l.contains(" scylla::")
                })
                .take(40)
                .collect();
            out.push(format!("engine {n}:\n  {}", notable.join("\n  ")));
        }
        let log = self.input_log();
        for (p, recs) in &log {
            let last = recs.last().map(|m| m.timestamp().to_millis().unwrap_or(0));
            out.push(format!(
                "input partition {p}: {} records, last at {:?}",
                recs.len(),
                last.map(mora_domain::time::Ts)
            ));
        }
        out.join("\n")
    }

    /// Waits until no transaction is open on the output topics: a killed instance's last transaction stays open
    /// (hiding everything after it from `read_committed` readers) until the broker aborts it after
    /// `kafka.transaction_timeout`. Read committed, a partition's end is its last stable offset; read uncommitted,
    /// its high watermark: they meet once nothing is open.
    pub(crate) fn wait_outputs_settled(&self, timeout: Duration) {
        let client = |isolation: &str| -> BaseConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", &self.kafka.brokers)
                .set("group.id", utils::unique("settle"))
                .set("isolation.level", isolation)
                .create()
                .unwrap()
        };
        let (committed, uncommitted) = (client("read_committed"), client("read_uncommitted"));
        let mut topics: Vec<String> = mora_domain::ids::Channel::ALL
            .iter()
            .map(|c| self.kafka.topics.actions(*c))
            .collect();
        topics.push(self.kafka.topics.audit.clone());
        let started = Instant::now();
        loop {
            let mut open = Vec::new();
            for t in &topics {
                for p in 0..PARTITIONS {
                    let wm = |c: &BaseConsumer| {
                        c.fetch_watermarks(t, p, Duration::from_secs(10))
                            .map(|w| w.1)
                    };
                    match (wm(&committed), wm(&uncommitted)) {
                        (Ok(stable), Ok(end)) if stable < end => {
                            open.push((t.clone(), p, stable, end))
                        }
                        (Ok(_), Ok(_)) => {}
                        // A leader moving on a cluster: counted as open, asked again.
                        _ => open.push((t.clone(), p, -1, -1)),
                    }
                }
            }
            if open.is_empty() {
                eprintln!("outputs settled after {:?}", started.elapsed());
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "transactions still open on the outputs after {timeout:?} (topic, partition, stable, end): {open:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Checks the outputs and the stored state against the clean reference run; returns what was checked.
    pub(crate) fn verify(&self) -> Verified {
        self.wait_outputs_settled(Duration::from_secs(60));
        let (expected, expected_state) = self.reference();
        let out = self.actions_out();
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for a in &out {
            *seen.entry(a.action_id.0.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{} actions written more than once, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        );
        let want: BTreeSet<&str> = expected.iter().map(|a| a.action_id.0.as_str()).collect();
        let got: BTreeSet<&str> = seen.keys().copied().collect();
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let miss: BTreeSet<&&str> = missing.iter().copied().collect();
            let ext: BTreeSet<&&str> = extra.iter().copied().collect();
            let mut lines: Vec<String> = expected
                .iter()
                .filter(|a| miss.contains(&a.action_id.0.as_str()))
                .map(|a| format!("missing    {}", describe(a)))
                .chain(
                    out.iter()
                        .filter(|a| ext.contains(&a.action_id.0.as_str()))
                        .map(|a| format!("unexpected {}", describe(a))),
                )
                .collect();
            lines.sort_by(|a, b| a[11..].cmp(&b[11..]));
            eprintln!("{}", lines[..lines.len().min(60)].join("\n"));
            eprintln!("{}", self.diagnosis());
        }
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{} actions missing (e.g. {:?}), {} unexpected (e.g. {:?}) of {} expected",
            missing.len(),
            &missing[..missing.len().min(5)],
            extra.len(),
            &extra[..extra.len().min(5)],
            want.len()
        );
        let stored = self.stored();
        assert_eq!(
            stored.len(),
            expected_state.len(),
            "debtors in the database vs a clean run"
        );
        let differing: Vec<&String> = expected_state
            .iter()
            .filter(|(id, d)| stored.get(*id) != Some(*d))
            .map(|(id, _)| id)
            .collect();
        if let Some(id) = differing.first() {
            panic!(
                "{} of {} stored debtors differ from a clean run; first {id}:\nstored: {:#?}\nclean: {:#?}",
                differing.len(),
                expected_state.len(),
                stored.get(*id),
                expected_state[*id]
            );
        }
        let (ledger_actions, ledger_decisions) = self.ledger_matches_a_clean_run();
        eprintln!(
            "verified: {} actions exactly once, {} debtors equal to a clean run, the ledger's {ledger_actions} \
             actions and {ledger_decisions} decisions those of a clean run",
            want.len(),
            expected_state.len()
        );
        Verified {
            actions: want.len(),
            debtors: expected_state.len(),
        }
    }

    /// The ledger holds every action and every decision of a clean run, once each, and nothing else. Returns their
    /// counts.
    pub(crate) fn ledger_matches_a_clean_run(&self) -> (usize, usize) {
        let (mut actions, mut audits) = (BTreeSet::new(), BTreeSet::new());
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for (_, sink) in self.reference_workers() {
            for a in &sink.actions {
                actions.insert(encode_action(a, Wire::Raw).unwrap());
                (first, last) = (first.min(a.created_at.0), last.max(a.created_at.0));
            }
            for r in &sink.audits {
                audits.insert(encode_audit(r, Wire::Raw).unwrap());
                (first, last) = (first.min(r.at.0), last.max(r.at.0));
            }
        }
        let day = |t: i64| t.div_euclid(mora_domain::time::DAY_MS);
        let stored = if first <= last {
            self.ledger_days(day(first), day(last))
        } else {
            Vec::new()
        };
        let (mut got_actions, mut got_audits) = (Vec::new(), Vec::new());
        for e in stored {
            match e {
                LedgerRecord::Action(a) => got_actions.push(encode_action(&a, Wire::Raw).unwrap()),
                LedgerRecord::Decision(r) => got_audits.push(encode_audit(&r, Wire::Raw).unwrap()),
            }
        }
        let (n_actions, n_audits) = (got_actions.len(), got_audits.len());
        let got_actions: BTreeSet<Vec<u8>> = got_actions.into_iter().collect();
        let got_audits: BTreeSet<Vec<u8>> = got_audits.into_iter().collect();
        if actions != got_actions || audits != got_audits {
            // Which entries, and what the engine said, so that a failure on a CI machine can be read from its log.
            let described: Vec<String> = actions
                .difference(&got_actions)
                .take(20)
                .filter_map(|bytes| mora_schemas::decode_action(bytes).ok())
                .map(|a| format!("missing from the ledger: {}", describe(&a)))
                .collect();
            eprintln!(
                "{}\n{} decisions missing from the ledger, {} unexpected\n{}",
                described.join("\n"),
                audits.difference(&got_audits).count(),
                got_audits.difference(&audits).count(),
                self.diagnosis()
            );
        }
        assert_eq!(
            n_actions,
            got_actions.len(),
            "an action stored twice in the ledger"
        );
        assert_eq!(
            n_audits,
            got_audits.len(),
            "a decision stored twice in the ledger"
        );
        assert_eq!(
            (
                actions.difference(&got_actions).count(),
                got_actions.difference(&actions).count()
            ),
            (0, 0),
            "ledger actions vs a clean run: (missing, unexpected)"
        );
        assert_eq!(
            (
                audits.difference(&got_audits).count(),
                got_audits.difference(&audits).count()
            ),
            (0, 0),
            "ledger decisions vs a clean run: (missing, unexpected)"
        );
        (n_actions, n_audits)
    }

    /// Every ledger entry of the test's partitions from day `from` to day `to` (days since the epoch).
    fn ledger_days(&self, from: i64, to: i64) -> Vec<LedgerRecord> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = Store::connect(&self.state).await.expect("store");
            let mut all = Vec::new();
            for p in 0..PARTITIONS {
                for d in from..=to {
                    all.extend(store.ledger_day(p, d).await.expect("ledger"));
                }
            }
            all
        })
    }
}

/// The random source of the kill times: seeded from `MORA_CHAOS_SEED` when set, else at random and printed, so a
/// failing run can be repeated.
pub(crate) fn chaos_rng() -> rand_chacha::ChaCha8Rng {
    let seed: u64 = std::env::var("MORA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos seed {seed} (MORA_CHAOS_SEED reproduces the kill times)");
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn migrate_is_idempotent_and_refuses_nothing_it_created() {
    let w = World::new();
    for _ in 0..2 {
        let stdout = w.migrate();
        assert!(
            stdout.contains("16 shards per Kafka partition"),
            "the shard count chosen first stays: {stdout}"
        );
    }
}

#[test]
fn killed_with_sigkill_at_random_moments_every_action_once_and_state_equal_to_a_clean_run() {
    let w = World::new();
    w.loadgen(200_000);
    let mut rng = chaos_rng();
    let mut n = 0;
    let mut engine = w.start_engine(n);
    let kills: u32 = std::env::var("MORA_CHAOS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1_500..5_000)));
        engine.kill().unwrap(); // SIGKILL
        engine.wait().unwrap();
        n += 1;
        engine = w.start_engine(n);
    }
    w.wait_consumed(&mut engine, Duration::from_secs(600));
    w.stop_engine(engine, n);
    let log = w.engine_log(n);
    assert!(
        log.contains("restored from the state store"),
        "the last start restored from the database:\n{}",
        tail(&log)
    );
    w.verify();
}

/// Two instances of two engine threads each share the four partitions; one is SIGKILLed mid-run and the other's
/// threads take its partitions over (after the session timeout), restoring them from the database and resuming
/// from the last committed transaction: every action once, every stored debtor equal to a clean run.
#[test]
fn an_instance_of_two_threads_killed_while_another_of_two_threads_takes_over() {
    let w = World::new();
    w.loadgen(200_000);
    let mut rng = chaos_rng();
    let mut doomed = w.start_instance(0, "engine-a");
    let mut survivor = w.start_instance(1, "engine-b");
    // Both own partitions (joining takes longer on a loaded machine), then the kill at a random moment of the run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(w.engine_log(0).contains("Partitions assigned.")
        && w.engine_log(1).contains("Partitions assigned."))
    {
        assert!(
            Instant::now() < deadline,
            "both instances own partitions within 120 s:\n{}\n{}",
            tail(&w.engine_log(0)),
            tail(&w.engine_log(1))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..5_000)));
    assert!(
        doomed.try_wait().unwrap().is_none(),
        "the first instance is still running before the kill:\n{}",
        tail(&w.engine_log(0))
    );
    let restores = |log: &str| log.matches("restored from the state store").count();
    let before = restores(&w.engine_log(1));
    doomed.kill().unwrap(); // SIGKILL: no final commit, no final flush
    doomed.wait().unwrap();
    w.wait_consumed(&mut survivor, Duration::from_secs(600));
    w.stop_engine(survivor, 1);
    let log = w.engine_log(1);
    assert!(
        restores(&log) > before,
        "the surviving instance's threads restored the killed one's partitions from the database after the kill:\n{}",
        tail(&log)
    );
    w.verify();
}

/// A debtor's timers live in its stored state: an instance stopped before a promise's deadline and started again
/// (restored from the database, not replayed) breaks the promise once, at its deadline, when a clock record moves
/// the partition past it, with no further event for the debtor.
#[test]
fn timers_survive_a_restart_and_fire_once_at_their_instant() {
    let w = World::new();
    let id = "TIMER-1";
    let p = mora_runtime::partition_for(id.as_bytes(), PARTITIONS as u32) as i32;
    let start = ts("2026-02-20T14:00:00Z");
    let events = [
        testkit::debtor_upserted(id, "CO", "America/Bogota", start),
        testkit::obligation(id, "L1", "COP", "400000", "2026-03-02", start),
        testkit::promise(
            id,
            "P1",
            "COP",
            "400000",
            "2026-03-06",
            ts("2026-03-03T15:00:00Z"),
        ),
    ];
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &w.kafka.brokers)
        .create()
        .unwrap();
    let send = |family: Family, key: &str, payload: Vec<u8>, at: i64| {
        let topic = w.kafka.topics.input(family);
        let rec = rdkafka::producer::BaseRecord::to(&topic)
            .partition(p)
            .key(key.as_bytes())
            .payload(&payload)
            .timestamp(at);
        producer.send(rec).map_err(|(e, _)| e).unwrap();
        rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();
    };
    let clock = |at: Ts| {
        let tick = ClockTick {
            source: "test".into(),
            partition: p,
            at,
        };
        (encode_clock(&tick, Wire::Confluent).unwrap(), at.0)
    };
    for ev in &events {
        let bytes = encode_event(ev, Wire::Confluent).unwrap();
        send(family_of(&ev.kind).0, id, bytes, ev.occurred_at.0);
    }
    let (bytes, at) = clock(ts("2026-03-06T12:00:00Z"));
    send(Family::Clock, "clock", bytes, at);

    let mut engine = w.start_engine(1);
    w.wait_consumed(&mut engine, Duration::from_secs(120));
    w.stop_engine(engine, 1);
    let broken = |w: &World| -> Vec<Ts> {
        utils::read_to_end(&w.kafka.brokers, &w.kafka.topics.audit, "read_committed")
            .iter()
            .map(|m| decode_audit(m.payload().unwrap_or_default()).expect("valid audit"))
            .filter(|r| r.debtor_id == id && r.kind == DecisionKind::PromiseBroken)
            .map(|r| r.at)
            .collect()
    };
    assert!(broken(&w).is_empty(), "not yet due before the restart");
    let stored = w.stored();
    let deadline = ts("2026-03-07T05:00:00Z"); // Saturday 00:00 in Bogota
    assert!(
        stored[id].next_wake <= deadline,
        "the stored state holds the timer: {:?}",
        stored[id].next_wake
    );

    // After the restart, only a clock record past the deadline (and past Saturday's 08:00 window opening).
    let (bytes, at) = clock(ts("2026-03-07T14:00:00Z"));
    send(Family::Clock, "clock", bytes, at);
    let mut engine = w.start_engine(2);
    w.wait_consumed(&mut engine, Duration::from_secs(120));
    w.stop_engine(engine, 2);
    let log = w.engine_log(2);
    assert!(
        log.lines()
            .any(|l| l.contains("restored from the state store")
                && l.contains(&format!("partition={p}"))
                && l.contains("debtors=1")),
        "the second instance restored the debtor from the database:\n{}",
        tail(&log)
    );
    assert_eq!(
        broken(&w),
        vec![deadline],
        "broken once, at its deadline, by the clock record after the restart"
    );
    let follow_ups: Vec<Action> = w
        .actions_out()
        .into_iter()
        .filter(|a| a.debtor_id == id && a.reason.step == "on_broken_promise")
        .collect();
    assert!(follow_ups.len() <= 1, "{follow_ups:?}");
    for a in &follow_ups {
        assert_eq!(
            a.not_before,
            ts("2026-03-07T13:00:00Z"),
            "sent when the window opens"
        );
    }
    assert_eq!(w.stored()[id].history.promises_broken, 1);
}

#[test]
#[ignore = "restarts the shared database: deploy/test.sh runs it on its own after the suite"]
fn the_database_restarting_mid_run_loses_nothing() {
    let w = World::new();
    w.loadgen(200_000);
    let mut engine = w.start_engine(0);
    std::thread::sleep(Duration::from_secs(6));
    let services = format!("{}/../deploy/services.sh", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(&services).arg("status").output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("cassandra: running"),
        "this test restarts the database deploy/services.sh started, and none is running: run deploy/test.sh"
    );
    let stop = Command::new(&services)
        .args(["stop", "cassandra"])
        .status()
        .unwrap();
    assert!(stop.success(), "stopping the database failed");
    // Long enough for flushes to fail and input to pause (max_lag is 5 s).
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        engine.try_wait().unwrap().is_none(),
        "the engine stays up while the database is away:\n{}",
        tail(&w.engine_log(0))
    );
    let start = Command::new(&services)
        .args(["start", "cassandra"])
        .status()
        .unwrap();
    assert!(start.success(), "restarting the database failed");
    w.wait_consumed(&mut engine, Duration::from_secs(600));
    w.stop_engine(engine, 0);
    let log = w.engine_log(0);
    assert!(
        log.contains("pausing input"),
        "input paused while the database was away:\n{}",
        tail(&log)
    );
    w.verify();
}
