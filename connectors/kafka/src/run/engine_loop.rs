//! One engine thread's loop: poll, apply, commit every interval; stop on request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{info, warn};

use crate::client;
use crate::config::KafkaConfig;
use crate::context::EngineContext;
use crate::error::PipelineError;
use crate::pipeline::Pipeline;
use crate::stats::RunStats;

/// Records taken from the client per loop iteration at most.
const POLL_BATCH: usize = 1000;

fn lock(p: &Mutex<Pipeline>) -> Result<std::sync::MutexGuard<'_, Pipeline>, PipelineError> {
    p.lock()
        .map_err(|_| PipelineError::Thread("pipeline state poisoned by a panic".into()))
}

pub(super) fn run_loop(
    cfg: KafkaConfig,
    pipeline: Arc<Mutex<Pipeline>>,
    stop: &AtomicBool,
    shared: &Mutex<RunStats>,
) -> Result<RunStats, PipelineError> {
    let interval = cfg.commit_interval;
    let inputs = cfg.topics.inputs();
    let failure = Arc::new(Mutex::new(None));
    let ends = crate::ends::EndOffsets::default();
    let ctx = EngineContext {
        pipeline: pipeline.clone(),
        failure: failure.clone(),
        ends: ends.clone(),
    };
    let consumer: BaseConsumer<EngineContext> = client::consumer(&cfg).create_with_context(ctx)?;
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let mut ticker = crate::clock::Ticker::new(&cfg, crate::clock::system_time)?;
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Some(t) = ticker.as_mut() {
            let owned = lock(&pipeline)?.stats.assigned.clone();
            t.tick(&owned)?;
        }
        // Take what the client has queued (up to a batch) before applying: ordering across topics needs the
        // records of every topic at hand, and draining once per batch keeps the per-record cost low.
        let mut timeout = Duration::from_millis(20);
        for _ in 0..POLL_BATCH {
            match consumer.poll(timeout) {
                Some(Ok(msg)) => lock(&pipeline)?.enqueue(&msg),
                Some(Err(e)) => warn!(error = %e, "Consumer error; retrying."),
                None => break,
            }
            timeout = Duration::ZERO;
        }
        lock(&pipeline)?.poll_producer();
        {
            let mut p = lock(&pipeline)?;
            p.drain(&ends)?;
            p.bound_buffers(&consumer)?;
            p.pace_state(&consumer)?;
        }
        if let Some(f) = failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(f);
        }
        if last_commit.elapsed() >= interval {
            let mut p = lock(&pipeline)?;
            p.commit(&consumer)?;
            p.flush_state(false)?;
            let debtors = p.workers().map(|w| w.len() as u64).sum();
            p.stats.debtors = debtors;
            p.stats.buffered = p.buffered() as u64;
            p.export_gauges(&ends);
            p.stats.clock_records_written = ticker.as_ref().map_or(0, |t| t.written);
            if let Ok(mut s) = shared.lock() {
                *s = p.stats.clone();
            }
            last_commit = Instant::now();
        }
    }
    if let Some(t) = &ticker {
        t.flush();
        lock(&pipeline)?.stats.clock_records_written = t.written;
    }
    info!("Stopping: committing and leaving the group.");
    lock(&pipeline)?.commit(&consumer)?;
    consumer.unsubscribe();
    // Serve the revoke callback that leaving triggers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let stats = lock(&pipeline)?.stats.clone();
    if let Ok(mut s) = shared.lock() {
        *s = stats.clone();
    }
    Ok(stats)
}
