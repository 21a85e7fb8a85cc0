//! One engine thread's loop: poll, apply, commit every interval; stop on request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mora_runtime::RegistrySchemas;
use mora_schemas::{TableView, schema_id};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use tracing::{info, warn};

use crate::client;
use crate::config::KafkaConfig;
use crate::context::EngineContext;
use crate::error::PipelineError;
use crate::pipeline::Pipeline;
use crate::stats::RunStats;

/// Records taken from the client per loop iteration at most.
const POLL_BATCH: usize = 1000;

/// How long the engine thread encodes a state flush's rows per loop iteration at most (then records are taken and
/// applied again).
const BUILD_SLICE: Duration = Duration::from_millis(2);

fn lock(p: &Mutex<Pipeline>) -> Result<std::sync::MutexGuard<'_, Pipeline>, PipelineError> {
    p.lock()
        .map_err(|_| PipelineError::Thread("pipeline state poisoned by a panic".into()))
}

pub(super) fn run_loop(
    cfg: KafkaConfig,
    pipeline: Arc<Mutex<Pipeline>>,
    stop: &AtomicBool,
    shared: &Mutex<RunStats>,
    schemas: Option<Arc<RegistrySchemas>>,
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
    if let (Some(t), Some(s)) = (ticker.as_mut(), &schemas) {
        t.schema_id = s.output_id(&cfg.topics.input(mora_schemas::Family::Clock));
    }
    let mut registry = schemas.map(|s| Registry {
        view: s.view(),
        schemas: s,
    });
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Some(t) = ticker.as_mut() {
            let owned = lock(&pipeline)?.stats.assigned.clone();
            t.tick(&owned)?;
        }
        // Take what the client has queued (up to a batch) before applying: ordering across topics needs the
        // records of every topic at hand, and draining once per batch keeps the per-record cost low.
        // While a state flush is being built, its slices are the loop's work: no waiting for input.
        let mut timeout = if lock(&pipeline)?.building_state() {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        for _ in 0..POLL_BATCH {
            match consumer.poll(timeout) {
                Some(Ok(msg)) if registry.is_some() => {
                    let mut queue = std::collections::VecDeque::from([msg.detach()]);
                    while let Some(m) = queue.pop_front() {
                        let r = registry
                            .as_mut()
                            .ok_or_else(|| PipelineError::Thread("registry".into()))?;
                        if !r.ensure(&cfg, &m, &consumer, &pipeline, (stop, shared), &mut queue)? {
                            break; // stopping while the registry is away: the record is read again by the next owner
                        }
                        lock(&pipeline)?.enqueue_owned(m);
                    }
                }
                Some(Ok(msg)) => lock(&pipeline)?.enqueue(&msg),
                Some(Err(e)) => warn!(error = %e, "Consumer error; retrying."),
                None => break,
            }
            timeout = Duration::ZERO;
        }
        lock(&pipeline)?.poll_producer();
        {
            let mut p = lock(&pipeline)?;
            p.drain(&ends, last_commit + interval)?;
            p.build_state(Some(Instant::now() + BUILD_SLICE))?;
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
    // Every wait from here on fits in the stop's time (see `Pipeline::stop_deadline`).
    let deadline = lock(&pipeline)?
        .stop_deadline()
        .unwrap_or_else(|| Instant::now() + cfg.shutdown_timeout);
    if let Some(t) = &ticker {
        t.flush(
            deadline
                .saturating_duration_since(Instant::now())
                .min(CLOCK_FLUSH),
        );
        lock(&pipeline)?.stats.clock_records_written = t.written;
    }
    info!(within = ?cfg.shutdown_timeout, "Stopping: committing and leaving the group.");
    lock(&pipeline)?.commit(&consumer)?;
    consumer.unsubscribe();
    // Serve the revoke callback that leaving triggers (it flushes the last state).
    let leave_by = deadline.min(Instant::now() + LEAVE_PATIENCE);
    while Instant::now() < leave_by
        && !consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    close_within(consumer, deadline);
    let stats = lock(&pipeline)?.stats.clone();
    if let Ok(mut s) = shared.lock() {
        *s = stats.clone();
    }
    Ok(stats)
}

/// How long leaving the group waits for the revoke callback at most.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);
/// How long the clock's last records wait for their acknowledgement at most.
const CLOCK_FLUSH: Duration = Duration::from_secs(5);

/// Closes the consumer (leaving the group) by `deadline`. Closing waits for the group coordinator's answers, which a
/// frozen broker holds back until the socket timeout (a minute); so it runs on a thread of its own, and past the
/// deadline the stop goes on without it (the group then notices the member gone after its session timeout, and the
/// thread ends when the client gives up or the process exits).
fn close_within(consumer: BaseConsumer<EngineContext>, deadline: Instant) {
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("mora-consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if spawned.is_err() {
        warn!("Could not start a thread to close the consumer; leaving without closing it.");
        return;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if closed
        .recv_timeout(left.max(Duration::from_millis(100)))
        .is_err()
    {
        warn!(
            "Stopping: the consumer did not close before the stop's deadline; leaving without waiting for the group coordinator."
        );
    }
}

/// The engine thread's side of the schema registry: every schema id is fetched before its first record is
/// buffered, so records are applied with their writer schema at hand.
struct Registry {
    view: TableView,
    schemas: Arc<RegistrySchemas>,
}

/// Longest wait between two tries while the registry is away.
const REGISTRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Registry {
    /// Makes sure the writer schema of `msg`'s id is known. While the registry cannot be reached, the open
    /// transaction is committed (it must not time out), input is paused (records already taken are held in `held`,
    /// in order) and the fetch retried with backoff; nothing is dead-lettered for it. Returns `false` if the thread
    /// was asked to stop meanwhile.
    fn ensure(
        &mut self,
        cfg: &KafkaConfig,
        msg: &OwnedMessage,
        consumer: &BaseConsumer<crate::context::EngineContext>,
        pipeline: &Mutex<Pipeline>,
        (stop, shared): (&AtomicBool, &Mutex<RunStats>),
        held: &mut std::collections::VecDeque<OwnedMessage>,
    ) -> Result<bool, PipelineError> {
        let Some(id) = msg.payload().and_then(schema_id) else {
            return Ok(true);
        };
        let Some(family) = cfg.topics.family_of(msg.topic()) else {
            return Ok(true);
        };
        if self.view.get(family, id).is_some() {
            return Ok(true);
        }
        let mut wait = Duration::from_millis(100);
        let mut paused_since: Option<Instant> = None;
        loop {
            match self.schemas.resolve(family, id) {
                Ok(refused) => {
                    match refused {
                        Some(reason) => {
                            warn!(id, topic = msg.topic(), %reason, "Records with this schema id will be dead-lettered.")
                        }
                        None => info!(
                            id,
                            topic = msg.topic(),
                            "Writer schema fetched from the registry."
                        ),
                    }
                    break;
                }
                Err(e) => {
                    let mut p = lock(pipeline)?;
                    if paused_since.is_none() {
                        warn!(id, error = %e, "Schema registry unavailable: input paused until it answers.");
                        p.commit(consumer)?;
                        p.stats.registry_waits += 1;
                        metrics::counter!("mora_registry_waits_total").increment(1);
                        if let Ok(mut s) = shared.lock() {
                            *s = p.stats.clone();
                        }
                        paused_since = Some(Instant::now());
                    }
                    // Every assigned partition, including any assigned during the wait.
                    consumer.pause(&consumer.assignment()?)?;
                    p.poll_producer();
                    drop(p);
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if stop.load(Ordering::SeqCst) {
                            lock(pipeline)?.resume_input(consumer)?;
                            return Ok(false);
                        }
                        // Serves rebalances and keeps the membership; a record fetched before its partition was
                        // paused is kept, in order, for after the wait.
                        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                            held.push_back(m.detach());
                        }
                    }
                    wait = (wait * 2).min(REGISTRY_BACKOFF_MAX);
                }
            }
        }
        if let Some(since) = paused_since {
            info!(id, paused_for = ?since.elapsed(), "Schema registry answered: input resumes.");
            lock(pipeline)?.resume_input(consumer)?;
        }
        Ok(true)
    }
}
