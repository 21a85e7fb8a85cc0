//! The transaction cycle: outputs and offsets committed together (exactly-once) or outputs acknowledged before
//! offsets (at-least-once), and a failed transaction aborted with every partition rebuilt from the committed offsets
//! (a fenced producer replaced first).

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
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
                .producer
                .send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT)
                .and_then(|()| self.producer.commit_transaction(TXN_TIMEOUT));
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
                self.producer.flush(TXN_TIMEOUT)?; // only if deliveries timed out above
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
            || self.producer.client().fatal_error().is_some();
        if !fatal {
            warn!(error = %e, "Transaction failed; aborting it and rebuilding state from the committed offsets.");
            if self.in_txn {
                // The client aborts only once every output sent has its delivery report, and reports are served
                // by polling on this thread.
                self.await_deliveries(TXN_TIMEOUT);
                if let Err(abort) = self.producer.abort_transaction(TXN_TIMEOUT) {
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
        self.in_txn = false;
        self.failed = None;
        self.stats.aborts += 1;
        metrics::counter!("mora_commits_total", "result" => "aborted").increment(1);
        self.offsets.clear();
        self.slots.clear();
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
        self.producer = producer;
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

    /// Serves delivery reports until every output sent is acknowledged (or `timeout` passes). The client's timed
    /// poll waits out its whole timeout and rounds what is left below a millisecond down to none (a busy loop that
    /// took a sixth of the engine thread), so this serves what has arrived and sleeps briefly in between instead.
    fn await_deliveries(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            for _ in 0..32 {
                self.producer.poll(Duration::ZERO);
            }
            if self.producer.in_flight_count() == 0 || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Serves the producer's delivery reports.
    pub(crate) fn poll_producer(&self) {
        self.producer.poll(Duration::ZERO);
    }
}
