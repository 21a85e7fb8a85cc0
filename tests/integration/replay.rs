//! `mora replay` on the real broker: the same log and configurations give byte-identical outputs, from the topics
//! and from an export file; a candidate with a champion/challenger arm is compared with the configuration in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mora::replay::{ReplayArgs, same_outputs};
use mora_connector_kafka::{ClockSource, KafkaConfig, create_topics};
use mora_domain::testkit::ts;
use mora_loadgen::{LoadgenOptions, loadgen};

use crate::servers as utils;

/// Input topics filled by the load generator, and runtime files for the configuration in force and a candidate.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    candidate: PathBuf,
}

fn setup() -> Setup {
    let mut kafka = KafkaConfig::new(utils::kafka_brokers());
    let p = utils::unique("r");
    kafka.topics.input_prefix = format!("{p}.in.");
    kafka.clock.source = ClockSource::Log;
    create_topics(&kafka, 3, 1).expect("topics created");
    let engine = Arc::new(mora::config::load(None).expect("built-in").engine);
    let report = loadgen(
        &kafka,
        &LoadgenOptions {
            debtors: 1_500,
            events: 15_000,
            rate: None,
            seed: 5,
            days: 120,
        },
        engine,
    )
    .expect("loadgen");
    assert!(report.clock_records > 0, "the log carries simulated time");
    let dir = tempfile::tempdir().unwrap();
    let defaults = format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"));
    let deploy = format!("{}/../deploy/config", env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("mora.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[decisions]
file = "{defaults}/decisions.toml"
policies_dir = "{defaults}/policies"
holidays_dir = "{defaults}/holidays"

[kafka]
brokers = "{brokers}"

[kafka.clock]
source = "log"

[kafka.topics]
input_prefix = "{p}.in."
"#,
            brokers = kafka.brokers
        ),
    )
    .unwrap();
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        format!(
            r#"
[decisions]
file = "{deploy}/candidate-decisions.toml"
policies_dir = "{defaults}/policies"
holidays_dir = "{defaults}/holidays"
"#
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        config,
        candidate,
    }
}

fn args(s: &Setup, out: &Path) -> ReplayArgs {
    ReplayArgs {
        config: s.config.clone(),
        candidate: Some(s.candidate.clone()),
        out: out.to_path_buf(),
        input: None,
        export: None,
        from: Some(ts("2026-02-01T00:00:00Z")),
        to: Some(ts("2026-03-15T00:00:00Z")),
        from_offset: Vec::new(),
        to_offset: Vec::new(),
        audit: true,
    }
}

pub(crate) fn digest(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in files {
        h.update(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
        h.update(&std::fs::read(&f).unwrap());
    }
    format!("{:032x}", h.digest128())
}

#[test]
fn replays_are_byte_identical_from_the_topics_and_from_an_export() {
    let s = setup();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let export = tmp.path().join("log.jsonl");
    let first = mora::replay::run(&ReplayArgs {
        export: Some(export.clone()),
        ..args(&s, &a)
    })
    .expect("replay a");
    mora::replay::run(&args(&s, &b)).expect("replay b");
    let (da, db) = (digest(&a), digest(&b));
    eprintln!("replay digests: {da} {db}");
    assert_eq!(da, db, "same log and configurations, different outputs");
    assert!(same_outputs(&a, &b).unwrap());
    // From the export file, without the broker: the same decisions on both sides.
    let from_file = mora::replay::run(&ReplayArgs {
        input: Some(export),
        ..args(&s, &c)
    })
    .expect("replay from the export");
    for side in ["in_force", "candidate"] {
        assert!(
            same_outputs(&a.join(side), &c.join(side)).unwrap(),
            "{side}: the export replays differently"
        );
    }
    assert_eq!(from_file.records, first.records);

    // The window holds decisions, and the candidate's challenger arm took part of the early-digital debtors.
    assert!(first.records_in_window > 0 && first.records_in_window < first.records);
    assert!(first.in_force.tally.actions > 100, "{first:?}");
    let arms = &first.candidate.tally.arms;
    let challenger = arms
        .get("early-digital/whatsapp-first")
        .map_or(0, |t| t.actions);
    let champion = arms.get("early-digital/champion").map_or(0, |t| t.actions);
    assert!(
        challenger > 0 && champion > challenger,
        "champion {champion}, challenger {challenger}"
    );
    assert!(
        first
            .in_force
            .tally
            .arms
            .keys()
            .all(|k| k.ends_with("/champion")),
        "the configuration in force runs no experiment"
    );
    // Every candidate action file line names its arm; the challenger's steps exist only there.
    let text = std::fs::read_to_string(c.join("candidate/actions/whatsapp.jsonl")).unwrap();
    assert!(text.contains("\"arm\":\"whatsapp-first\""));
    assert!(text.lines().any(|l| l.contains("\"step\":\"whatsapp-d1\"")));
    let comparison = std::fs::read_to_string(a.join("comparison.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&comparison).unwrap();
    assert_eq!(
        v["delta"]["actions"].as_i64().unwrap(),
        first.candidate.tally.actions as i64 - first.in_force.tally.actions as i64
    );
}
