//! The transaction cycle: outputs and offsets committed together (exactly-once) or outputs acknowledged before
//! offsets (at-least-once), and a failed transaction aborted with every partition rebuilt from the committed offsets
//! (a fenced producer replaced first).

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use tracing::{debug, warn};

use super::{Pipeline, TXN_TIMEOUT};
use crate::client;
use crate::error::PipelineError;

/// A fenced producer is replaced at most this many times within [`REPLACEMENT_WINDOW`]; more means something fences
/// it on purpose (a second instance with the same transactional id), and the pipeline stops.
const MAX_REPLACEMENTS: usize = 3;
const REPLACEMENT_WINDOW: Duration = Duration::from_secs(600);
/// How long a new producer keeps trying to initialise while the brokers do not answer.
const PRODUCER_PATIENCE: Duration = Duration::from_secs(120);
/// The longest single wait of a transactional call; it is made again (the client resumes it) up to its timeout.
const TXN_SLICE: Duration = Duration::from_millis(500);
/// A transactional call still out this long past its timeout is taken for stuck in the client.
const WEDGED_AFTER: Duration = Duration::from_secs(5);

impl Pipeline {
    /// Commits outputs and offsets: one transaction (exactly-once) or flush-then-commit (at-least-once).
    pub(crate) fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), PipelineError> {
        self.producer.poll(Duration::ZERO);
        self.sync_stats();
        if self.offsets.is_empty() && !self.in_txn {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, topics) in &self.offsets {
            for (t, o) in topics {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
            }
        }
        if let Some(e) = self.failed.take() {
            return self.abort_and_rewind(consumer, e);
        }
        // Wait for in-flight outputs in short steps: librdkafka's flush (also called inside commit_transaction)
        // returns on a 100 ms cadence, which would put a floor under every commit's latency.
        self.await_deliveries(TXN_TIMEOUT);
        if self.exactly_once() {
            let group = consumer
                .group_metadata()
                .ok_or_else(|| PipelineError::Config("no consumer group metadata".into()))?;
            debug!("Transaction commit begins.");
            let result = self
                .txn_call(move |p, t| p.send_offsets_to_transaction(&tpl, &group, t))
                .and_then(|()| self.txn_call(|p, t| p.commit_transaction(t)));
            match result {
                Ok(()) => {
                    debug!("Transaction committed.");
                    self.in_txn = false;
                    self.offsets.clear();
                    self.stats.commits += 1;
                    metrics::counter!("mora_commits_total", "result" => "committed").increment(1);
                }
                Err(e) => return self.abort_and_rewind(consumer, e),
            }
        } else {
            if self.producer.in_flight_count() > 0 {
                self.producer.flush(self.budget(TXN_TIMEOUT))?; // only if deliveries timed out above
            }
            consumer.commit(&tpl, CommitMode::Sync)?;
            self.offsets.clear();
            self.stats.commits += 1;
            metrics::counter!("mora_commits_total", "result" => "committed").increment(1);
        }
        self.sync_stats();
        Ok(())
    }

    /// After a failed transaction: abort it (its outputs are never visible), and rebuild every partition from the
    /// committed offsets so that state matches what was committed (or, while partitions are being revoked, drop
    /// their state). A producer in a fatal state (fenced: a broker that
    /// stalled past the transaction timeout, or a zombie moment of this instance) is replaced by a new one with the
    /// same transactional id instead, whose initialisation aborts whatever the old one left open. Replaced too often
    /// (a twin instance configured with the same transactional id fences it back each time), or any fatal error in
    /// at-least-once mode, stops the pipeline.
    fn abort_and_rewind<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        e: KafkaError,
    ) -> Result<(), PipelineError> {
        if !self.exactly_once() {
            return Err(PipelineError::Kafka(e));
        }
        let mut fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal())
            || self.producer.client().fatal_error().is_some()
            || std::mem::take(&mut self.wedged);
        if self.stop_deadline().is_some() {
            self.give_up_transaction(fatal, &e);
            return Ok(());
        }
        if !fatal {
            warn!(error = %e, "Transaction failed; aborting it and rebuilding state from the committed offsets.");
            if self.in_txn {
                // The client aborts only once every output sent has its delivery report, and reports are served
                // by polling on this thread.
                self.await_deliveries(TXN_TIMEOUT);
                if let Err(abort) = self.txn_call(|p, t| p.abort_transaction(t)) {
                    // E.g. fenced while aborting, or the coordinator refusing the abort's state: a new producer's
                    // initialisation aborts the transaction instead.
                    warn!(error = %abort, "Aborting the transaction failed.");
                    fatal = true;
                }
            }
        }
        if fatal {
            self.replace_producer(e)?;
        }
        self.forget_transaction();
        if self.revoking {
            // The partitions are leaving; their next owner restores them from the committed state. (Asking the
            // group for committed offsets now would wait on the rebalance in progress.)
            return Ok(());
        }
        let assignment = consumer.assignment()?;
        let starts = self.assign(consumer, &assignment)?;
        for el in starts.elements() {
            consumer.seek(el.topic(), el.partition(), el.offset(), TXN_TIMEOUT)?;
        }
        Ok(())
    }

    /// While stopping: the transaction that could not commit is aborted if the cluster answers before the stop's
    /// deadline; otherwise it stays open until the next producer with this transactional id starts (its
    /// initialisation aborts it) or the broker's transaction timeout passes. Either way none of its outputs become
    /// visible and its offsets are not committed, so the partitions' next owner replays from the last commit. The
    /// partitions' state is dropped, not rebuilt, and the producer is not replaced: the instance is leaving.
    fn give_up_transaction(&mut self, fatal: bool, e: &KafkaError) {
        warn!(error = %e, "Stopping: the final transaction did not commit; giving it up (the next owner replays from the last commit).");
        if self.in_txn && !fatal {
            self.await_deliveries(TXN_TIMEOUT);
            let aborted = !self.budget(TXN_TIMEOUT).is_zero()
                && self.txn_call(|p, t| p.abort_transaction(t)).is_ok();
            if !aborted {
                warn!(
                    transaction_timeout = ?self.cfg.transaction_timeout,
                    "Stopping: the transaction could not be aborted in time; it stays open until this transactional id's next producer starts or the broker's transaction timeout passes."
                );
            }
        }
        self.forget_transaction();
    }

    /// Forgets the lost transaction: its offsets, and the partitions' state built on it (rebuilt or dropped by the
    /// caller); counted as an abort.
    fn forget_transaction(&mut self) {
        // The flush being built is of the last commit's cut: it is finished before the partitions' state goes.
        if let Err(e) = self.build_state(None) {
            warn!(error = %e, "The state flush being built could not be finished; the partitions' next start replays from the checkpoint before.");
        }
        self.in_txn = false;
        self.failed = None;
        self.stats.aborts += 1;
        metrics::counter!("mora_commits_total", "result" => "aborted").increment(1);
        self.offsets.clear();
        self.slots.clear();
    }

    /// Swaps the fenced producer for a new one with the same transactional id. Its `init_transactions` bumps the
    /// epoch (fencing any older producer of this id for good) and aborts the transaction left open, so none of the
    /// old producer's outputs since the last commit ever become visible. Retried while the brokers do not answer.
    fn replace_producer(&mut self, cause: KafkaError) -> Result<(), PipelineError> {
        let now = Instant::now();
        while self
            .replaced_at
            .front()
            .is_some_and(|t| now.duration_since(*t) > REPLACEMENT_WINDOW)
        {
            self.replaced_at.pop_front();
        }
        if self.replaced_at.len() >= MAX_REPLACEMENTS {
            warn!(error = %cause, "Producer fenced again: is another instance running with the same transactional id?");
            return Err(PipelineError::Kafka(cause));
        }
        warn!(error = %cause, "Producer fenced or failed fatally; replacing it and rebuilding state from the committed offsets.");
        let deadline = now + PRODUCER_PATIENCE;
        let mut wait = Duration::from_millis(200);
        let producer = loop {
            let attempt = client::producer(&self.cfg, self.txn_id.as_deref())
                .create::<BaseProducer>()
                .map_err(PipelineError::Kafka)
                .and_then(|p| {
                    p.init_transactions(TXN_TIMEOUT)?;
                    Ok(p)
                });
            match attempt {
                Ok(p) => break p,
                Err(e) if Instant::now() + wait < deadline => {
                    warn!(error = %e, retry_in = ?wait, "New producer not ready; retrying.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        };
        // The old producer's queue holds only outputs of the lost transaction: dropping it purges them.
        self.producer = Arc::new(producer);
        self.replaced_at.push_back(now);
        self.stats.producer_replacements += 1;
        metrics::counter!("mora_producer_replacements_total").increment(1);
        Ok(())
    }

    fn sync_stats(&mut self) {
        let w = self.written;
        self.stats.actions = w.actions;
        self.stats.audits = w.audits;
        self.stats.dead_letters = w.dead_letters;
        self.stats.suppressed = w.suppressed;
        self.stats.backpressure_waits = w.backpressure_waits;
        if let Some(d) = &self.durable {
            self.stats.state = Some(d.stats());
            self.stats.state_pauses = d.pauses;
            self.stats.state_lag_ms = d.lag_ms();
        }
        self.stats.skipped = self.slots.values().map(|s| s.worker.stats().skipped).sum();
    }

    /// Serves delivery reports until every output sent is acknowledged (or `timeout` passes, or the stop's
    /// deadline). The client's timed poll waits out its whole timeout and rounds what is left below a millisecond
    /// down to none (a busy loop that took a sixth of the engine thread), so this serves what has arrived and sleeps
    /// briefly in between instead.
    fn await_deliveries(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            for _ in 0..32 {
                self.producer.poll(Duration::ZERO);
            }
            if self.producer.in_flight_count() == 0
                || self
                    .budget(deadline.saturating_duration_since(Instant::now()))
                    .is_zero()
            {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Runs a transactional call (sending offsets, committing, aborting) for up to [`TXN_TIMEOUT`]. While the
    /// instance is stopping it runs in slices of [`TXN_SLICE`] (the client resumes a call made again after it timed
    /// out) so that the wait ends at the stop's deadline; otherwise as one call, the way the fault tests proved it.
    fn txn_call<F>(&mut self, call: F) -> KafkaResult<()>
    where
        F: Fn(&BaseProducer, Duration) -> KafkaResult<()> + Send + Sync + 'static,
    {
        let call = Arc::new(call);
        if self.stop_deadline().is_none() {
            return self.watched(&call, TXN_TIMEOUT);
        }
        let until = Instant::now() + TXN_TIMEOUT;
        loop {
            let left = self.budget(until.saturating_duration_since(Instant::now()));
            match self.watched(&call, left.min(TXN_SLICE)) {
                Err(KafkaError::Transaction(e))
                    if e.code() == RDKafkaErrorCode::OperationTimedOut
                        && e.is_retriable()
                        && !self
                            .budget(until.saturating_duration_since(Instant::now()))
                            .is_zero() => {}
                other => return other,
            }
        }
    }

    /// Makes one transactional call on a thread of its own and waits for it up to its timeout plus
    /// [`WEDGED_AFTER`]. The client can block past a call's timeout: sending offsets waits for the consumer group's
    /// coordinator, and when that broker restarts the client may not look the coordinator up again until another
    /// broker changes state (librdkafka issues 5456 and 5511). A call that does not come back marks the producer
    /// wedged, which the failed transaction's handling replaces like a fenced one; the abandoned call keeps the old
    /// producer alive until it returns.
    fn watched<F>(&mut self, call: &Arc<F>, timeout: Duration) -> KafkaResult<()>
    where
        F: Fn(&BaseProducer, Duration) -> KafkaResult<()> + Send + Sync + 'static,
    {
        let (producer, job) = (self.producer.clone(), call.clone());
        match watch(timeout + WEDGED_AFTER, move || job(&producer, timeout)) {
            Ok(Some(result)) => result,
            // No thread to spare: make the call here, as before.
            Err(_) => call(&self.producer, timeout),
            Ok(None) => {
                self.wedged = true;
                warn!(
                    waited = ?(timeout + WEDGED_AFTER),
                    "A transactional call did not return past its timeout; the producer is wedged and will be replaced."
                );
                Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut))
            }
        }
    }

    /// Serves the producer's delivery reports.
    pub(crate) fn poll_producer(&self) {
        self.producer.poll(Duration::ZERO);
    }
}

/// Runs `job` on a thread of its own and waits up to `limit` for what it returns: `None` if it has not returned by
/// then (it runs on, and what it returns is dropped), an error if no thread could be started.
fn watch<T: Send + 'static>(
    limit: Duration,
    job: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<Option<T>> {
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("mora-txn".into())
        .spawn(move || {
            let _ = tx.send(job());
        })?;
    Ok(rx.recv_timeout(limit).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_call_that_returns_in_time_gives_its_result() {
        assert_eq!(watch(Duration::from_secs(5), || 7).unwrap(), Some(7));
    }

    #[test]
    fn a_watched_call_still_out_at_the_limit_is_left_behind() {
        let (release, wait) = sync_channel::<()>(1);
        let started = Instant::now();
        let out = watch(Duration::from_millis(50), move || wait.recv().is_ok()).unwrap();
        assert_eq!(out, None, "the call has not returned");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the wait ends at the limit"
        );
        release.send(()).unwrap();
    }
}
