//! The ledger on the real CQL database: a flush's entries are a chunk per shard and day, a flush written twice
//! (a retry, or a replay after a crash) reads back once, and rows of the `ledger` table earlier versions wrote are
//! read beside the chunks, an entry in both once.

use std::collections::BTreeMap;
use std::sync::Arc;

use mora_connector_scylla::{
    ConsistencyLevel, LedgerRecord, StateConfig, Store, migrate, shard_of,
};
use mora_domain::action::{Action, AuditRecord};
use mora_domain::engine::Engine;
use mora_domain::time::{DAY_MS, Ts};
use mora_runtime::{Checkpoint, CollectingSink, Operator, PartitionFlush, PartitionWorker};
use mora_schemas::{Wire, decode_action, decode_audit, encode_action, encode_audit};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use scylla::client::session_builder::SessionBuilder;
use scylla::value::CqlTimestamp;

use crate::servers as utils;

/// The actions and decisions of a simulated partition over a few days.
fn decided(engine: &Arc<Engine>) -> (Vec<Action>, Vec<AuditRecord>) {
    let cfg = SimConfig {
        debtors: 400,
        days: 12,
        partitions: 1,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    let mut sim = PartitionSim::new(&cfg, 0);
    let mut w = PartitionWorker::new(0, engine.clone());
    let mut sink = CollectingSink::default();
    while let Some(r) = sim.pop_until(cfg.end()) {
        if let SimRecord::Event(ev) = r {
            let _ = w.on_event(&ev, &mut sink);
        }
    }
    w.on_tick(cfg.end(), &mut sink);
    (sink.actions, sink.audits)
}

fn flush(actions: &[Action], audits: &[AuditRecord]) -> PartitionFlush {
    PartitionFlush {
        partition: 0,
        checkpoint: Arc::new(Checkpoint::default()),
        actions: actions.to_vec(),
        audits: audits.to_vec(),
        ..PartitionFlush::default()
    }
}

fn day_of(t: Ts) -> i64 {
    t.0.div_euclid(DAY_MS)
}

/// What a clean ledger holds for `actions` and `audits`, in a comparable form (as their Avro records read back:
/// amounts at the schema's scale): per day, each entry once.
fn expected(actions: &[Action], audits: &[AuditRecord]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for a in actions {
        out.entry(day_of(a.created_at)).or_default().push(format!(
            "{:?}",
            decode_action(&encode_action(a, Wire::Raw).unwrap()).unwrap()
        ));
    }
    for r in audits {
        out.entry(day_of(r.at)).or_default().push(format!(
            "{:?}",
            decode_audit(&encode_audit(r, Wire::Raw).unwrap()).unwrap()
        ));
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

async fn stored(store: &Store, days: impl Iterator<Item = i64>) -> BTreeMap<i64, Vec<String>> {
    let mut out = BTreeMap::new();
    for day in days {
        let mut v: Vec<String> = store
            .ledger_day(0, day)
            .await
            .expect("ledger day")
            .into_iter()
            .map(|r| match r {
                LedgerRecord::Action(a) => format!("{a:?}"),
                LedgerRecord::Decision(d) => format!("{d:?}"),
            })
            .collect();
        let n = v.len();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), n, "day {day}: an entry read twice");
        if !v.is_empty() {
            out.insert(day, v);
        }
    }
    out
}

#[tokio::test]
async fn ledger_chunks_read_back_once_beside_the_rows_of_earlier_versions() {
    let engine = Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    );
    let (actions, audits) = decided(&engine);
    assert!(
        actions.len() > 20 && audits.len() > 50,
        "{} actions, {} decisions",
        actions.len(),
        audits.len()
    );
    let mut cfg = StateConfig::new(utils::cql_nodes());
    cfg.keyspace = utils::unique("mora_ledger");
    cfg.consistency = ConsistencyLevel::One;
    cfg.shards = 4;
    // Small chunks, so a shard's day takes several.
    cfg.batch_bytes = 2048;
    migrate(&cfg).await.expect("keyspace migrated");
    let store = Store::connect(&cfg).await.expect("store");
    let ks = cfg.keyspace.clone();
    let session = SessionBuilder::new()
        .known_nodes(utils::cql_nodes())
        .build()
        .await
        .expect("CQL session");

    // The first tenth of the decisions as an earlier version stored them: a row each in `ledger`.
    let tenth = audits.len() / 10;
    for r in &audits[..tenth] {
        let record = encode_audit(r, Wire::Raw).expect("encodes");
        let kind = r.kind.as_str();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(kind.as_bytes());
        h.update(&[0]);
        h.update(&record);
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.ledger (kafka_partition, shard, day, debtor_id, at, entry, kind, record) \
                     VALUES (0, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    shard_of(&r.debtor_id, cfg.shards),
                    day_of(r.at) as i32,
                    r.debtor_id.as_str(),
                    CqlTimestamp(r.at.0),
                    h.digest() as i64,
                    kind,
                    record,
                ),
            )
            .await
            .expect("a ledger row of an earlier version");
    }
    // This version writes everything from the twentieth on (an upgrade's first flush replays a little of what the
    // earlier version had stored), in two flushes, the second written twice (a retry after a lost answer).
    let (half_a, half_b) = (actions.len() / 2, audits.len() / 2);
    let first = flush(&actions[..half_a], &audits[tenth / 2..half_b]);
    let second = flush(&actions[half_a..], &audits[half_b..]);
    let written = store.write(&first, 10_000).await.expect("first flush");
    store.write(&second, 20_000).await.expect("second flush");
    store
        .write(&second, 30_000)
        .await
        .expect("second flush again");

    let days = expected(&actions, &audits);
    let span = *days.keys().next().unwrap()..=*days.keys().last().unwrap();
    assert!(
        days.len() >= 3,
        "the decisions span days: {:?}",
        days.keys()
    );
    let got = stored(&store, span.clone()).await;
    for day in span.clone() {
        let (want, have) = (days.get(&day), got.get(&day));
        let (want, have) = (
            want.cloned().unwrap_or_default(),
            have.cloned().unwrap_or_default(),
        );
        let missing: Vec<&String> = want.iter().filter(|e| !have.contains(e)).collect();
        let unexpected: Vec<&String> = have.iter().filter(|e| !want.contains(e)).collect();
        assert!(
            missing.is_empty() && unexpected.is_empty(),
            "day {day}: {} missing, e.g. {:?}; {} unexpected, e.g. {:?}",
            missing.len(),
            missing.first(),
            unexpected.len(),
            unexpected.first()
        );
    }

    // Statements follow chunks, not entries: far fewer than the entries the flush held.
    let entries = (first.actions.len() + first.audits.len()) as u64;
    let chunks = store_chunks(&session, &ks, span.clone(), cfg.shards, 10_000).await;
    assert_eq!(written.statements, chunks, "a statement per chunk");
    assert!(
        chunks * 3 < entries,
        "{chunks} chunks for {entries} entries"
    );

    // A debtor's recent decisions: newest first, each once, the rows of the earlier version among them.
    let debtor = &audits[0].debtor_id;
    let mut mine: Vec<AuditRecord> = audits
        .iter()
        .filter(|r| r.debtor_id == *debtor)
        .map(|r| decode_audit(&encode_audit(r, Wire::Raw).unwrap()).unwrap())
        .collect();
    mine.sort_by(|a, b| {
        b.at.cmp(&a.at)
            .then_with(|| a.kind.as_str().cmp(b.kind.as_str()))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    mine.dedup();
    let now = Ts((span.end() + 1) * DAY_MS - 1);
    let recent = store
        .recent_decisions(0, debtor, now, 1000)
        .await
        .expect("recent decisions");
    assert_eq!(recent, mine);
    let three = store.recent_decisions(0, debtor, now, 3).await.unwrap();
    assert_eq!(three, mine[..3.min(mine.len())]);
}

/// Chunks stored with write time `written` over `days` and every shard.
async fn store_chunks(
    session: &scylla::client::session::Session,
    ks: &str,
    days: std::ops::RangeInclusive<i64>,
    shards: u16,
    written: i64,
) -> u64 {
    let mut n = 0;
    for day in days {
        for shard in 0..shards {
            let rows = session
                .query_unpaged(
                    format!(
                        "SELECT COUNT(*) FROM {ks}.ledger_log WHERE kafka_partition = 0 AND shard = {shard} \
                         AND day = {day} AND written = {written}"
                    ),
                    &[],
                )
                .await
                .expect("count")
                .into_rows_result()
                .expect("rows");
            n += rows.single_row::<(i64,)>().expect("one row").0 as u64;
        }
    }
    n
}
