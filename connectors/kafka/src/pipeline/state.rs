//! The pipeline and its state store: flushes started right after commits, and input paused while the store is
//! behind.

use crate::durable::FlushSource;
use crate::error::PipelineError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::time::Instant;

use super::Pipeline;
use crate::slot::Slot;

impl Pipeline {
    /// After a commit: starts a flush of the changes if one is due (`now`: regardless of the interval, waiting for
    /// it to land, as when releasing partitions or stopping).
    pub(crate) fn flush_state(&mut self, now: bool) -> Result<(), PipelineError> {
        if now {
            // The last cut's flush first, whole.
            self.build_state(None)?;
        }
        let patience = self.budget(crate::durable::RELEASE_PATIENCE);
        let Some(d) = self.durable.as_mut() else {
            return Ok(());
        };
        if now {
            d.settle(patience);
        } else if !d.due() {
            return Ok(());
        }
        // The cut: ledger entries and KPI days taken, the changed debtors listed. Their rows (and the summary, when
        // one is due) are built by `build_state` a slice at a time (all of it now with `now`).
        let cutting = Instant::now();
        d.flush(now, &mut sources(&mut self.slots))?;
        let cut = cutting.elapsed();
        self.flush_build.record(cut.as_secs_f64());
        tracing::debug!(?cut, "State flush cut.");
        if now {
            let patience = self.budget(crate::durable::RELEASE_PATIENCE);
            if let Some(d) = self.durable.as_mut() {
                d.settle(patience);
            }
        }
        Ok(())
    }

    /// Encodes more of the state flush being built, until `until` (`None`: all of it, as before the partitions'
    /// state is dropped). Each slice is a pause of the engine thread, counted like the cut's.
    pub(crate) fn build_state(&mut self, until: Option<Instant>) -> Result<(), PipelineError> {
        let Some(d) = self.durable.as_mut() else {
            return Ok(());
        };
        if !d.building() {
            return Ok(());
        }
        let slice = Instant::now();
        let built = d.build(&mut sources(&mut self.slots), until);
        let slice = slice.elapsed();
        self.flush_build.record(slice.as_secs_f64());
        tracing::trace!(?slice, "State flush slice built.");
        built
    }

    /// Whether a state flush is being built (the engine loop then does not wait for input).
    pub(crate) fn building_state(&self) -> bool {
        self.durable.as_ref().is_some_and(|d| d.building())
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

/// Each partition's part in a flush.
fn sources(slots: &mut std::collections::BTreeMap<i32, Slot>) -> Vec<FlushSource<'_>> {
    slots
        .iter_mut()
        .map(|(p, s)| FlushSource {
            partition: *p,
            worker: &mut s.worker,
            ledger: &mut s.ledger,
            applied: &s.applied,
            flushed: &mut s.flushed,
        })
        .collect()
}
