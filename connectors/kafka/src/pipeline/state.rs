//! The pipeline and its state store: flushes started right after commits, and input paused while the store is
//! behind.

use crate::durable::FlushSource;
use crate::error::PipelineError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::time::Instant;

use super::Pipeline;

impl Pipeline {
    /// After a commit: starts a flush of the changes if one is due (`now`: regardless of the interval, waiting for
    /// it to land, as when releasing partitions or stopping).
    pub(crate) fn flush_state(&mut self, now: bool) -> Result<(), PipelineError> {
        let patience = self.budget(crate::durable::RELEASE_PATIENCE);
        let Some(d) = self.durable.as_mut() else {
            return Ok(());
        };
        if now {
            d.settle(patience);
        } else if !d.due() {
            return Ok(());
        }
        let engine = self.engine.clone();
        // The engine thread builds the flush (rows encoded, summaries taken) while input waits: a pause of its own.
        let building = Instant::now();
        d.flush(
            &engine,
            now,
            self.slots.iter_mut().map(|(p, s)| FlushSource {
                partition: *p,
                worker: &mut s.worker,
                ledger: &mut s.ledger,
                applied: &s.applied,
                flushed: &mut s.flushed,
            }),
        )?;
        let built = building.elapsed();
        self.flush_build.record(built.as_secs_f64());
        tracing::debug!(?built, "State flush built.");
        if now {
            let patience = self.budget(crate::durable::RELEASE_PATIENCE);
            if let Some(d) = self.durable.as_mut() {
                d.settle(patience);
            }
        }
        Ok(())
    }

    /// Pauses every assigned topic-partition while the state store is further behind than its limit, and resumes
    /// them (except those paused for full buffers) when it catches up.
    pub(crate) fn pace_state<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), PipelineError> {
        let Some(d) = self.durable.as_mut() else {
            return Ok(());
        };
        let (behind, changed) = d.should_pause();
        if !changed {
            return Ok(());
        }
        let tpl = self.assigned(consumer, behind)?;
        if behind {
            consumer.pause(&tpl)?;
        } else {
            consumer.resume(&tpl)?;
            // Time spent paused is not time a topic kept the others waiting.
            let now = Instant::now();
            for slot in self.slots.values_mut() {
                for inbox in slot.inboxes.values_mut() {
                    inbox.forgive();
                    for (at, _) in inbox.queue.iter_mut() {
                        *at = now;
                    }
                }
            }
        }
        Ok(())
    }
}
