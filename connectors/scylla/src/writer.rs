//! The engine thread's handle on the store. The engine's loop is synchronous; the store is async: this handle
//! owns a small tokio runtime, runs restores to completion (they gate a partition's start) and runs flushes in the
//! background, one at a time, retrying a failed flush with backoff until it lands (writes are idempotent). While a
//! flush is out, new changes only accumulate in the workers' change sets (one entry per debtor), so memory stays
//! bounded however long the database is away; the caller pauses input once [`StateHandle::lag`] passes its limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use mora_runtime::{
    Classify, ErrorClass, PartitionFlush, Restored, StateStore, StoreError, StoreSettings,
    StoreStats,
};
use std::panic::AssertUnwindSafe;
use tokio::runtime::Runtime;
use tracing::{error, info, warn};

use crate::config::StateConfig;
use crate::error::StateError;
use crate::store::{Store, Written};

/// Backoff between attempts: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

struct InFlight {
    started: Instant,
    done: Receiver<Written>,
    task: tokio::task::JoinHandle<()>,
    /// What the task writes, kept to write it again should the task end without reporting.
    flushes: Arc<Vec<PartitionFlush>>,
    write_time: i64,
}

/// Writes every partition of a flush side by side (each its ledger and rows, then its own checkpoint); the first
/// error fails the whole attempt.
async fn write_all(
    store: &Store,
    flushes: &[PartitionFlush],
    write_time: i64,
) -> Result<Written, StateError> {
    let written =
        futures::future::join_all(flushes.iter().map(|f| store.write(f, write_time))).await;
    let mut total = Written::default();
    for w in written {
        let w = w?;
        total.rows += w.rows;
        total.swept += w.swept;
        total.statements += w.statements;
        total.requests += w.requests;
    }
    Ok(total)
}

/// The message of a caught panic, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The engine thread's handle on the store.
pub struct StateHandle {
    rt: Arc<Runtime>,
    store: Arc<Store>,
    cfg: StateConfig,
    in_flight: Option<InFlight>,
    last_done: Instant,
    failures: Arc<std::sync::atomic::AtomicU64>,
    stats: StoreStats,
}

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle")
            .field("keyspace", &self.cfg.keyspace)
            .field("busy", &self.in_flight.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

fn runtime(workers: usize) -> Result<Runtime, StateError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name("mora-state")
        .enable_all()
        .build()
        .map_err(StateError::db)
}

/// The write time of a new flush: microseconds since the epoch, and later than every flush this process started
/// before, even if the wall clock stepped back (a flush's write time orders its chunks in the debtor log).
fn now_micros() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_else(|last| last);
    now.max(prev + 1)
}

impl StateHandle {
    /// Connects, retrying for up to `patience` while the database is unreachable (not if it is not migrated).
    /// The driver's I/O runs on a runtime of two worker threads; [`StateHandle::connect_with_workers`] sizes it
    /// for an instance of many engine threads, whose handles ([`StateHandle::another`]) share it.
    pub fn connect(cfg: StateConfig, patience: Duration) -> Result<Self, StateError> {
        Self::connect_with_workers(cfg, patience, 2)
    }

    /// [`StateHandle::connect`] with `workers` runtime threads for the driver's I/O.
    pub fn connect_with_workers(
        cfg: StateConfig,
        patience: Duration,
        workers: usize,
    ) -> Result<Self, StateError> {
        let rt = runtime(workers)?;
        let deadline = Instant::now() + patience;
        let mut wait = BACKOFF.0;
        let store = loop {
            match rt.block_on(Store::connect(&cfg)) {
                Ok(s) => break s,
                Err(e)
                    if e.class() == ErrorClass::Transient && Instant::now() + wait < deadline =>
                {
                    warn!(error = %e, "State store unavailable; retrying.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(BACKOFF.1);
                }
                Err(e) => return Err(e),
            }
        };
        info!(keyspace = %cfg.keyspace, shards = store.shards(), "State store connected.");
        Ok(Self {
            rt: Arc::new(rt),
            store: Arc::new(store),
            cfg,
            in_flight: None,
            last_done: Instant::now(),
            failures: Arc::default(),
            stats: StoreStats::default(),
        })
    }

    /// A handle for another engine thread on the same connection and runtime, with its own flush in flight.
    pub fn another(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            store: self.store.clone(),
            cfg: self.cfg.clone(),
            in_flight: None,
            last_done: Instant::now(),
            failures: Arc::default(),
            stats: StoreStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &StateConfig {
        &self.cfg
    }

    /// Reads a partition's stored state, retrying with backoff for up to `patience` (the partition cannot start
    /// without it).
    pub fn restore(&mut self, partition: i32, patience: Duration) -> Result<Restored, StateError> {
        let deadline = Instant::now() + patience;
        let mut wait = BACKOFF.0;
        loop {
            match self.rt.block_on(self.store.restore(partition)) {
                Ok(r) => {
                    self.stats.restored_debtors += r.debtors.len() as u64;
                    return Ok(r);
                }
                Err(e)
                    if e.class() == ErrorClass::Transient && Instant::now() + wait < deadline =>
                {
                    self.stats.failed_attempts += 1;
                    warn!(partition, error = %e, "Restore failed; retrying.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(BACKOFF.1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a flush is being written.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// How long the store has been behind: since the flush being written started, or zero when idle.
    pub fn lag(&self) -> Duration {
        self.in_flight
            .as_ref()
            .map_or(Duration::ZERO, |f| f.started.elapsed())
    }

    /// Time since the last flush completed.
    pub fn since_last_flush(&self) -> Duration {
        self.last_done.elapsed()
    }

    /// Starts writing `flushes` in the background. At most one flush is out at a time: a second one beside it
    /// could land its checkpoint before the first one's ledger, so this panics if one is (check [`busy`]).
    ///
    /// [`busy`]: StateHandle::busy
    pub fn submit(&mut self, flushes: Vec<PartitionFlush>) {
        assert!(
            self.in_flight.is_none(),
            "a flush was submitted while another was still being written"
        );
        self.in_flight = Some(self.spawn(Arc::new(flushes), now_micros(), Instant::now()));
    }

    /// The task writing `flushes` under `write_time` until they land. A failed attempt (an error, or a panic in
    /// the driver) is retried whole after a backoff: the writes are idempotent.
    fn spawn(
        &self,
        flushes: Arc<Vec<PartitionFlush>>,
        write_time: i64,
        started: Instant,
    ) -> InFlight {
        let (tx, rx) = channel();
        let store = self.store.clone();
        let failures = self.failures.clone();
        let kept = flushes.clone();
        let task = self.rt.spawn(async move {
            let mut wait = BACKOFF.0;
            loop {
                let attempt = AssertUnwindSafe(write_all(&store, &flushes, write_time))
                    .catch_unwind()
                    .await;
                match attempt {
                    Ok(Ok(total)) => {
                        let _ = tx.send(total);
                        return;
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, retry_in = ?wait, "Flush to the state store failed; retrying.");
                    }
                    Err(panic) => {
                        error!(
                            panic = panic_message(panic.as_ref()),
                            retry_in = ?wait,
                            "Writing a flush to the state store panicked; retrying it whole."
                        );
                    }
                }
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF.1);
            }
        });
        InFlight {
            started,
            done: rx,
            task,
            flushes: kept,
            write_time,
        }
    }

    /// Whether the flush in flight completed since the last call (`Some(true)`), is still out (`Some(false)`), or
    /// there is none (`None`). A flush whose task ended without reporting (it cannot, short of the runtime dropping
    /// it) is started again rather than taken as written.
    pub fn poll(&mut self) -> Option<bool> {
        let f = self.in_flight.as_ref()?;
        match f.done.try_recv() {
            Ok(w) => {
                self.complete(w);
                Some(true)
            }
            Err(TryRecvError::Disconnected) => {
                error!("A flush to the state store ended without landing; writing it again.");
                let lost = self.in_flight.take()?;
                self.in_flight = Some(self.spawn(lost.flushes, lost.write_time, lost.started));
                Some(false)
            }
            Err(TryRecvError::Empty) => Some(false),
        }
    }

    /// Waits up to `timeout` for the flush in flight; returns whether none is left. A flush still out is left
    /// running (it only writes committed state, under its own write time).
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(false) = self.poll() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn complete(&mut self, w: Written) {
        if let Some(f) = self.in_flight.take() {
            self.stats.last_flush_ms = f.started.elapsed().as_millis() as u64;
        }
        self.stats.flushes += 1;
        self.stats.rows += w.rows;
        self.stats.swept += w.swept;
        self.stats.statements += w.statements;
        self.stats.requests += w.requests;
        self.last_done = Instant::now();
    }

    /// Counters so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            failed_attempts: self.stats.failed_attempts
                + self.failures.load(std::sync::atomic::Ordering::Relaxed),
            ..self.stats
        }
    }
}

impl StateStore for StateHandle {
    fn settings(&self) -> StoreSettings {
        let c = &self.cfg;
        StoreSettings {
            flush_interval: c.flush_interval,
            max_lag: c.max_lag,
            audit_ledger: c.audit_ledger,
            membership_views: c.membership_views,
            summary_interval: c.summary_interval,
            summary_queue_depth: c.summary_queue_depth,
            sweep: true,
        }
    }

    fn restore(&mut self, partition: i32, patience: Duration) -> Result<Restored, StoreError> {
        StateHandle::restore(self, partition, patience).map_err(StoreError::from)
    }

    fn submit(&mut self, flushes: Vec<PartitionFlush>) {
        StateHandle::submit(self, flushes);
    }

    fn poll(&mut self) -> Option<bool> {
        StateHandle::poll(self)
    }

    fn busy(&self) -> bool {
        StateHandle::busy(self)
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        StateHandle::wait(self, timeout)
    }

    fn lag(&self) -> Duration {
        StateHandle::lag(self)
    }

    fn since_last_flush(&self) -> Duration {
        StateHandle::since_last_flush(self)
    }

    fn stats(&self) -> StoreStats {
        StateHandle::stats(self)
    }

    fn another(&self) -> Box<dyn StateStore> {
        Box::new(StateHandle::another(self))
    }
}

impl Drop for StateHandle {
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.task.abort();
        }
    }
}
