//! The lifecycle every stateful stage implements: one required per-record method, hooks with no-op defaults.

use mora_domain::time::Ts;

use crate::sink::{InputRecord, Sink};

/// How many upcoming records' keys a caller passes to [`Operator::prepare`] at a time: about as many cache misses
/// as a core keeps in flight.
pub const PREPARE_AHEAD: usize = 8;

/// A stateful stage owned by one partition.
pub trait Operator {
    /// Handles one input record. Bad records go to the sink's dead-letter port; they never stop the partition.
    fn process(&mut self, record: &InputRecord<'_>, sink: &mut dyn Sink);

    /// A hint: records keyed by `keys` come next, in this order. An operator may load their state ahead so that
    /// its memory reads overlap; what it decides does not change. The default does nothing.
    fn prepare(&self, _keys: &[&[u8]]) {}

    /// The partition was assigned to this instance.
    fn on_assign(&mut self) {}

    /// The partition is being taken away: finish in-flight work.
    fn on_revoke(&mut self, _sink: &mut dyn Sink) {}

    /// Time advanced to `now` with no record: fire what fell due.
    fn on_tick(&mut self, _now: Ts, _sink: &mut dyn Sink) {}

    /// A checkpoint is about to be taken.
    fn on_checkpoint(&mut self) {}
}
