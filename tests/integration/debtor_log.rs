//! The debtor log on the real CQL database: a restore keeps each debtor's latest state across the rows of earlier
//! versions and the log's chunks; a sweep that ends deletes what it superseded, and a late flush from a former
//! owner changes nothing once it has.

use std::sync::Arc;

use mora_connector_scylla::{ConsistencyLevel, StateConfig, Store, migrate, shard_of};
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::time::DAY_MS;
use mora_runtime::durable::codec;
use mora_runtime::{
    Checkpoint, CollectingSink, Operator, PartitionFlush, PartitionWorker, SweepMark,
};
use mora_sim::{PartitionSim, SimConfig, SimRecord};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::servers as utils;

/// The same simulated debtors after 10 and after 25 days (their states differ), sorted by id.
fn debtors(engine: &Arc<Engine>) -> (Vec<Debtor>, Vec<Debtor>) {
    let cfg = SimConfig {
        debtors: 60,
        days: 25,
        partitions: 1,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    let mut sim = PartitionSim::new(&cfg, 0);
    let mut w = PartitionWorker::new(0, engine.clone());
    let mut sink = CollectingSink::default();
    let mut at = |w: &mut PartitionWorker, until| {
        while let Some(r) = sim.pop_until(until) {
            if let SimRecord::Event(ev) = r {
                let _ = w.on_event(&ev, &mut sink);
            }
        }
        w.on_tick(until, &mut sink);
        let mut all: Vec<Debtor> = w.debtors().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    };
    let early = at(
        &mut w,
        mora_domain::time::Ts(cfg.start_ts().0 + 10 * DAY_MS),
    );
    let late = at(&mut w, cfg.end());
    (early, late)
}

fn flush(engine: &Engine, debtors: &[Debtor], sweep: Option<SweepMark>) -> PartitionFlush {
    let mut f = PartitionFlush {
        partition: 0,
        checkpoint: Arc::new(Checkpoint::default()),
        sweep,
        ..PartitionFlush::default()
    };
    for d in debtors {
        f.add(engine, d, None).expect("encodes");
    }
    f.views.clear();
    f
}

async fn count(session: &Session, query: String) -> i64 {
    session
        .query_unpaged(query, &[])
        .await
        .expect("count")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("one row")
        .0
}

#[tokio::test]
async fn a_restore_keeps_each_debtors_latest_state_and_a_sweep_deletes_what_it_superseded() {
    let engine = Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    );
    let (early, late) = debtors(&engine);
    assert_eq!(early.len(), 60);
    assert_ne!(early, late, "the states moved on");
    let mut cfg = StateConfig::new(utils::cql_nodes());
    cfg.keyspace = utils::unique("mora_log");
    cfg.consistency = ConsistencyLevel::One;
    cfg.shards = 4;
    // Small chunks, so a shard's states take several.
    cfg.batch_bytes = 2048;
    migrate(&cfg).await.expect("keyspace migrated");
    let session = SessionBuilder::new()
        .known_nodes(utils::cql_nodes())
        .build()
        .await
        .expect("CQL session");
    let ks = cfg.keyspace.clone();
    let store = Arc::new(Store::connect(&cfg).await.expect("store"));

    // Five debtors as an earlier version stored them (one row each), at write time 1 000.
    for d in &early[..5] {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.debtor_state (kafka_partition, shard, debtor_id, format, state) \
                     VALUES (0, ?, ?, ?, ?) USING TIMESTAMP 1000"
                ),
                (
                    shard_of(&d.id, cfg.shards),
                    d.id.as_str(),
                    codec::FORMAT,
                    codec::encode(d).unwrap(),
                ),
            )
            .await
            .expect("a row of an earlier version");
    }
    // The late state of the first two, in an earlier version's rows written after the rest.
    for d in &late[..2] {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.debtor_state (kafka_partition, shard, debtor_id, format, state) \
                     VALUES (0, ?, ?, ?, ?) USING TIMESTAMP 2500"
                ),
                (
                    shard_of(&d.id, cfg.shards),
                    d.id.as_str(),
                    codec::FORMAT,
                    codec::encode(d).unwrap(),
                ),
            )
            .await
            .expect("a newer row of an earlier version");
    }
    // Every debtor's early state in the log at 2 000, then the late state of debtors 10.. at 3 000.
    store
        .write(&flush(&engine, &early, None), 2000)
        .await
        .unwrap();
    store
        .write(&flush(&engine, &late[10..], None), 3000)
        .await
        .unwrap();
    // Debtor 5's late state in a chunk as versions before packed chunks wrote it (layout 1, plain), at 2 600.
    let (id, state) = (late[5].id.as_bytes(), codec::encode(&late[5]).unwrap());
    let mut plain = vec![1u8];
    plain.extend_from_slice(&1u32.to_le_bytes());
    plain.extend_from_slice(&(id.len() as u16).to_le_bytes());
    plain.extend_from_slice(id);
    plain.extend_from_slice(&(state.len() as u32).to_le_bytes());
    plain.extend_from_slice(&state);
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.debtor_log (kafka_partition, shard, written, chunk, format, states) \
                 VALUES (0, ?, 2600, 0, ?, ?) USING TIMESTAMP 2600"
            ),
            (shard_of(&late[5].id, cfg.shards), codec::FORMAT, plain),
        )
        .await
        .expect("a plain chunk of an earlier version");
    let mut expected: Vec<Debtor> = late[..2].to_vec();
    expected.extend_from_slice(&early[2..5]);
    expected.push(late[5].clone());
    expected.extend_from_slice(&early[6..10]);
    expected.extend_from_slice(&late[10..]);
    let restored = store.restore(0).await.expect("restore");
    assert_eq!(
        restored.debtors, expected,
        "each debtor's latest: rows at 2 500 over the log at 2 000, the log at 3 000 over rows at 1 000, a plain \
         chunk at 2 600 over packed ones at 2 000"
    );
    assert_eq!(
        store.debtor(0, &late[0].id).await.unwrap().as_ref(),
        Some(&late[0])
    );
    assert_eq!(
        store.debtor(0, &early[6].id).await.unwrap().as_ref(),
        Some(&early[6])
    );
    assert_eq!(
        store.debtor(0, &late[5].id).await.unwrap().as_ref(),
        Some(&late[5])
    );
    assert_eq!(store.debtor(0, "nobody").await.unwrap(), None);

    // A sweep over two flushes rewrites every debtor in its late state.
    let mark = |starts, ends, rows| SweepMark {
        id: 41,
        starts,
        ends,
        rows,
    };
    store
        .write(
            &flush(&engine, &late[..30], Some(mark(true, false, 30))),
            4000,
        )
        .await
        .unwrap();
    let chunks = format!(
        "SELECT COUNT(*) FROM {ks}.debtor_log WHERE kafka_partition = 0 AND shard IN (0, 1, 2, 3)"
    );
    let before_end = count(&session, chunks.clone()).await;
    store
        .write(
            &flush(&engine, &late[30..], Some(mark(false, true, 30))),
            5000,
        )
        .await
        .unwrap();
    let older = format!(
        "SELECT COUNT(*) FROM {ks}.debtor_log WHERE kafka_partition = 0 AND shard = ? AND written < 4000"
    );
    for shard in 0..cfg.shards as i16 {
        let q = older.replace('?', &shard.to_string());
        assert_eq!(
            count(&session, q).await,
            0,
            "shard {shard}: nothing older than the sweep"
        );
    }
    let after_end = count(&session, chunks.clone()).await;
    assert!(
        after_end < before_end,
        "{before_end} chunks before the sweep ended, {after_end} after"
    );
    assert_eq!(
        count(
            &session,
            format!("SELECT COUNT(*) FROM {ks}.debtor_state WHERE kafka_partition = 0 AND shard IN (0, 1, 2, 3)")
        )
        .await,
        0,
        "an earlier version's rows are superseded too"
    );
    assert_eq!(store.restore(0).await.unwrap().debtors, late);

    // A former owner's flush landing late, written before the sweep began: deleted as it lands.
    store
        .write(&flush(&engine, &early, None), 3500)
        .await
        .unwrap();
    assert_eq!(
        count(&session, chunks).await,
        after_end,
        "the late chunks fall under the sweep's deletion"
    );
    assert_eq!(store.restore(0).await.unwrap().debtors, late);

    // A sweep that ends on a store that did not see it start deletes nothing.
    let other = Store::connect(&cfg).await.expect("another store");
    other
        .write(
            &flush(
                &engine,
                &late[..1],
                Some(SweepMark {
                    id: 42,
                    ..mark(false, true, 1)
                }),
            ),
            6000,
        )
        .await
        .unwrap();
    assert_eq!(store.restore(0).await.unwrap().debtors, late);
}
