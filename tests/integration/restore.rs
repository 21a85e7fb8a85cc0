//! Restore semantics without servers: a partition's input is processed in commits and flushes exactly as `mora run`
//! does with a state store, crashing at random points (before a commit, between a commit and its flush, half-way
//! through a flush), and restored each time from what the "database" (a map of encoded rows plus a checkpoint)
//! holds. What was sent and what is stored must equal an uninterrupted run. The Kafka and database tests show the
//! same end to end; this one explores thousands of crash points in seconds and pins down any failure by seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mora_domain::action::Action;
use mora_domain::engine::Engine;
use mora_domain::time::Ts;
use mora_runtime::durable::codec::{FORMAT, decode, encode};
use mora_runtime::{CollectingSink, Fences, InputRecord, Operator, PartitionWorker};
use mora_schemas::{Family, Wire, encode_event, family_of};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use rand::{Rng, SeedableRng};

/// One input record of partition 0.
struct Rec {
    family: Family,
    topic: String,
    offset: i64,
    key: Vec<u8>,
    payload: Vec<u8>,
}

fn engine() -> Arc<Engine> {
    Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    )
}

/// The simulator's log for one partition, in the order the pipeline applies it (time, then topic, then offset).
fn input(debtors: u64, days: u32) -> Vec<Rec> {
    let cfg = SimConfig {
        debtors,
        days,
        partitions: 1,
        poison_rate: 0.0,
        seed: 3,
        ..SimConfig::default()
    };
    let mut sim = PartitionSim::new(&cfg, 0);
    let mut offsets: BTreeMap<Family, i64> = BTreeMap::new();
    let mut recs = Vec::new();
    while let Some(r) = sim.pop_until(cfg.end()) {
        if let SimRecord::Event(ev) = r {
            let family = family_of(&ev.kind).0;
            let off = offsets.entry(family).or_default();
            recs.push((
                ev.occurred_at,
                Rec {
                    family,
                    topic: format!("in.{}", family.name()),
                    offset: *off,
                    key: ev.debtor_id.as_bytes().to_vec(),
                    payload: encode_event(&ev, Wire::Confluent).unwrap(),
                },
            ));
            *off += 1;
        }
    }
    recs.sort_by(|(ta, a), (tb, b)| (ta, &a.topic, a.offset).cmp(&(tb, &b.topic, b.offset)));
    recs.into_iter().map(|(_, r)| r).collect()
}

fn process(w: &mut PartitionWorker, r: &Rec, sink: &mut CollectingSink) {
    w.process(
        &InputRecord {
            family: r.family,
            topic: &r.topic,
            partition: 0,
            offset: r.offset,
            key: Some(&r.key),
            payload: &r.payload,
            writer: None,
        },
        sink,
    );
}

/// Per family, the next offset after the first `pos` records (a cut of the input).
fn cut(log: &[Rec], pos: usize) -> Vec<(Family, i64)> {
    let mut next: BTreeMap<Family, i64> = Family::ALL.iter().map(|f| (*f, 0)).collect();
    for r in &log[..pos] {
        next.insert(r.family, r.offset + 1);
    }
    next.into_iter().collect()
}

/// The "database": rows (encoded state and the cut they reflect) and the checkpoint (a cut and the clock).
#[derive(Default)]
struct Db {
    rows: BTreeMap<String, (Vec<u8>, usize)>,
    checkpoint: (usize, Ts),
}

fn run_with_crashes(log: &[Rec], engine: &Arc<Engine>, seed: u64) -> (Vec<Action>, Db, u32) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut db = Db::default();
    let mut worker = PartitionWorker::new(0, engine.clone());
    let (mut pos, mut committed, mut crashes) = (0usize, 0usize, 0u32);
    let mut sent = Vec::new();
    loop {
        // Apply a batch; outputs of records at or past the committed position go into the open transaction.
        let end = (pos + rng.gen_range(1..120)).min(log.len());
        let mut txn = Vec::new();
        for r in &log[pos..end] {
            let mut sink = CollectingSink::default();
            process(&mut worker, r, &mut sink);
            if pos >= committed {
                txn.extend(sink.actions);
            }
            pos += 1;
        }
        let crash = |rng: &mut rand_chacha::ChaCha8Rng| rng.gen_bool(0.15);
        let mut crashed = crash(&mut rng); // before the commit: the transaction aborts
        if !crashed {
            sent.extend(txn);
            committed = committed.max(pos);
            crashed = crash(&mut rng); // after the commit, before the flush
        }
        if !crashed {
            let changed: Vec<(String, Vec<u8>)> = worker
                .take_changed()
                .into_iter()
                .map(|(d, _)| (d.id.to_string(), encode(d).unwrap()))
                .collect();
            let half_way = crash(&mut rng);
            for (id, bytes) in changed {
                if half_way && rng.gen_bool(0.5) {
                    continue; // this row's write never landed
                }
                db.rows.insert(id, (bytes, pos));
            }
            if half_way {
                crashed = true;
            } else {
                db.checkpoint = (pos, worker.clock());
            }
        }
        if crashed {
            crashes += 1;
            let (cp, clock) = db.checkpoint;
            let mut fences = Fences::new();
            let mut debtors = Vec::new();
            for (id, (bytes, at)) in &db.rows {
                if *at > cp {
                    let base = cut(log, cp);
                    let ahead: Vec<_> = cut(log, *at)
                        .into_iter()
                        .zip(base)
                        .filter(|((_, o), (_, c))| o > c)
                        .map(|(f, _)| f)
                        .collect();
                    fences.insert(id.as_str().into(), ahead);
                }
                debtors.push(decode(id, FORMAT, bytes).unwrap());
            }
            worker = PartitionWorker::restore(0, engine.clone(), clock, debtors, fences);
            pos = cp;
            continue;
        }
        if pos == log.len() {
            return (sent, db, crashes);
        }
    }
}

#[test]
fn crashes_at_any_point_send_every_action_once_and_store_a_clean_runs_state() {
    let engine = engine();
    let log = input(600, 120);
    assert!(log.len() > 5_000, "{} records", log.len());
    let mut reference = PartitionWorker::new(0, engine.clone());
    let mut sink = CollectingSink::default();
    for r in &log {
        process(&mut reference, r, &mut sink);
    }
    let mut want: Vec<String> = sink
        .actions
        .iter()
        .map(|a| a.action_id.0.to_string())
        .collect();
    want.sort();
    for seed in std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(0..12, |s: u64| s..s + 1)
    {
        let (sent, db, crashes) = run_with_crashes(&log, &engine, seed);
        assert!(crashes >= 5, "seed {seed}: only {crashes} crashes");
        let mut got: Vec<String> = sent.iter().map(|a| a.action_id.0.to_string()).collect();
        got.sort();
        if got != want {
            let w: std::collections::BTreeSet<_> = want.iter().collect();
            let g: std::collections::BTreeSet<_> = got.iter().collect();
            let describe = |id: &&String, from: &[Action]| {
                from.iter()
                    .find(|a| &a.action_id.0.as_str() == id)
                    .map(|a| {
                        format!(
                            "{} {}/{} {}",
                            a.debtor_id, a.reason.strategy, a.reason.step, a.created_at
                        )
                    })
                    .unwrap_or_default()
            };
            let missing: Vec<_> = w
                .difference(&g)
                .take(5)
                .map(|id| describe(id, &sink.actions))
                .collect();
            let extra: Vec<_> = g
                .difference(&w)
                .take(5)
                .map(|id| describe(id, &sent))
                .collect();
            panic!(
                "seed {seed} ({crashes} crashes): {} sent vs {} expected; missing {missing:?}; unexpected {extra:?}",
                got.len(),
                want.len()
            );
        }
        let stored: HashMap<&str, _> = db
            .rows
            .iter()
            .map(|(id, (b, _))| (id.as_str(), decode(id, FORMAT, b).unwrap()))
            .collect();
        for d in reference.debtors() {
            assert_eq!(
                stored.get(d.id.as_str()),
                Some(d),
                "seed {seed}: stored state of {} differs from a clean run",
                d.id
            );
        }
    }
}
