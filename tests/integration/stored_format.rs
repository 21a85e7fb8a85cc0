//! Rows the state store holds in an earlier format (one row per debtor, as versions before the debtor log wrote
//! them) are restored, and written in the current format to the debtor log on their next flush, against the real
//! CQL database.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mora_connector_scylla::{ConsistencyLevel, StateConfig, Store, migrate, shard_of};
use mora_runtime::durable::codec;
use mora_runtime::durable::{Checkpoint, PartitionFlush};
use scylla::client::session_builder::SessionBuilder;

use crate::servers as utils;

/// The bytes an earlier format wrote for one debtor (the runtime's stored-format fixtures).
fn earlier_state(format: i16, debtor: &str) -> Vec<u8> {
    let path = format!(
        "{}/../engine/runtime/tests/fixtures/state-format-{format}-{debtor}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn a_row_in_the_messagepack_format_is_restored_and_rewritten_in_the_current_one() {
    restored_and_rewritten(1).await;
}

#[tokio::test]
async fn a_row_in_the_postcard_format_is_restored_and_rewritten_in_the_current_one() {
    restored_and_rewritten(2).await;
}

async fn restored_and_rewritten(format: i16) {
    assert_ne!(format, codec::FORMAT, "an earlier format");
    let mut cfg = StateConfig::new(utils::cql_nodes());
    cfg.keyspace = utils::unique("mora_fmt");
    cfg.consistency = ConsistencyLevel::One;
    cfg.shards = 4;
    migrate(&cfg).await.expect("keyspace migrated");
    let session = SessionBuilder::new()
        .known_nodes(utils::cql_nodes())
        .build()
        .await
        .expect("CQL session");
    let id = "D-2";
    let old = earlier_state(format, id);
    let expected = codec::decode(id, format, &old).expect("the fixture is in its format");
    let shard = shard_of(id, cfg.shards);
    session
        .query_unpaged(
            format!(
                "INSERT INTO {}.debtor_state (kafka_partition, shard, debtor_id, format, state) VALUES (0, ?, ?, ?, ?)",
                cfg.keyspace
            ),
            (shard, id, format, old),
        )
        .await
        .expect("a row in the earlier format written");
    let store = Arc::new(Store::connect(&cfg).await.expect("store"));
    let restored = store.restore(0).await.expect("restore");
    assert_eq!(
        restored.debtors,
        vec![expected.clone()],
        "restored as it was"
    );
    assert_eq!(format_of(&session, &cfg.keyspace, shard).await, None);

    let engine = Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    );
    let mut flush = PartitionFlush {
        partition: 0,
        checkpoint: Arc::new(Checkpoint::default()),
        ..PartitionFlush::default()
    };
    flush.add(&engine, &expected, None).expect("encodes");
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    store.write(&flush, micros).await.expect("flush written");
    assert_eq!(
        format_of(&session, &cfg.keyspace, shard).await,
        Some(codec::FORMAT),
        "rewritten in the current format, to the debtor log"
    );
    assert_eq!(
        store.debtor(0, id).await.expect("read back"),
        Some(expected),
        "and read back the same"
    );
}

/// The `format` of the debtor log's one chunk in `shard`, if it has one.
async fn format_of(
    session: &scylla::client::session::Session,
    keyspace: &str,
    shard: i16,
) -> Option<i16> {
    let q =
        format!("SELECT format FROM {keyspace}.debtor_log WHERE kafka_partition = 0 AND shard = ?");
    session
        .query_unpaged(q, (shard,))
        .await
        .expect("read the log")
        .into_rows_result()
        .expect("rows")
        .maybe_first_row::<(Option<i16>,)>()
        .expect("at most one chunk")
        .and_then(|r| r.0)
}
