//! Building a state flush, the part of the state store's work that runs on the engine thread while input waits:
//! the changed debtors encoded, the sweep's share encoded, the KPI days, and now and then the partition's summary.
//!
//! A simulated portfolio of one partition (default 200 000 debtors) is warmed with its first 45 days of events;
//! its next 30 days are applied in slices of `MORA_FLUSH_EVENTS` records (default 10 000, about what a partition
//! of the end-to-end run takes between two flushes), and after each slice a flush is built the way the Kafka
//! pipeline builds one with the default settings (rows without membership views, the sweep on, one summary every
//! fifth flush). Only the build is timed.
//!
//! Printed: flushes, rows changed and swept, nanoseconds per row, the summary's milliseconds, and each build's
//! milliseconds (median, 90th percentile, maximum). The work is the same from run to run; figures are printed,
//! never asserted.
//!
//! `cargo bench -p mora-benches --bench flush` (`MORA_FLUSH_DEBTORS`, `MORA_FLUSH_EVENTS`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_benches::{NullSink, env_or, record, shipped_engine, warmed};
use mora_runtime::{PartitionFlush, Sweep};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A flush takes the partition's summary every this many flushes (5 s of summary interval, 1 s of flush interval).
const SUMMARY_EVERY: usize = 5;
/// Work-queue entries per queue in a summary (the default `state.summary_queue_depth`).
const SUMMARY_DEPTH: usize = 1000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let debtors: u64 = env_or("MORA_FLUSH_DEBTORS", 200_000);
    let slice: usize = env_or("MORA_FLUSH_EVENTS", 10_000).max(1);
    let engine = Arc::new(shipped_engine());
    let started = Instant::now();
    let log = record(&engine, debtors, 45, 30);
    let mut w = warmed(&engine, &log.warm);
    // The warm-up's changes are the restore's business, not a flush's: start from a clean slate.
    drop(w.take_changed());
    let _ = w.take_kpi_days();
    eprintln!(
        "flush: {} debtors warmed in {:.1} s; {} records to apply in slices of {slice}",
        w.len(),
        started.elapsed().as_secs_f64(),
        log.measured.len()
    );

    let mut sweep = Sweep::default();
    let mut builds = Vec::new();
    let (mut rows_time, mut sweep_time, mut summaries) =
        (Duration::ZERO, Duration::ZERO, Vec::new());
    let (mut rows, mut swept) = (0usize, 0usize);
    for (i, records) in log.measured.chunks(slice).enumerate() {
        for ev in records {
            let _ = w.on_event(ev, &mut NullSink);
        }
        let building = Instant::now();
        let mut f = PartitionFlush::default();
        f.add_changed(&engine, w.take_changed(), false)
            .expect("encodes");
        let changed = f.rows.len();
        let encoded = building.elapsed();
        f.add_sweep(&w, &mut sweep, changed).expect("encodes");
        let swept_at = building.elapsed();
        let summary_at = Instant::now();
        f.add_aggregates(&mut w, (i % SUMMARY_EVERY == 0).then_some(SUMMARY_DEPTH))
            .expect("encodes");
        if i % SUMMARY_EVERY == 0 {
            summaries.push(summary_at.elapsed());
        }
        builds.push(building.elapsed());
        rows_time += encoded;
        sweep_time += swept_at - encoded;
        rows += changed;
        swept += f.rows.len() - changed;
        std::hint::black_box(&f);
    }
    builds.sort_unstable();
    summaries.sort_unstable();
    let total: Duration = builds.iter().sum();
    println!(
        "flush/build {debtors} debtors, {} flushes of {slice} records: {rows} rows changed at {:.0} ns each, {swept} swept at {:.0} ns each; summary p50 {:.2} ms; build p50 {:.2} / p90 {:.2} / max {:.2} ms; total {:.0} ms",
        builds.len(),
        rows_time.as_nanos() as f64 / rows.max(1) as f64,
        sweep_time.as_nanos() as f64 / swept.max(1) as f64,
        ms(quantile(&summaries, 0.5)),
        ms(quantile(&builds, 0.5)),
        ms(quantile(&builds, 0.9)),
        ms(quantile(&builds, 1.0)),
        ms(total),
    );
}
