//! Every decision of a simulated portfolio, pinned: one partition of the simulator's debtors runs for 90 days
//! through a partition worker with the shipped configuration (contact outcomes, promises and payments reacting to
//! the engine's actions), and digests of the actions, the audit records and every debtor's final state are compared
//! with the ones recorded when the test was written. Every final state also goes through the state store's codec
//! (the current format and format 2) and reads back equal.
//!
//! A change to how the engine lays out or computes its state must leave all three digests as they are. A change
//! that means to decide differently (a new rule, a fixed bug) updates them in the same commit, saying why.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use mora_domain::engine::Engine;
use mora_domain::time::MINUTE_MS;
use mora_runtime::durable::codec;
use mora_runtime::{CollectingSink, Operator, PartitionWorker, Sink};
use mora_sim::{PartitionSim, SimConfig, SimRecord};

/// What the recorded run produced: debtors, actions, audit records, and the digests of the three.
type Outcome = (usize, usize, usize, String, String, String);

/// Recorded with the layout before the compact debtor (whole debtors in the slab, profile and obligations boxed).
const RECORDED: (usize, usize, usize, &str, &str, &str) = (
    4_000,
    25_365,
    56_812,
    "471b251e113f71f9",
    "106ecf271570becf",
    "e2907b4a0a323151",
);

/// FNV-1a over a stream of byte strings (each followed by a separator, so that concatenations differ).
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn shipped_engine() -> Engine {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../app/defaults");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let dir = |d: &str| {
        let mut files: Vec<_> = std::fs::read_dir(root.join(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let decisions = toml::from_str(&read(&root.join("decisions.toml"))).unwrap();
    let policies: Vec<_> = dir("policies")
        .iter()
        .map(|p| toml::from_str(&read(p)).unwrap())
        .collect();
    let calendars: Vec<_> = dir("holidays")
        .iter()
        .map(|p| toml::from_str(&read(p)).unwrap())
        .collect();
    Engine::new(&decisions, &policies, &calendars).unwrap()
}

fn run() -> Outcome {
    let cfg = SimConfig {
        debtors: 4_000,
        days: 90,
        partitions: 1,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    let mut sim = PartitionSim::new(&cfg, 0);
    let mut worker = PartitionWorker::new(0, Arc::new(shipped_engine()));
    let mut sink = CollectingSink::default();
    let (mut actions, mut audits) = (Digest::new(), Digest::new());
    let (mut action_count, mut audit_count) = (0, 0);
    let mut drain = |sim: &mut PartitionSim, sink: &mut CollectingSink| {
        assert!(sink.dead_letters.is_empty(), "{:?}", sink.dead_letters);
        for a in sink.actions.drain(..) {
            actions.add(&serde_json::to_vec(&a).unwrap());
            action_count += 1;
            sim.react(&a);
        }
        for r in sink.audits.drain(..) {
            audits.add(&serde_json::to_vec(&r).unwrap());
            audit_count += 1;
        }
    };
    let mut t = cfg.start_ts();
    while t < cfg.end() {
        let tick = t.plus_ms(15 * MINUTE_MS);
        while let Some(SimRecord::Event(ev)) = sim.pop_until(tick) {
            let _ = worker.on_event(&ev, &mut sink);
            drain(&mut sim, &mut sink);
        }
        Operator::on_tick(&mut worker, tick, &mut sink as &mut dyn Sink);
        drain(&mut sim, &mut sink);
        t = tick;
    }
    let mut ids: Vec<_> = worker.debtors().map(|d| d.id.clone()).collect();
    ids.sort();
    let mut states = Digest::new();
    for id in &ids {
        let d = worker.debtor(id).unwrap();
        states.add(&serde_json::to_vec(d).unwrap());
        // The stored form reads back the same state, whether written in the current format or in format 2.
        let current = codec::decode(id, codec::FORMAT, &codec::encode(d).unwrap()).unwrap();
        assert_eq!(&current, d, "{id} in format {}", codec::FORMAT);
        let earlier = codec::decode(id, 2, &codec::encode_format_2(d).unwrap()).unwrap();
        assert_eq!(&earlier, d, "{id} in format 2");
    }
    (
        worker.len(),
        action_count,
        audit_count,
        actions.hex(),
        audits.hex(),
        states.hex(),
    )
}

#[test]
fn a_simulated_portfolio_decides_as_recorded() {
    let got = run();
    assert!(
        got.1 > 1_000 && got.2 > got.1,
        "a portfolio that acts: {got:?}"
    );
    let recorded: Outcome = (
        RECORDED.0,
        RECORDED.1,
        RECORDED.2,
        RECORDED.3.into(),
        RECORDED.4.into(),
        RECORDED.5.into(),
    );
    assert_eq!(
        got, recorded,
        "decisions or states differ from the recorded run"
    );
}
