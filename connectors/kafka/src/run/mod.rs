//! `mora run`'s engine threads: each owns a disjoint set of partitions, joins the consumer group with a consumer of
//! its own and writes with a producer of its own (one transactional id per thread), as Kafka Streams' stream threads
//! do, so the group protocol spreads partitions over threads and instances alike. Shared by the threads: the
//! decision configuration (a reload swaps it in each thread between two of its records), the metrics and the API.

mod engine_loop;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use mora_domain::engine::Engine;
use mora_runtime::{PartitionWorker, StateStore};
use serde::Serialize;
use tracing::info;

use crate::config::KafkaConfig;
use crate::error::PipelineError;
use crate::pipeline::Pipeline;
use crate::stats::RunStats;
use crate::topics::check_co_partitioned;

use engine_loop::run_loop;

/// One engine thread as the instance sees it: its partitions' state and its counters (refreshed at every commit).
#[derive(Clone)]
struct Shared {
    pipeline: Arc<Mutex<Pipeline>>,
    stats: Arc<Mutex<RunStats>>,
}

impl Shared {
    fn stats(&self) -> RunStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn pipeline(&self) -> std::sync::MutexGuard<'_, Pipeline> {
        self.pipeline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn merged(threads: &[Shared]) -> RunStats {
    let all: Vec<RunStats> = threads.iter().map(Shared::stats).collect();
    RunStats::merge(&all)
}

/// A running instance.
pub struct RunHandle {
    stop: Arc<AtomicBool>,
    joins: Vec<JoinHandle<Result<RunStats, PipelineError>>>,
    threads: Vec<Shared>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("threads", &self.threads.len())
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Read access to a running instance's partitions, and configuration reloads.
#[derive(Clone)]
pub struct InstanceView {
    threads: Vec<Shared>,
}

impl std::fmt::Debug for InstanceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceView")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl InstanceView {
    /// A snapshot of the counters, all engine threads together.
    pub fn stats(&self) -> RunStats {
        merged(&self.threads)
    }

    /// Runs `f` over the workers of the partitions each engine thread owns, one thread at a time (that thread
    /// waits meanwhile, the others go on: keep `f` short). `f` is called once per thread.
    pub fn with_workers(&self, mut f: impl FnMut(&[&PartitionWorker])) {
        for t in &self.threads {
            let p = t.pipeline();
            let workers: Vec<&PartitionWorker> = p.workers().collect();
            f(&workers);
        }
    }

    /// Runs `f` over the worker of `partition`, on the thread that owns it (only that thread waits); `None` when
    /// no thread of this instance owns it.
    pub fn with_partition<R>(
        &self,
        partition: i32,
        f: impl FnOnce(&PartitionWorker) -> R,
    ) -> Option<R> {
        for t in &self.threads {
            let p = t.pipeline();
            if let Some(w) = p.workers().find(|w| w.partition() == partition) {
                return Some(f(w));
            }
        }
        None
    }

    /// The configuration in force.
    pub fn engine(&self) -> Arc<Engine> {
        self.threads[0].pipeline().engine()
    }

    /// Swaps in a new configuration, already validated: in each engine thread in turn, partitions assigned from now
    /// on use it, and every owned debtor is re-segmented and re-prioritised with it before the thread's next record
    /// is applied.
    pub fn reload(&self, engine: Arc<Engine>) -> ReloadReport {
        let started = Instant::now();
        let (mut debtors, mut changed) = (0, 0);
        for t in &self.threads {
            let (d, c) = t.pipeline().set_engine(engine.clone());
            debtors += d;
            changed += c;
        }
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
    /// Time the swap took (each engine thread waits for its own share), in milliseconds.
    pub millis: f64,
}

impl RunHandle {
    /// A snapshot of the counters, all engine threads together (refreshed at every commit).
    pub fn stats(&self) -> RunStats {
        merged(&self.threads)
    }

    /// Engine threads of this instance.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Whether the instance has ended: stopped, or an engine thread failed (which stops the others).
    pub fn is_finished(&self) -> bool {
        self.joins.iter().any(JoinHandle::is_finished)
    }

    /// Asks every engine thread to commit, leave the group and end; waits for them.
    pub fn stop(mut self) -> Result<RunStats, PipelineError> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the engine threads to end by themselves (an error in one, which stops the others, or a stop
    /// requested through [`RunHandle::stopper`]); the first error wins.
    pub fn join(&mut self) -> Result<RunStats, PipelineError> {
        let mut first: Option<PipelineError> = None;
        for t in self.joins.drain(..) {
            let result = t
                .join()
                .unwrap_or_else(|_| Err(PipelineError::Thread("an engine thread panicked".into())));
            if let Err(e) = result {
                self.stop.store(true, Ordering::SeqCst);
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(self.stats()),
        }
    }

    /// The flag that stops the engine threads (for signal handlers).
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// A cloneable view of the instance for queries and reloads (the HTTP API holds one).
    pub fn view(&self) -> InstanceView {
        InstanceView {
            threads: self.threads.clone(),
        }
    }
}

/// Checks the topics, then starts an engine instance with one engine thread in the consumer group; partitions are
/// rebuilt by replaying their input from the beginning.
pub fn run(cfg: KafkaConfig, engine: Arc<Engine>) -> Result<RunHandle, PipelineError> {
    run_with_state(cfg, engine, None, 1)
}

/// As [`run`], with `threads` engine threads (at least one), and the state kept in a store when `state` is given
/// (the binary connects one, e.g. ScyllaDB): partitions are restored from it and resume from their checkpoint. Each
/// thread gets a handle of its own on the store ([`StateStore::another`]).
pub fn run_with_state(
    cfg: KafkaConfig,
    engine: Arc<Engine>,
    state: Option<Box<dyn StateStore>>,
    threads: usize,
) -> Result<RunHandle, PipelineError> {
    run_with_registry(cfg, engine, state, threads, None)
}

/// As [`run_with_state`], reading and writing records framed with a schema registry's ids when `schemas` is given:
/// each input id's writer schema is fetched once (input pauses while the registry cannot be reached), and outputs
/// carry the ids registered for their topics.
pub fn run_with_registry(
    cfg: KafkaConfig,
    engine: Arc<Engine>,
    state: Option<Box<dyn StateStore>>,
    threads: usize,
    schemas: Option<Arc<mora_runtime::RegistrySchemas>>,
) -> Result<RunHandle, PipelineError> {
    cfg.validate().map_err(PipelineError::Config)?;
    if threads == 0 {
        return Err(PipelineError::Config(
            "engine.threads: must be at least 1".into(),
        ));
    }
    let partitions = check_co_partitioned(&cfg)?;
    info!(brokers = %cfg.brokers, group = %cfg.group_id, partitions, threads, mode = ?cfg.mode, "Input topics are co-partitioned.");
    let stop = Arc::new(AtomicBool::new(false));
    let mut stores: Vec<Option<Box<dyn StateStore>>> = match &state {
        Some(s) => (1..threads).map(|_| Some(s.another())).collect(),
        None => (1..threads).map(|_| None).collect(),
    };
    stores.insert(0, state);
    let mut handle = RunHandle {
        stop: stop.clone(),
        joins: Vec::with_capacity(threads),
        threads: Vec::with_capacity(threads),
    };
    for (index, store) in stores.into_iter().enumerate() {
        let cfg = cfg.for_thread(index);
        let mut p = match Pipeline::new(cfg.clone(), engine.clone(), store, index, schemas.clone())
        {
            Ok(p) => p,
            Err(e) => {
                // Threads already started leave the group before the error is returned.
                stop.store(true, Ordering::SeqCst);
                let _ = handle.join();
                return Err(e);
            }
        };
        p.stats.partitions_total = partitions;
        p.watch_stop(stop.clone());
        let shared = Shared {
            pipeline: Arc::new(Mutex::new(p)),
            stats: Arc::new(Mutex::new(RunStats::default())),
        };
        let (stop2, shared2, schemas2) = (stop.clone(), shared.clone(), schemas.clone());
        let join = std::thread::Builder::new()
            .name(format!("mora-engine-{index}"))
            .spawn(move || {
                let result = run_loop(cfg, shared2.pipeline, &stop2, &shared2.stats, schemas2);
                if let Err(e) = &result {
                    tracing::error!(thread = index, error = %e, "An engine thread stopped on an error; stopping the others.");
                    if let Ok(mut s) = shared2.stats.lock() {
                        s.error = Some(mora_runtime::error_chain(e));
                    }
                    stop2.store(true, Ordering::SeqCst);
                }
                result
            })
            .map_err(|e| PipelineError::Thread(format!("cannot start engine thread {index}: {e}")));
        match join {
            Ok(j) => {
                handle.joins.push(j);
                handle.threads.push(shared);
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let _ = handle.join();
                return Err(e);
            }
        }
    }
    Ok(handle)
}
