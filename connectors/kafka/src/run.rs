//! The loop of `mora run`, on a dedicated thread: poll, apply, commit every interval; stop on request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mora_domain::engine::Engine;
use mora_runtime::{PartitionWorker, StateStore};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tracing::{info, warn};

use crate::client;
use crate::config::KafkaConfig;
use crate::context::EngineContext;
use crate::error::PipelineError;
use crate::pipeline::Pipeline;
use crate::stats::RunStats;
use crate::topics::check_co_partitioned;

/// A running instance.
pub struct RunHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<RunStats, PipelineError>>>,
    stats: Arc<Mutex<RunStats>>,
    pipeline: Arc<Mutex<Pipeline>>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Read access to a running instance's partitions, and configuration reloads.
#[derive(Clone)]
pub struct InstanceView {
    pipeline: Arc<Mutex<Pipeline>>,
    stats: Arc<Mutex<RunStats>>,
}

impl std::fmt::Debug for InstanceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceView").finish_non_exhaustive()
    }
}

impl InstanceView {
    /// A snapshot of the counters.
    pub fn stats(&self) -> RunStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Runs `f` over the workers of the partitions this instance owns (the engine thread waits meanwhile: keep it
    /// short).
    pub fn with_workers<R>(&self, f: impl FnOnce(&[&PartitionWorker]) -> R) -> R {
        let p = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
        let workers: Vec<&PartitionWorker> = p.workers().collect();
        f(&workers)
    }

    /// The configuration in force.
    pub fn engine(&self) -> Arc<Engine> {
        let p = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
        p.engine()
    }

    /// Swaps in a new configuration, already validated: partitions assigned from now on use it, and every owned
    /// debtor is re-segmented and re-prioritised with it before the next record is applied.
    pub fn reload(&self, engine: Arc<Engine>) -> ReloadReport {
        let started = Instant::now();
        let mut p = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
        let (debtors, changed) = p.set_engine(engine);
        let report = ReloadReport {
            debtors,
            changed,
            millis: started.elapsed().as_secs_f64() * 1e3,
        };
        info!(
            debtors,
            changed,
            millis = report.millis,
            "Configuration reloaded."
        );
        report
    }
}

/// What a configuration reload did.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadReport {
    /// Debtors re-segmented and re-prioritised.
    pub debtors: u64,
    /// Of them, whose segment, priority, queues, stage or bucket changed.
    pub changed: u64,
    /// Time the swap took (the engine thread waits for it), in milliseconds.
    pub millis: f64,
}

impl RunHandle {
    /// A snapshot of the counters (refreshed at every commit).
    pub fn stats(&self) -> RunStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the loop has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Asks the loop to commit, leave the group and end; waits for it.
    pub fn stop(mut self) -> Result<RunStats, PipelineError> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the loop to end by itself (an error, or a stop requested through [`RunHandle::stopper`]).
    pub fn join(&mut self) -> Result<RunStats, PipelineError> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(PipelineError::Thread("the pipeline thread panicked".into()))
            }),
            None => Ok(self.stats()),
        }
    }

    /// The flag that stops the loop (for signal handlers).
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// A cloneable view of the instance for queries and reloads (the HTTP API holds one).
    pub fn view(&self) -> InstanceView {
        InstanceView {
            pipeline: self.pipeline.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// Checks the topics, then starts an engine instance in the consumer group on its own thread; partitions are
/// rebuilt by replaying their input from the beginning.
pub fn run(cfg: KafkaConfig, engine: Arc<Engine>) -> Result<RunHandle, PipelineError> {
    run_with_state(cfg, engine, None)
}

/// As [`run`], with the state kept in a store when `state` is given (the binary connects one, e.g. ScyllaDB):
/// partitions are restored from it and resume from their checkpoint.
pub fn run_with_state(
    cfg: KafkaConfig,
    engine: Arc<Engine>,
    state: Option<Box<dyn StateStore>>,
) -> Result<RunHandle, PipelineError> {
    cfg.validate().map_err(PipelineError::Config)?;
    let partitions = check_co_partitioned(&cfg)?;
    info!(brokers = %cfg.brokers, group = %cfg.group_id, partitions, mode = ?cfg.mode, "Input topics are co-partitioned.");
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(RunStats::default()));
    let mut p = Pipeline::new(cfg.clone(), engine, state)?;
    p.stats.partitions_total = partitions;
    let pipeline = Arc::new(Mutex::new(p));
    let (stop2, stats2, pipeline2) = (stop.clone(), stats.clone(), pipeline.clone());
    let thread = std::thread::Builder::new()
        .name("mora-pipeline".into())
        .spawn(move || {
            let result = run_loop(cfg, pipeline2, &stop2, &stats2);
            if let (Err(e), Ok(mut s)) = (&result, stats2.lock()) {
                tracing::error!(error = %e, "The pipeline stopped on an error.");
                s.error = Some(mora_runtime::error_chain(e));
            }
            result
        })
        .map_err(|e| PipelineError::Thread(format!("cannot start the pipeline thread: {e}")))?;
    Ok(RunHandle {
        stop,
        thread: Some(thread),
        stats,
        pipeline,
    })
}

/// Records taken from the client per loop iteration at most.
const POLL_BATCH: usize = 1000;

fn lock(p: &Mutex<Pipeline>) -> Result<std::sync::MutexGuard<'_, Pipeline>, PipelineError> {
    p.lock()
        .map_err(|_| PipelineError::Thread("pipeline state poisoned by a panic".into()))
}

fn run_loop(
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
