//! The real CQL database is there and usable from Rust: a keyspace and table, writes and reads through prepared
//! statements with the `scylla` driver.

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::servers as utils;

async fn session() -> Session {
    SessionBuilder::new()
        .known_nodes(utils::cql_nodes())
        .build()
        .await
        .expect("CQL session")
}

#[tokio::test]
async fn prepared_writes_and_reads_round_trip() {
    let s = session().await;
    let ks = utils::unique("mora_test");
    s.query_unpaged(
        format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        &[],
    )
    .await
    .expect("create keyspace");
    s.query_unpaged(
        format!("CREATE TABLE {ks}.debtors (bucket int, debtor_id text, dpd int, outstanding decimal, PRIMARY KEY (bucket, debtor_id))"),
        &[],
    )
    .await
    .expect("create table");
    let insert = s
        .prepare(format!(
            "INSERT INTO {ks}.debtors (bucket, debtor_id, dpd, outstanding) VALUES (?, ?, ?, ?)"
        ))
        .await
        .expect("prepare insert");
    for i in 0..20i32 {
        let amount = scylla::value::CqlDecimal::from_signed_be_bytes_slice_and_exponent(
            &(i * 1250).to_be_bytes(),
            2,
        );
        s.execute_unpaged(&insert, (i % 4, format!("D{i:03}"), i * 3, amount))
            .await
            .expect("insert");
    }
    let select = s
        .prepare(format!(
            "SELECT debtor_id, dpd FROM {ks}.debtors WHERE bucket = ?"
        ))
        .await
        .expect("prepare select");
    let rows: Vec<(String, i32)> = s
        .execute_unpaged(&select, (1i32,))
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows")
        .rows::<(String, i32)>()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("deserialize");
    assert_eq!(
        rows,
        vec![
            ("D001".into(), 3),
            ("D005".into(), 15),
            ("D009".into(), 27),
            ("D013".into(), 39),
            ("D017".into(), 51)
        ]
    );
    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .expect("drop keyspace");
}

#[tokio::test]
async fn the_server_speaks_cql_v4_or_later() {
    let s = session().await;
    let (version,): (String,) = s
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await
        .expect("query")
        .into_rows_result()
        .expect("rows")
        .single_row::<(String,)>()
        .expect("one row");
    assert!(!version.is_empty());
}
