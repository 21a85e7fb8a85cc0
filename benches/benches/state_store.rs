//! The state store on the real database: write rate of coalesced flushes and restore rate of one Kafka partition.
//!
//! Needs the database: `deploy/services.sh up`, then
//! `cargo bench -p mora-benches --bench state_store` (`MORA_BENCH_RESTORE_DEBTORS`, default 1 000 000;
//! `MORA_CQL_NODES`, default 127.0.0.1:9042; `MORA_BENCH_BATCH_BYTES`, `MORA_BENCH_CONCURRENCY` and
//! `MORA_BENCH_PAGE_ROWS` override `state.batch_bytes`, `state.concurrency` and `state.restore_page_rows`). Figures are printed, never asserted.
//!
//! The stored debtors are realistic states (a simulated portfolio run through the engine for 60 days), copied
//! under new ids up to the requested count, so the rows have production-like sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_connector_scylla::{ConsistencyLevel, StateConfig, Store, migrate};
use mora_domain::debtor::Debtor;
use mora_runtime::{Checkpoint, CollectingSink, Operator, PartitionFlush, PartitionWorker};
use mora_sim::{PartitionSim, SimConfig, SimRecord};

/// The engine's allocator (as in the `mora` binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn templates() -> (Vec<Debtor>, Arc<mora_domain::engine::Engine>) {
    let engine = Arc::new(
        mora::config::load(None)
            .expect("built-in configuration")
            .engine,
    );
    let cfg = SimConfig {
        debtors: 2_000,
        days: 60,
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
    (w.debtors().cloned().collect(), engine)
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let n: usize = std::env::var("MORA_BENCH_RESTORE_DEBTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let nodes: Vec<String> = std::env::var("MORA_CQL_NODES")
        .unwrap_or_else(|_| "127.0.0.1:9042".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let (templates, engine) = templates();
    let mut cfg = StateConfig::new(nodes);
    cfg.keyspace = format!(
        "bench_state_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    cfg.consistency = ConsistencyLevel::One;
    cfg.concurrency = std::env::var("MORA_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    if let Some(rows) = std::env::var("MORA_BENCH_PAGE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.restore_page_rows = rows;
    }
    if let Some(b) = std::env::var("MORA_BENCH_BATCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.batch_bytes = b;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        migrate(&cfg)
            .await
            .expect("migrate (is the database up? deploy/services.sh up)");
        let store = Arc::new(Store::connect(&cfg).await.expect("connect"));
        let mut bytes = 0usize;
        let started = Instant::now();
        let mut written = 0usize;
        let mut requests = 0u64;
        let chunk = 20_000;
        while written < n {
            let mut f = PartitionFlush {
                partition: 0,
                checkpoint: Arc::new(Checkpoint::default()),
                ..PartitionFlush::default()
            };
            for i in written..(written + chunk).min(n) {
                let mut d = templates[i % templates.len()].clone();
                d.id = compact_str::format_compact!("B{i:09}");
                f.add(&engine, &d, None).expect("encode");
                bytes += f.rows.last().map_or(0, |r| r.state.len());
            }
            // Only the state rows: membership views are written once per change, not per flush.
            f.views.clear();
            // Each flush its own write time, as the engine's are (they key its chunks in the debtor log).
            let write_time = 1 + (written / chunk) as i64;
            requests += store.write(&f, write_time).await.expect("write").requests;
            written += f.rows.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "state_store/write   {n} debtor states in {secs:.1} s: {:.0} states/s (mean state {} bytes, {requests} requests: {:.1} states per request, chunks and batches up to {} bytes, concurrency {})",
            n as f64 / secs,
            bytes / n.max(1),
            n as f64 / requests.max(1) as f64,
            cfg.batch_bytes,
            cfg.concurrency
        );
        // Let compaction of the freshly written table settle a little before reading.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for round in 1..=3 {
            let started = Instant::now();
            let r = store.restore(0).await.expect("restore");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(r.debtors.len(), n);
            println!(
                "state_store/restore round {round}: {n} debtors of one partition in {secs:.1} s: {:.0} debtors/s ({} shards read in parallel, pages of {} rows)",
                n as f64 / secs,
                store.shards(),
                cfg.restore_page_rows
            );
        }
    });
}
