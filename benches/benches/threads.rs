//! The embedded engine on several threads, as `mora run`'s engine threads share an instance's partitions: a
//! simulated portfolio of P partitions (default 8), each warmed with its first 45 days of events, then its next 30
//! days' events, Avro-encoded as they come from Kafka, decoded and decided by T threads (1, 2 and 4 by default),
//! thread k owning the partitions p with p mod T = k. No broker and no database: this is the engine's own cost.
//!
//! Printed per run, one JSON line: events/s of the whole run, and per thread its events, the CPU seconds it used
//! (from the kernel's per-thread accounting) and its events per CPU second. The last figure is what projects to a
//! larger node: an instance of T threads on T free cores decides about T times that, for as long as memory
//! bandwidth keeps up. On a machine with fewer cores than threads the threads share them, and the whole run's
//! events/s stops growing while the events per CPU second stay what they are.
//!
//! `cargo bench -p mora-benches --bench threads` (`MORA_THREADS=1,2,4`, `MORA_THREADS_DEBTORS` = debtors of the
//! whole portfolio, default 400 000; `MORA_THREADS_PARTITIONS`, default 8). Figures are printed, never asserted.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mora_benches::{NullSink, Workload, env_or, record_partition, shipped_engine};
use mora_domain::engine::Engine;
use mora_runtime::{InputRecord, Operator, PREPARE_AHEAD, PartitionWorker};
use mora_schemas::{Family, Wire, encode_event, family_of};
use mora_sim::SimConfig;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Days of each partition's log that build its state before the measured part.
const WARM_DAYS: u32 = 45;
/// Days of each partition's log that are measured.
const MEASURED_DAYS: u32 = 30;
/// Records a thread takes from one partition before moving to its next (as a poll returns a batch).
const BATCH: usize = 500;

/// One encoded input record of a partition's measured log.
struct Encoded {
    family: Family,
    topic: &'static str,
    key: Vec<u8>,
    payload: Vec<u8>,
}

/// A partition's log: events that warm it, and the measured part as bytes.
struct PartitionLog {
    partition: i32,
    warm: Workload,
    measured: Vec<Encoded>,
}

fn topic(f: Family) -> &'static str {
    match f {
        Family::Account => "bench.in.account",
        Family::Obligation => "bench.in.obligation",
        Family::Payment => "bench.in.payment",
        Family::Promise => "bench.in.promise",
        Family::Dispute => "bench.in.dispute",
        Family::ContactOutcome => "bench.in.contact_outcome",
        Family::Clock => "bench.in.clock",
    }
}

fn record_logs(engine: &Arc<Engine>, debtors: u64, partitions: u32) -> Vec<PartitionLog> {
    let cfg = SimConfig {
        debtors,
        days: WARM_DAYS + MEASURED_DAYS,
        partitions,
        poison_rate: 0.0,
        ..SimConfig::default()
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..partitions)
            .map(|p| {
                let (engine, cfg) = (engine.clone(), &cfg);
                s.spawn(move || {
                    let mut w = record_partition(&engine, cfg, p, WARM_DAYS);
                    let measured = std::mem::take(&mut w.measured)
                        .iter()
                        .map(|ev| {
                            let family = family_of(&ev.kind).0;
                            Encoded {
                                family,
                                topic: topic(family),
                                key: ev.debtor_id.as_bytes().to_vec(),
                                payload: encode_event(ev, Wire::Confluent).expect("encodes"),
                            }
                        })
                        .collect();
                    PartitionLog {
                        partition: p as i32,
                        warm: w,
                        measured,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("recording thread"))
            .collect()
    })
}

/// CPU time this thread has run, from the kernel's scheduler statistics (Linux).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// What one engine thread did in the measured part.
struct ThreadRun {
    events: usize,
    cpu: Duration,
    wall: Duration,
}

/// Thread `k` of `threads`: warms its partitions (untimed), waits for the others, then decides its partitions'
/// measured logs, a batch of each partition in turn.
fn engine_thread(
    engine: &Arc<Engine>,
    logs: &[PartitionLog],
    k: usize,
    threads: usize,
    start: &Barrier,
) -> ThreadRun {
    let mine: Vec<&PartitionLog> = logs
        .iter()
        .filter(|l| l.partition as usize % threads == k)
        .collect();
    let mut workers: Vec<PartitionWorker> = mine
        .iter()
        .map(|l| {
            let mut w = PartitionWorker::new(l.partition, engine.clone());
            for ev in &l.warm.warm {
                let _ = w.on_event(ev, &mut NullSink);
            }
            w
        })
        .collect();
    start.wait();
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let mut cursors = vec![0usize; mine.len()];
    let mut events = 0;
    loop {
        let mut progressed = false;
        for (i, log) in mine.iter().enumerate() {
            let end = (cursors[i] + BATCH).min(log.measured.len());
            for (offset, e) in log.measured[cursors[i]..end].iter().enumerate() {
                if offset % PREPARE_AHEAD == 0 {
                    // As the Kafka pipeline does: the next few records' debtors are loaded together.
                    let mut keys: [&[u8]; PREPARE_AHEAD] = [&[]; PREPARE_AHEAD];
                    let next = &log.measured[cursors[i] + offset..end];
                    let n = keys.iter_mut().zip(next).map(|(k, e)| *k = &e.key).count();
                    workers[i].prepare(&keys[..n]);
                }
                let rec = InputRecord {
                    family: e.family,
                    topic: e.topic,
                    partition: log.partition,
                    offset: (cursors[i] + offset) as i64,
                    key: Some(&e.key),
                    payload: &e.payload,
                    writer: None,
                };
                workers[i].process(&rec, &mut NullSink);
            }
            events += end - cursors[i];
            progressed |= end > cursors[i];
            cursors[i] = end;
        }
        if !progressed {
            break;
        }
    }
    let run = ThreadRun {
        events,
        cpu: thread_cpu().saturating_sub(cpu0),
        wall: t0.elapsed(),
    };
    std::hint::black_box(&workers);
    run
}

#[allow(clippy::print_stdout)] // a benchmark prints its figures
fn main() {
    let debtors: u64 = env_or("MORA_THREADS_DEBTORS", 400_000);
    let partitions: u32 = env_or("MORA_THREADS_PARTITIONS", 8);
    let counts: Vec<usize> = std::env::var("MORA_THREADS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .filter(|t| *t > 0)
        .collect();
    let engine = Arc::new(shipped_engine());
    let started = Instant::now();
    let logs = record_logs(&engine, debtors, partitions);
    let measured: usize = logs.iter().map(|l| l.measured.len()).sum();
    eprintln!(
        "recorded {partitions} partitions, {} debtors, {measured} measured events in {:.1}s; {} cores available",
        logs.iter().map(|l| l.warm.debtors).sum::<usize>(),
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for threads in counts {
        let start = Barrier::new(threads);
        let runs: Vec<ThreadRun> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let (engine, logs, start) = (&engine, &logs, &start);
                    s.spawn(move || engine_thread(engine, logs, k, threads, start))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("engine thread"))
                .collect()
        });
        let wall = runs.iter().map(|r| r.wall).max().unwrap_or_default();
        let events: usize = runs.iter().map(|r| r.events).sum();
        let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
        let per_thread: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{{\"events\": {}, \"cpu_seconds\": {:.2}, \"wall_seconds\": {:.2}, \"events_per_cpu_second\": {:.0}}}",
                    r.events,
                    r.cpu.as_secs_f64(),
                    r.wall.as_secs_f64(),
                    r.events as f64 / r.cpu.as_secs_f64().max(1e-9)
                )
            })
            .collect();
        println!(
            "{{\"threads\": {threads}, \"partitions\": {partitions}, \"events\": {events}, \"wall_seconds\": {:.2}, \
             \"events_per_second\": {:.0}, \"cpu_seconds\": {:.2}, \"events_per_cpu_second\": {:.0}, \
             \"per_thread\": [{}]}}",
            wall.as_secs_f64(),
            events as f64 / wall.as_secs_f64().max(1e-9),
            cpu.as_secs_f64(),
            events as f64 / cpu.as_secs_f64().max(1e-9),
            per_thread.join(", ")
        );
    }
}
