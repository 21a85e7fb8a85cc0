//! Engine parts on their own: a debtor's state encoded and decoded for the state store, a work queue
//! re-prioritised (a debtor's priority changing inside a queue of 1 000 000), and the summary a partition of
//! 100 000 debtors publishes for other instances (taken on the engine thread every `state.summary_interval`).
//!
//! `cargo bench -p mora-benches --bench parts`

// criterion's macros generate the undocumented functions of a bench target.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mora_benches::{shipped_engine, synthetic_portfolio};
use mora_domain::queues::QueueBook;
use mora_runtime::durable::codec;

/// The engine's allocator (as in the `mora` binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn state_codec(c: &mut Criterion) {
    let engine = Arc::new(shipped_engine());
    let mut w = synthetic_portfolio(&engine, 1_000);
    w.advance_to(
        mora_domain::testkit::ts("2026-06-01T00:00:00Z"),
        &mut mora_benches::NullSink,
    );
    // A typical debtor (a profile and one obligation, nothing in collection) and the busiest one (past due, with
    // contact marks and issued fingerprints).
    let typical = w
        .debtors()
        .find(|d| d.derived.dpd == 0 && d.cold() == &mora_domain::debtor::Cold::EMPTY)
        .expect("a current debtor")
        .clone();
    let busiest = w
        .debtors()
        .max_by_key(|d| d.obligations.len() + d.cold().contacts.len())
        .expect("a debtor")
        .clone();
    let mut g = c.benchmark_group("mora_runtime::durable::codec");
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(3));
    for (name, d) in [("typical", &typical), ("busiest", &busiest)] {
        let current = codec::encode(d).expect("encodes");
        let format_2 = codec::encode_format_2(d).expect("encodes");
        eprintln!(
            "{name} debtor {}: format {} {} bytes, format 2 {} bytes",
            d.id,
            codec::FORMAT,
            current.len(),
            format_2.len()
        );
        let mut buf = Vec::with_capacity(512);
        g.bench_function(format!("encode_{name}_debtor"), |b| {
            b.iter(|| {
                buf.clear();
                codec::encode_into(d, &mut buf);
                buf.len()
            })
        });
        g.bench_function(format!("decode_{name}_debtor"), |b| {
            b.iter(|| codec::decode(&d.id, codec::FORMAT, &current))
        });
        g.bench_function(format!("encode_{name}_debtor_format_2"), |b| {
            b.iter(|| codec::encode_format_2(d))
        });
        g.bench_function(format!("decode_{name}_debtor_format_2"), |b| {
            b.iter(|| codec::decode(&d.id, 2, &format_2))
        });
    }
    g.finish();
}

fn queue_update(c: &mut Criterion) {
    let engine = shipped_engine();
    let mut book: QueueBook<u32> = QueueBook::new(&engine.queues);
    let n = 1_000_000u32;
    let mask = 1u32; // the first queue
    let prio =
        |slot: u32, round: u32| i64::from((slot.wrapping_mul(2_654_435_761) ^ round) % 100_000);
    let mut current: Vec<i64> = (0..n).map(|s| prio(s, 0)).collect();
    for slot in 0..n {
        book.update(&slot, (0, 0), (mask, current[slot as usize]));
    }
    let mut g = c.benchmark_group("mora_domain::queues::QueueBook::update");
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(3));
    let mut round = 0u32;
    let mut slot = 0u32;
    g.bench_function("reprioritise_in_queue_of_1000000", |b| {
        b.iter_batched(
            || {
                slot = (slot + 7919) % n;
                round += 1;
                let new = prio(slot, round);
                let old = std::mem::replace(&mut current[slot as usize], new);
                (slot, old, new)
            },
            |(s, old, new)| book.update(&s, (mask, old), (mask, new)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    eprintln!("queue holds {} debtors after {round} moves", book.len(0));
}

fn partition_summary(c: &mut Criterion) {
    let engine = Arc::new(shipped_engine());
    let mut w = synthetic_portfolio(&engine, 100_000);
    w.advance_to(
        mora_domain::testkit::ts("2026-06-01T00:00:00Z"),
        &mut mora_benches::NullSink,
    );
    let s = w.summary(1000);
    let bytes = codec::encode_summary(&s).expect("encodes");
    eprintln!(
        "summary of {} debtors: {} bytes encoded",
        w.len(),
        bytes.len()
    );
    let mut g = c.benchmark_group("mora_runtime::PartitionWorker::summary");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.bench_function("take_and_encode_100000_debtors_depth_1000", |b| {
        b.iter(|| codec::encode_summary(&w.summary(1000)))
    });
    g.bench_function("portfolio_100000_debtors", |b| b.iter(|| w.portfolio()));
    g.bench_function("kpis_100000_debtors", |b| b.iter(|| w.kpis(30)));
    g.finish();
}

criterion_group!(benches, state_codec, queue_update, partition_summary);
criterion_main!(benches);
