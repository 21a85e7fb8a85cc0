//! mora with a schema registry (Apicurio Registry's Confluent API, started by deploy/services.sh), against clients
//! nobody here wrote: Confluent's Python `AvroSerializer` produces the input (one family on a schema evolved from
//! mora's), mora decides, Confluent's `AvroDeserializer` reads the actions and the dead letters. Also: an id the
//! registry does not know is dead-lettered with that reason, a registry that cannot be reached pauses input and
//! loses nothing, and `mora schemas check` refuses an incompatible producer schema naming subject and field.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mora_connector_kafka::{KafkaConfig, run_with_registry};
use mora_connector_registry::outputs::register_inputs;
use mora_connector_registry::{RegistryClient, RegistryConfig};
use mora_domain::event::Envelope;
use mora_domain::ids::Channel;
use mora_runtime::partition_for;
use mora_schemas::{Family, Wire, encode_event, family_of, set_schema_id};
use serde_json::Value;

use crate::pipeline::{
    assert_same_actions, engine, fresh, produce_raw, reference, scenario, wait_for,
};
use crate::servers as utils;

/// The registry's Confluent API: `MORA_SCHEMA_REGISTRY_URL`, else the services script's.
fn registry_url() -> String {
    let url = std::env::var("MORA_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into());
    let ok = ureq::get(&format!("{url}/config")).call().is_ok();
    assert!(
        ok,
        "no schema registry at {url}: start one with `deploy/services.sh up` (or run deploy/test.sh), or point \
         MORA_SCHEMA_REGISTRY_URL at one"
    );
    url
}

/// The Python interpreter with confluent-kafka[avro] (`MORA_PYTHON`, set by deploy/services.sh).
fn python() -> String {
    let py = std::env::var("MORA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import confluent_kafka.schema_registry.avro"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import confluent_kafka: deploy/services.sh up installs it and writes MORA_PYTHON to \
         .services/env"
    );
    py
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn clients(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(repo().join("tests/registry/confluent_clients.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confluent_clients.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The events as the Python producer takes them: topic, partition, key, time and the Avro body (hex).
fn records_file(
    cfg: &KafkaConfig,
    partitions: u32,
    events: &[Envelope],
    dir: &std::path::Path,
) -> PathBuf {
    let path = dir.join("records.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for ev in events {
        let family = family_of(&ev.kind).0;
        let raw = encode_event(ev, Wire::Raw).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let line = serde_json::json!({
            "topic": cfg.topics.input(family),
            "partition": partition_for(ev.debtor_id.as_bytes(), partitions),
            "key": ev.debtor_id.as_str(),
            "timestamp": ev.occurred_at.0,
            "family": family.name(),
            "raw": hex,
        });
        writeln!(f, "{line}").unwrap();
    }
    path
}

fn registry_cfg(url: &str) -> RegistryConfig {
    RegistryConfig::new(url)
}

#[test]
fn confluent_serialized_events_in_and_actions_out_that_confluents_deserializer_reads() {
    let url = registry_url();
    let cfg = fresh(3);
    let dir = tempfile::tempdir().unwrap();
    let rcfg = registry_cfg(&url);
    let client = RegistryClient::new(&rcfg).unwrap();
    // Producers start from mora's schemas (`mora schemas register`); the account producer then evolves its own.
    let (inputs, _) = mora::schemas::topic_schemas(&cfg.topics);
    let registered = register_inputs(&client, &rcfg, &inputs).unwrap();
    assert_eq!(registered.len(), 6);

    let events = scenario();
    let expected = reference(&events, 3);
    assert!(expected.len() >= 8, "the scenario produces actions");
    let records = records_file(&cfg, 3, &events, dir.path());
    let produced = clients(&[
        "produce",
        "--brokers",
        &cfg.brokers,
        "--registry",
        &url,
        "--schemas",
        repo().join("schemas/avro").to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--evolve",
        "account",
    ]);
    assert!(
        produced.contains(&format!("\"produced\": {}", events.len())),
        "{produced}"
    );
    // The account subject now holds the evolved schema as its latest version, with an id mora never saw.
    let latest = client
        .latest(&format!("{}-value", cfg.topics.input(Family::Account)))
        .unwrap()
        .unwrap();
    assert!(latest.contains("source_system"), "{latest}");

    // A record framed with an id the registry never gave out.
    let mut bogus = encode_event(&events[0], Wire::Confluent).unwrap();
    set_schema_id(&mut bogus, 2_000_000_000);
    let p = partition_for(events[0].debtor_id.as_bytes(), 3) as i32;
    let account = cfg.topics.input(Family::Account);
    produce_raw(
        &cfg,
        &account,
        p,
        &events[0].debtor_id,
        &bogus,
        events[0].occurred_at.0 - 1000,
    );

    // A payment framed with the id of a schema mora cannot read (the amount as a string), registered elsewhere.
    let mut unreadable: Value =
        serde_json::from_str(include_str!("../../schemas/avro/payment.avsc")).unwrap();
    for f in unreadable["fields"][3]["type"][0]["fields"]
        .as_array_mut()
        .unwrap()
    {
        if f["name"] == "amount" {
            f["type"] = Value::String("string".into());
        }
    }
    let bad_id = client
        .register(
            &format!("{}-elsewhere-value", utils::unique("x")),
            &unreadable.to_string(),
        )
        .unwrap();
    let payment = cfg.topics.input(Family::Payment);
    let mut bad = vec![0, 0, 0, 0, 0, 2, b'E', 2, b'D'];
    set_schema_id(&mut bad, bad_id);
    produce_raw(&cfg, &payment, 0, "D", &bad, events[0].occurred_at.0 - 1000);

    let schemas = mora::schemas::connect(&rcfg, &cfg.topics).unwrap();
    let handle = run_with_registry(cfg.clone(), engine(), None, 1, Some(schemas)).unwrap();
    wait_for(&[&handle], events.len() as u64 + 2);
    let stats = handle.stop().unwrap();
    assert_eq!(
        stats.dead_letters, 2,
        "only the two unreadable records are dead-lettered"
    );

    let mut topics: Vec<String> = Channel::ALL
        .iter()
        .map(|c| cfg.topics.actions(*c))
        .collect();
    topics.push(cfg.topics.dead_letter.clone());
    let read = clients(&[
        "consume",
        "--brokers",
        &cfg.brokers,
        "--registry",
        &url,
        "--topics",
        &topics.join(","),
    ]);
    let lines: Vec<Value> = read
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (dead, actions): (Vec<&Value>, Vec<&Value>) = lines
        .iter()
        .partition(|l| l["topic"] == cfg.topics.dead_letter.as_str());
    let mut got: Vec<String> = actions
        .iter()
        .map(|a| a["value"]["action_id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|a| a.action_id.0.to_string()).collect();
    want.sort();
    assert_eq!(
        got, want,
        "the actions Confluent's deserializer reads are the reference's, once each"
    );
    assert_eq!(dead.len(), 2);
    let reason_on = |topic: &str| {
        let d = dead.iter().find(|d| d["value"]["topic"] == topic).unwrap();
        d["value"]["reason"].as_str().unwrap().to_string()
    };
    let missing = reason_on(&account);
    assert!(missing.contains("schema id 2000000000"), "{missing}");
    assert!(
        missing.contains("not found in the schema registry"),
        "{missing}"
    );
    let unresolved = reason_on(&payment);
    assert!(
        unresolved.contains(&format!("schema id {bad_id}")),
        "{unresolved}"
    );
    assert!(
        unresolved.contains("PaymentEvent.payload.PaymentReceived.amount"),
        "{unresolved}"
    );
}

/// A TCP relay to the registry that can be cut (every connection closed, new ones refused) and restored.
struct Relay {
    addr: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (up, open) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (up2, open2, target) = (up.clone(), open.clone(), target.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    drop(conn);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut reg = open2.lock().unwrap();
                reg.push(conn.try_clone().unwrap());
                reg.push(upstream.try_clone().unwrap());
                for (mut from, mut to) in [
                    (conn.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, conn),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { addr, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_unreachable_registry_pauses_input_and_loses_nothing() {
    let url = registry_url();
    let cfg = fresh(2);
    let direct = registry_cfg(&url);
    let client = RegistryClient::new(&direct).unwrap();
    let (inputs, _) = mora::schemas::topic_schemas(&cfg.topics);
    let ids: std::collections::HashMap<String, u32> = register_inputs(&client, &direct, &inputs)
        .unwrap()
        .into_iter()
        .collect();

    let (scheme_host, path) = url.split_at(url[7..].find('/').map_or(url.len(), |i| i + 7));
    let relay = Relay::to(scheme_host.trim_start_matches("http://"));
    let mut via = registry_cfg(&format!("http://{}{path}", relay.addr));
    via.timeout = Duration::from_millis(500);
    let schemas = mora::schemas::connect(&via, &cfg.topics).unwrap();
    let handle = run_with_registry(cfg.clone(), engine(), None, 1, Some(schemas)).unwrap();

    relay.cut();
    // Producers write with the ids the registry gave mora's input schemas: the engine has not fetched them yet.
    let events = scenario();
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    for ev in &events {
        let family = family_of(&ev.kind).0;
        let topic = cfg.topics.input(family);
        let mut bytes = encode_event(ev, Wire::Confluent).unwrap();
        set_schema_id(&mut bytes, ids[&format!("{topic}-value")]);
        let rec = rdkafka::producer::BaseRecord::to(&topic)
            .partition(partition_for(ev.debtor_id.as_bytes(), 2) as i32)
            .key(ev.debtor_id.as_bytes())
            .payload(&bytes)
            .timestamp(ev.occurred_at.0);
        producer.send(rec).map_err(|(e, _)| e).unwrap();
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.stats().registry_waits == 0 {
        assert!(
            Instant::now() < deadline,
            "the engine never waited for the registry"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let during = handle.stats();
    assert_eq!(
        during.records, 0,
        "nothing applied while the registry is away"
    );
    assert_eq!(
        during.dead_letters, 0,
        "nothing dead-lettered for a transient fault"
    );
    assert!(!handle.is_finished(), "{:?}", during.error);

    relay.restore();
    wait_for(&[&handle], events.len() as u64);
    let stats = handle.stop().unwrap();
    assert_eq!(stats.dead_letters, 0);
    let out = crate::pipeline::actions_out_with(&cfg, |b| {
        let mut framed = b.to_vec();
        set_schema_id(
            &mut framed,
            mora_schemas::Registry::global()
                .current(mora_schemas::SchemaKind::Action)
                .0,
        );
        mora_schemas::decode_action(&framed).unwrap()
    });
    assert_same_actions(&out, &reference(&events, 2));
}

fn write_config(dir: &std::path::Path, cfg: &KafkaConfig, url: &str) -> PathBuf {
    let path = dir.join("mora.toml");
    let decisions = format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "[decisions]\nfile = \"{decisions}/decisions.toml\"\npolicies_dir = \"{decisions}/policies\"\n\
         holidays_dir = \"{decisions}/holidays\"\n\n[kafka]\nbrokers = \"{}\"\n\n[kafka.topics]\ninput_prefix = \"{}\"\nactions_prefix = \"{}\"\naudit = \"{}\"\n\
         dead_letter = \"{}\"\n\n[schema_registry]\nurl = [\"{url}\"]\n",
        cfg.brokers,
        cfg.topics.input_prefix,
        cfg.topics.actions_prefix,
        cfg.topics.audit,
        cfg.topics.dead_letter
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn schemas_check_passes_mora_s_own_schemas_and_refuses_an_incompatible_producer_naming_subject_and_field()
 {
    let url = registry_url();
    let _ = utils::kafka_brokers();
    let mut cfg = KafkaConfig::new(utils::kafka_brokers());
    let p = utils::unique("sc");
    cfg.topics.input_prefix = format!("{p}.in.");
    cfg.topics.actions_prefix = format!("{p}.actions.");
    cfg.topics.audit = format!("{p}.audit");
    cfg.topics.dead_letter = format!("{p}.dlq");
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &cfg, &url);
    let mora = crate::state::mora_bin();

    let run = |args: &[&str]| {
        let out = Command::new(&mora)
            .args(args)
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = run(&["schemas", "register"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["schemas", "check"]);
    assert!(ok, "mora's own schemas are compatible: {text}");
    assert!(
        text.contains("no version registered yet"),
        "outputs are registered by mora run: {text}"
    );

    // A producer team changes the amount to a string under a subject whose level lets anything in.
    let subject = format!("{}-value", cfg.topics.input(Family::Payment));
    ureq::put(&format!("{url}/config/{subject}"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(r#"{"compatibility": "NONE"}"#)
        .unwrap();
    let mut bad: Value =
        serde_json::from_str(include_str!("../../schemas/avro/payment.avsc")).unwrap();
    let branches = bad["fields"][3]["type"].as_array_mut().unwrap();
    for f in branches[0]["fields"].as_array_mut().unwrap() {
        if f["name"] == "amount" {
            f["type"] = Value::String("string".into());
        }
    }
    let schema_file = dir.path().join("bad.avsc");
    std::fs::write(&schema_file, bad.to_string()).unwrap();
    clients(&[
        "register",
        "--registry",
        &url,
        "--subject",
        &subject,
        "--schema",
        schema_file.to_str().unwrap(),
    ]);

    let (ok, text) = run(&["schemas", "check"]);
    assert!(
        !ok,
        "an incompatible producer schema fails the check: {text}"
    );
    assert!(text.contains(&subject), "{text}");
    assert!(
        text.contains("PaymentEvent.payload.PaymentReceived.amount"),
        "{text}"
    );
}

/// Registers mora's input and clock schemas for `kafka`'s topics as texts no other test registered (a registry
/// gives equal content the same id, and in a fresh registry mora's schemas could get exactly its built-in ids,
/// which would prove nothing), after enough other schemas that no id is one of the built-in ones.
fn distinct_ids(url: &str, kafka: &KafkaConfig) -> std::collections::HashMap<Family, u32> {
    use mora_schemas::{Registry, SchemaKind};
    let client = RegistryClient::new(&registry_cfg(url)).unwrap();
    let tag = utils::unique("doc");
    for i in 0..14 {
        let filler = format!(r#"{{"type":"record","name":"Filler{i}","doc":"{tag}","fields":[]}}"#);
        client
            .register(&format!("{tag}-filler-{i}"), &filler)
            .unwrap();
    }
    let mut ids = std::collections::HashMap::new();
    for f in Family::ALL {
        let mut schema: Value =
            serde_json::from_str(Registry::global().source(SchemaKind::Event(f))).unwrap();
        schema["doc"] = Value::String(tag.clone());
        let id = client
            .register(
                &format!("{}-value", kafka.topics.input(f)),
                &schema.to_string(),
            )
            .unwrap();
        assert!(id > 13, "registry id {id} could be a built-in id");
        ids.insert(f, id);
    }
    ids
}

/// The simulated log on fresh topics, framed with mora's built-in ids or (with `registry`) with the ids a registry
/// gave mora's input schemas, as `mora loadgen` does with a `[schema_registry]`; returns the runtime file.
fn simulated_log(dir: &std::path::Path, registry: Option<&str>) -> PathBuf {
    use mora_loadgen::{LoadgenOptions, loadgen_with_ids};
    let mut kafka = KafkaConfig::new(utils::kafka_brokers());
    let p = utils::unique("rr");
    kafka.topics.input_prefix = format!("{p}.in.");
    // Output topics of this test's own: tests that share the default names race to create them.
    kafka.topics.actions_prefix = format!("{p}.actions.");
    kafka.topics.audit = format!("{p}.audit");
    kafka.topics.dead_letter = format!("{p}.dlq");
    kafka.clock.source = mora_connector_kafka::ClockSource::Log;
    mora_connector_kafka::create_topics(&kafka, 2, 1).unwrap();
    let ids = match registry {
        Some(url) => distinct_ids(url, &kafka),
        None => Default::default(),
    };
    let opts = LoadgenOptions {
        debtors: 600,
        events: 6_000,
        rate: None,
        seed: 11,
        days: 90,
    };
    loadgen_with_ids(&kafka, &opts, engine(), &ids).unwrap();
    let defaults = format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"));
    let section = registry.map_or(String::new(), |u| {
        format!("\n[schema_registry]\nurl = [\"{u}\"]\n")
    });
    let config = dir.join("mora.toml");
    std::fs::write(
        &config,
        format!(
            "[decisions]\nfile = \"{defaults}/decisions.toml\"\npolicies_dir = \"{defaults}/policies\"\n\
             holidays_dir = \"{defaults}/holidays\"\n\n[kafka]\nbrokers = \"{}\"\n\n[kafka.clock]\nsource = \"log\"\n\n\
             [kafka.topics]\ninput_prefix = \"{p}.in.\"\n{section}",
            kafka.brokers
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_log_framed_with_registry_ids_replays_to_the_same_actions_as_the_built_in_one() {
    let url = registry_url();
    let dir = tempfile::tempdir().unwrap();
    let (plain_dir, framed_dir) = (dir.path().join("plain"), dir.path().join("framed"));
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&framed_dir).unwrap();
    let plain = simulated_log(&plain_dir, None);
    let framed = simulated_log(&framed_dir, Some(&url));
    let replay = |config: PathBuf, out: PathBuf| {
        mora::replay::run(&mora::replay::ReplayArgs {
            config,
            candidate: None,
            out,
            input: None,
            export: None,
            from: None,
            to: None,
            from_offset: Vec::new(),
            to_offset: Vec::new(),
            audit: false,
        })
        .unwrap()
    };
    let a = replay(plain, plain_dir.join("out"));
    let b = replay(framed, framed_dir.join("out"));
    assert_eq!(a.records, b.records);
    assert!(a.in_force.tally.actions > 50, "{a:?}");
    let actions = |d: &std::path::Path| crate::replay::digest(&d.join("out/in_force/actions"));
    assert_eq!(
        actions(&plain_dir),
        actions(&framed_dir),
        "the same decisions either way"
    );
    let dead = |d: &std::path::Path| {
        std::fs::read_to_string(d.join("out/in_force/dead_letters.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(
        dead(&plain_dir),
        dead(&framed_dir),
        "only the simulator's poison records are dead letters"
    );
    // The comparison counts each side's dead letters, as its file holds them.
    let counted = a.in_force.tally.dead_letters.values().sum::<u64>() as usize;
    assert_eq!(counted, dead(&plain_dir));
    let md = std::fs::read_to_string(plain_dir.join("out/comparison.md")).unwrap();
    assert!(
        md.contains(&format!(
            "| dead letters (each side's dead_letters.jsonl) | {counted} |"
        )),
        "{md}"
    );
}

#[test]
fn without_auto_register_mora_starts_only_once_its_output_schemas_are_registered() {
    let url = registry_url();
    let mut cfg = KafkaConfig::new(utils::kafka_brokers());
    let p = utils::unique("ar");
    cfg.topics.actions_prefix = format!("{p}.actions.");
    cfg.topics.audit = format!("{p}.audit");
    cfg.topics.dead_letter = format!("{p}.dlq");
    cfg.topics.input_prefix = format!("{p}.in.");
    let mut strict = registry_cfg(&url);
    strict.auto_register = false;
    let err = mora::schemas::connect(&strict, &cfg.topics)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{p}.actions.dialer-value")), "{err}");
    assert!(err.contains("auto_register is off"), "{err}");
    // Registered by the registry's owners (here: mora with auto_register), then found with the same ids.
    let registering = registry_cfg(&url);
    let first = mora::schemas::connect(&registering, &cfg.topics).unwrap();
    let found = mora::schemas::connect(&strict, &cfg.topics).unwrap();
    for t in [
        cfg.topics.audit.as_str(),
        &cfg.topics.dead_letter,
        &cfg.topics.actions(Channel::Sms),
    ] {
        assert!(first.output_id(t).is_some(), "{t}");
        assert_eq!(first.output_id(t), found.output_id(t), "{t}");
    }
}

#[test]
fn an_unreachable_url_is_skipped_for_the_next_one_and_a_missing_id_is_not_found() {
    use mora_runtime::{SchemaFetchError, SchemaSource};
    let url = registry_url();
    // A port nothing listens on: bound, then closed.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = registry_cfg(&format!("http://{dead}"));
    cfg.url.push(url.clone());
    cfg.timeout = Duration::from_secs(2);
    let client = RegistryClient::new(&cfg).unwrap();
    let subject = format!("{}-value", utils::unique("fo"));
    let text =
        mora_schemas::Registry::global().source(mora_schemas::SchemaKind::Event(Family::Promise));
    let id = client.register(&subject, text).unwrap();
    let fetched = client.schema(id).unwrap();
    assert!(fetched.contains("PromiseEvent"), "{fetched}");
    assert!(matches!(
        client.schema(1_999_999_999),
        Err(SchemaFetchError::NotFound(_))
    ));
    let only_dead = RegistryClient::new(&registry_cfg(&format!("http://{dead}"))).unwrap();
    assert!(matches!(
        only_dead.schema(id),
        Err(SchemaFetchError::Unavailable(_))
    ));
}
