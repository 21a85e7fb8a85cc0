//! Rebalance handling. Eager (range) assignment: on revoke, the open transaction commits (and, with a state store,
//! the last changes are flushed) before the partitions are released; on assign, each partition's state is restored
//! (from the database and its checkpoint, or by replaying from the beginning without one), suppressing the outputs
//! of records below the committed offsets.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::error;

use crate::ends::EndOffsets;
use crate::error::PipelineError;
use crate::pipeline::Pipeline;

/// The consumer's context: shares the pipeline with the loop. The loop and the callbacks run on the same thread
/// (callbacks fire inside `poll`), so the mutex is never contended.
pub(crate) struct EngineContext {
    pub pipeline: Arc<Mutex<Pipeline>>,
    /// An error raised inside a callback, for the loop to act on.
    pub failure: Arc<Mutex<Option<PipelineError>>>,
    /// End offsets from the statistics callback.
    pub ends: EndOffsets,
}

impl ClientContext for EngineContext {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        crate::ends::update(&self.ends, statistics);
    }
}

impl ConsumerContext for EngineContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let Ok(mut pipeline) = self.pipeline.lock() else {
            return;
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Build each partition's state first (restored from the database, or empty): it decides where
                // reading starts.
                let starts = match pipeline.assign(consumer, tpl) {
                    Ok(s) => s,
                    Err(e) => {
                        error!(error = %e, "Building the assigned partitions' state failed.");
                        self.fail(e);
                        return;
                    }
                };
                // Statistics about these partitions from an earlier assignment must not pass for their ends.
                crate::ends::assigned(&self.ends, &starts);
                if let Err(e) = consumer.assign(&starts) {
                    error!(error = %e, "Assigning partitions failed.");
                    self.fail(e.into());
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(e) = pipeline.revoke(consumer) {
                    error!(error = %e, "Committing before releasing partitions failed.");
                    self.fail(e);
                }
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "Releasing partitions failed.");
                }
            }
            other => {
                error!(code = ?other, "Rebalance error.");
                let _ = consumer.unassign();
            }
        }
    }
}

impl EngineContext {
    /// Keeps the first error raised in a callback for the loop, which stops on it.
    fn fail(&self, e: PipelineError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
    }
}
