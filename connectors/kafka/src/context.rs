//! Rebalance handling. Eager (range) assignment: on revoke, the open transaction commits (and, with a state store,
//! the last changes are flushed) before the partitions are released; on assign, each partition's state is restored
//! (from the database and its checkpoint, or by replaying from the beginning without one), suppressing the outputs
//! of records below the committed offsets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::error;

use crate::pipeline::Pipeline;

/// The consumer's context: shares the pipeline with the loop. The loop and the callbacks run on the same thread
/// (callbacks fire inside `poll`), so the mutex is never contended.
pub(crate) struct EngineContext {
    pub pipeline: Arc<Mutex<Pipeline>>,
    /// An error raised inside a callback, for the loop to act on.
    pub failure: Arc<Mutex<Option<String>>>,
    /// End offsets from the statistics callback.
    pub ends: EndOffsets,
}

/// Per (topic, partition): the offset up to which the broker holds readable records (last stable offset, as
/// `read_committed` sees it) and the log start offset, from librdkafka's statistics (no extra requests).
pub(crate) type EndOffsets = Arc<Mutex<HashMap<(String, i32), (i64, i64)>>>;

impl ClientContext for EngineContext {
    fn stats(&self, statistics: Statistics) {
        let Ok(mut ends) = self.ends.lock() else {
            return;
        };
        for (name, topic) in statistics.topics {
            for (p, part) in topic.partitions {
                // Trusted only once the partition is being fetched: before its first fetch response the offsets
                // are placeholders, and a placeholder end would make an unread topic look caught up.
                if p >= 0
                    && part.fetch_state == "active"
                    && part.hi_offset >= 0
                    && part.ls_offset >= 0
                {
                    ends.insert((name.clone(), p), (part.lo_offset.max(0), part.ls_offset));
                } else {
                    ends.remove(&(name.clone(), p));
                }
            }
        }
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
                        self.fail(format!("restoring assigned partitions failed: {e}"));
                        return;
                    }
                };
                if let Err(e) = consumer.assign(&starts) {
                    error!(error = %e, "Assigning partitions failed.");
                    self.fail(format!("assign failed: {e}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(e) = pipeline.revoke(consumer) {
                    error!(error = %e, "Committing before releasing partitions failed.");
                    self.fail(format!("commit on revoke failed: {e}"));
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
    fn fail(&self, msg: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(msg);
        }
    }
}
