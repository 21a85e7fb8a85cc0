//! Memory per debtor in the engine: a partition worker holding N debtors, each with a profile and an obligation
//! falling due over the next 1 000 days (a tenth already past due by the measuring date, with their contacts,
//! timers and queue entries), built from events that are not kept. Each size runs in a fresh process of its own so
//! that one size's freed memory does not hide the next one's.
//!
//! `cargo bench -p mora-benches --bench memory` (sizes: `MORA_MEMORY_DEBTORS=1000000,10000000`, the default).
//! Figures are printed, never asserted.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use mora_benches::{NullSink, process_memory, resident_bytes, shipped_engine, synthetic_portfolio};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(clippy::print_stdout)] // a benchmark prints its figures
fn measure(n: usize) {
    let engine = Arc::new(shipped_engine());
    let rss_before = resident_bytes().unwrap_or(0);
    let heap_before = mora_benches::heap_allocated().unwrap_or(0);
    let started = Instant::now();
    let mut w = synthetic_portfolio(&engine, n);
    w.advance_to(
        mora_domain::testkit::ts("2026-06-01T00:00:00Z"),
        &mut NullSink,
    );
    let heap_after = mora_benches::heap_allocated().unwrap_or(0);
    let rss_after = resident_bytes().unwrap_or(0);
    let live = heap_after as i64 - heap_before as i64;
    let past_due = w.debtors().filter(|d| d.derived.dpd > 0).count();
    println!(
        "{{\"debtors\": {}, \"past_due\": {past_due}, \"timers\": {}, \"resident_bytes_per_debtor\": {:.0}, \
         \"live_heap_bytes_per_debtor\": {:.0}, \"peak_resident_mib\": {:.0}, \"build_seconds\": {:.1}}}",
        w.len(),
        w.pending_timers(),
        rss_after.saturating_sub(rss_before) as f64 / n as f64,
        live as f64 / n as f64,
        process_memory("self", "VmHWM").unwrap_or(0) as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    std::hint::black_box(&w);
}

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` runs bench targets in test mode: the 10 M portfolio is not a test
    }
    if let Some(n) = args
        .iter()
        .position(|a| a == "--one")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
    {
        measure(n);
        return;
    }
    let sizes = std::env::var("MORA_MEMORY_DEBTORS").unwrap_or_else(|_| "1000000,10000000".into());
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let out = Command::new(&args[0])
            .args(["--one", &n.to_string()])
            .output()
            .expect("the benchmark runs itself once per size");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!(
                "{{\"debtors\": {n}, \"error\": {:?}}}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            );
        }
    }
}
