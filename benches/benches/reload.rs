//! A live configuration reload: every debtor of a partition re-segmented and re-prioritised with the new
//! configuration and the work queues rebuilt (what `POST /v1/admin/reload` does while the engine waits).
//!
//! `cargo bench -p mora-benches --bench reload` (`MORA_BENCH_DEBTORS`, default 1 000 000). Goal to report against:
//! under 1 s for 1 M debtors.

// criterion's macros generate the undocumented functions of a bench target.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mora_benches::{shipped_engine, synthetic_portfolio};

/// The engine's allocator (as in the `mora` binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn reload(c: &mut Criterion) {
    let debtors = std::env::var("MORA_BENCH_DEBTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let engine = Arc::new(shipped_engine());
    let started = Instant::now();
    let mut w = synthetic_portfolio(&engine, debtors);
    // Move time on so debtors are spread over buckets, stages and queues, as a live portfolio is.
    w.advance_to(
        mora_domain::testkit::ts("2026-09-01T00:00:00Z"),
        &mut mora_benches::NullSink,
    );
    eprintln!(
        "portfolio: {} debtors in {:.1}s; dialer queue {}",
        w.len(),
        started.elapsed().as_secs_f64(),
        w.queue_len("dialer")
    );
    // Alternate between two configurations so every reload changes something real.
    let candidate = Arc::new({
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config");
        let mut cfg: mora_domain::engine::EngineConfig = toml::from_str(
            &std::fs::read_to_string(format!("{root}/candidate-decisions.toml")).expect("file"),
        )
        .expect("candidate parses");
        cfg.priority.dpd *= 2.0;
        let policies = engine.policies.clone();
        let mut e = shipped_engine();
        let compiled = mora_domain::engine::Engine::new(&cfg, &[], &[]).expect("valid");
        e.segmentation = compiled.segmentation;
        e.priority = compiled.priority;
        e.queues = compiled.queues;
        e.strategies = compiled.strategies;
        e.policies = policies;
        e
    });
    let configs = [engine.clone(), candidate];
    let mut g = c.benchmark_group("mora_runtime::PartitionWorker::set_engine");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10));
    let mut i = 0usize;
    let mut changed = 0usize;
    g.bench_function(format!("reload_{debtors}_debtors"), |b| {
        b.iter(|| {
            i += 1;
            changed = w.set_engine(configs[i % 2].clone());
        })
    });
    g.finish();
    eprintln!("last reload changed {changed} of {} debtors", w.len());
}

criterion_group!(benches, reload);
criterion_main!(benches);
