//! Advancing time: the cost of a clock step is proportional to the timers that fall due, not to the portfolio.
//!
//! A synthetic portfolio (each debtor one obligation due on one of 1 000 days, across Bogotá, Mexico City, Santiago
//! and New York) is built at 100 000 and 1 000 000 debtors; each measured step moves the partition clock to the
//! instant of the 1 000th pending timer (0.1 % of the larger portfolio), firing those timers and the others due at
//! that same instant (steps fire at the same local hour for every debtor with the same due date and zone). The
//! figures to compare are the time per step and per timer fired: if advancing time scanned the portfolio, the
//! 1 M portfolio would cost ~10× the 100 k one.
//!
//! `cargo bench -p mora-benches --bench timers`

// criterion's macros generate the undocumented functions of a bench target.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mora_benches::{shipped_engine, synthetic_portfolio};

/// The engine's allocator (as in the `mora` binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Timers fired per step: 0.1 % of a million.
const DUE_PER_STEP: usize = 1_000;

fn advance(c: &mut Criterion) {
    let engine = Arc::new(shipped_engine());
    let mut g = c.benchmark_group("mora_runtime::PartitionWorker::advance_to");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for debtors in [100_000usize, 1_000_000] {
        let started = Instant::now();
        let mut w = synthetic_portfolio(&engine, debtors);
        eprintln!(
            "portfolio: {} debtors, {} timers pending, built in {:.1}s",
            w.len(),
            w.pending_timers(),
            started.elapsed().as_secs_f64()
        );
        let wakes_before = w.stats().wakes;
        let mut steps = 0u64;
        let mut total = Duration::ZERO;
        g.bench_function(format!("step_firing_{DUE_PER_STEP}_of_{debtors}"), |b| {
            b.iter_custom(|iters| {
                let mut sink = mora_benches::NullSink;
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let Some(to) = w.nth_timer(DUE_PER_STEP - 1) else {
                        panic!("the portfolio ran out of timers; build a larger one");
                    };
                    let t0 = Instant::now();
                    w.advance_to(to, &mut sink);
                    spent += t0.elapsed();
                    steps += 1;
                }
                total += spent;
                spent
            });
        });
        let fired = w.stats().wakes - wakes_before;
        eprintln!(
            "{debtors} debtors: {steps} steps fired {fired} timers ({:.0} per step, {:.2} µs per timer); clock now {}",
            fired as f64 / steps.max(1) as f64,
            total.as_secs_f64() * 1e6 / fired.max(1) as f64,
            w.clock()
        );
    }
    g.finish();
}

criterion_group!(benches, advance);
criterion_main!(benches);
