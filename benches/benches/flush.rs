//! Building a state flush, the part of the state store's work that runs on the engine thread:
//! the changed debtors encoded, the sweep's share encoded, the KPI days, and now and then the partition's summary.
//!
//! A simulated portfolio of one partition (default 200 000 debtors) is warmed with its first 45 days of events;
//! its next 30 days are applied in slices of `MORA_FLUSH_EVENTS` records (default 10 000, about what a partition
//! of the end-to-end run takes between two flushes), and after each slice a flush is made the way the Kafka
//! pipeline makes one with the default settings (rows without membership views, the sweep on, one summary every
//! fifth flush), two ways, each on a portfolio of its own:
//! - `whole`: the flush built at once after the slice, as the pipeline did before flushes were built in slices;
//! - `sliced`: the flush cut after the slice and its rows encoded, then its summary gathered, 2 ms at a time while
//!   the next slice's records are applied (a build step every 250 records, as the engine loop does between polls),
//!   debtors changing before their turn encoded first.
//!
//! Printed for each: flushes, rows changed and swept, the engine thread's time on flushes per row, each pause
//! (a whole build; a cut or a slice) at the median, 90th, 99th percentile and maximum, debtors encoded early, and
//! the records' application time in all (what encoding early adds to it). The work is the same from run to run; figures are printed,
//! never asserted.
//!
//! `cargo bench -p mora-benches --bench flush` (`MORA_FLUSH_DEBTORS`, `MORA_FLUSH_EVENTS`, `MORA_FLUSH_MODE` =
//! `whole`, `sliced` or `both`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mora_benches::{NullSink, Workload, env_or, record, shipped_engine, warmed};
use mora_domain::engine::Engine;
use mora_runtime::{PartitionFlush, PartitionWorker, Sweep};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A flush takes the partition's summary every this many flushes (5 s of summary interval, 1 s of flush interval).
const SUMMARY_EVERY: usize = 5;
/// Work-queue entries per queue in a summary (the default `state.summary_queue_depth`).
const SUMMARY_DEPTH: usize = 1000;
/// The longest a build step runs (the engine loop's slice).
const SLICE: Duration = Duration::from_millis(2);
/// Records applied between two build steps.
const STEP_EVERY: usize = 250;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// What one way of flushing cost.
#[derive(Default)]
struct Figures {
    flushes: usize,
    rows: usize,
    swept: usize,
    /// Each pause of the engine thread for a flush.
    pauses: Vec<Duration>,
    /// Applying the records, build steps excluded.
    applying: Duration,
    early: usize,
}

/// The summary's queue depth when flush `i` carries one (every fifth).
fn summary(i: usize) -> Option<usize> {
    i.is_multiple_of(SUMMARY_EVERY).then_some(SUMMARY_DEPTH)
}

fn whole(engine: &Arc<Engine>, log: &Workload, slice: usize) -> Figures {
    let mut w = warmed(engine, &log.warm);
    drop(w.take_changed());
    let _ = w.take_kpi_days();
    let (mut sweep, mut fig) = (Sweep::default(), Figures::default());
    for (i, records) in log.measured.chunks(slice).enumerate() {
        let applying = Instant::now();
        for ev in records {
            let _ = w.on_event(ev, &mut NullSink);
        }
        fig.applying += applying.elapsed();
        let building = Instant::now();
        let mut f = PartitionFlush::default();
        f.add_aggregates(&mut w, summary(i)).expect("encodes");
        f.add_changed(engine, w.take_changed(), false)
            .expect("encodes");
        let changed = f.rows.len();
        f.add_sweep(&w, &mut sweep, changed).expect("encodes");
        fig.pauses.push(building.elapsed());
        fig.flushes += 1;
        fig.rows += changed;
        fig.swept += f.rows.len() - changed;
        std::hint::black_box(&f);
    }
    fig
}

fn sliced(engine: &Arc<Engine>, log: &Workload, slice: usize) -> Figures {
    let mut w = warmed(engine, &log.warm);
    drop(w.take_changed());
    let _ = w.take_kpi_days();
    let (mut sweep, mut fig) = (Sweep::default(), Figures::default());
    let collect = |f: PartitionFlush, fig: &mut Figures| {
        let swept = f.sweep.map_or(0, |m| m.rows);
        fig.rows += f.rows.len() - swept;
        fig.swept += swept;
        fig.flushes += 1;
        std::hint::black_box(&f);
    };
    let step = |w: &mut PartitionWorker, fig: &mut Figures| {
        // Debtors are encoded early while records are applied: before the last step, the cut's count is final.
        let early = w.flush_encoded_early();
        let started = Instant::now();
        let built = w.build_flush(Some(started + SLICE)).expect("encodes");
        fig.pauses.push(started.elapsed());
        if let Some(f) = built {
            fig.early += early;
            collect(f, fig);
        }
    };
    for (i, records) in log.measured.chunks(slice).enumerate() {
        for (n, ev) in records.iter().enumerate() {
            let applying = Instant::now();
            let _ = w.on_event(ev, &mut NullSink);
            fig.applying += applying.elapsed();
            if n % STEP_EVERY == STEP_EVERY - 1 && w.flush_building() {
                step(&mut w, &mut fig);
            }
        }
        // The last cut's flush is whole before the next is cut, as in the pipeline.
        while w.flush_building() {
            step(&mut w, &mut fig);
        }
        let cutting = Instant::now();
        let mut f = PartitionFlush::default();
        f.add_aggregates(&mut w, None).expect("encodes");
        w.begin_flush(f, Some(&mut sweep), false, summary(i));
        fig.pauses.push(cutting.elapsed());
    }
    while w.flush_building() {
        step(&mut w, &mut fig);
    }
    fig
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn report(way: &str, debtors: u64, slice: usize, mut fig: Figures) {
    fig.pauses.sort_unstable();
    let total: Duration = fig.pauses.iter().sum();
    println!(
        "flush/{way} {debtors} debtors, {} flushes of {slice} records: {} rows changed, {} swept; on flushes {:.0} ns per row, {:.0} ms in all; pauses {}: p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms; {} debtors encoded early; records applied in {:.0} ms",
        fig.flushes,
        fig.rows,
        fig.swept,
        total.as_nanos() as f64 / (fig.rows + fig.swept).max(1) as f64,
        ms(total),
        fig.pauses.len(),
        ms(quantile(&fig.pauses, 0.5)),
        ms(quantile(&fig.pauses, 0.9)),
        ms(quantile(&fig.pauses, 0.99)),
        ms(quantile(&fig.pauses, 1.0)),
        fig.early,
        ms(fig.applying),
    );
}

fn main() {
    let debtors: u64 = env_or("MORA_FLUSH_DEBTORS", 200_000);
    let slice: usize = env_or("MORA_FLUSH_EVENTS", 10_000).max(1);
    let mode = std::env::var("MORA_FLUSH_MODE").unwrap_or_else(|_| "both".into());
    let engine = Arc::new(shipped_engine());
    let started = Instant::now();
    let log = record(&engine, debtors, 45, 30);
    eprintln!(
        "flush: {debtors} debtors, {} records to warm, {} to apply in slices of {slice} ({:.1} s to record)",
        log.warm.len(),
        log.measured.len(),
        started.elapsed().as_secs_f64()
    );
    if mode == "whole" || mode == "both" {
        report("whole", debtors, slice, whole(&engine, &log, slice));
    }
    if mode == "sliced" || mode == "both" {
        report("sliced", debtors, slice, sliced(&engine, &log, slice));
    }
}
