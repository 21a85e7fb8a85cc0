//! The durable-state port: what the pipeline needs from a state store, and the data that crosses it.
//!
//! Memory is the working set; a store makes it durable and lets another instance take a partition over. The
//! pipeline drives a [`StateStore`] from its synchronous loop:
//! - on assignment it [restores](StateStore::restore) a partition: the stored debtors, the partition's
//!   [`Checkpoint`] (the input cut every stored row reflects at least), and the rows written ahead of it;
//! - right after each commit it [submits](StateStore::submit) a [`PartitionFlush`] per changed partition: one row
//!   per changed debtor however many events touched it, the ledger entries, and the checkpoint, which the store
//!   writes last, once every row has landed;
//! - it paces input by the store's [lag](StateStore::lag): past `max_lag` it pauses consumption until the flush in
//!   flight lands.
//!
//! The ScyllaDB connector implements the port; the binary wires it in. The stored bytes ([`codec`]) belong to the
//! runtime, so every store keeps the same format.

pub mod codec;
mod cut;
mod flush;
mod layout;

use std::time::Duration;

use mora_domain::debtor::Debtor;
use mora_domain::ids::DebtorId;

pub(crate) use cut::Cut;
pub(crate) use flush::plan_sweep;
pub use flush::{Checkpoint, DebtorRow, Offsets, PartitionFlush, Sweep, SweepMark, ViewChange};

use crate::error::{BoxError, Classify, ErrorClass};
use crate::kpis::LabelledDay;

/// What a restore read for one partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// The stored cut, if the partition was ever flushed.
    pub checkpoint: Option<Checkpoint>,
    /// Stored debtors.
    pub debtors: Vec<Debtor>,
    /// Debtors stored ahead of the checkpoint, with their `applied` cut (a flush wrote them, then stopped before
    /// advancing the checkpoint).
    pub ahead: Vec<(DebtorId, Offsets)>,
    /// Stored KPI days (days since the epoch), newest first.
    pub kpi_days: Vec<(i64, LabelledDay)>,
}

/// The store's settings the pipeline paces itself by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// How often changed debtors are flushed.
    pub flush_interval: Duration,
    /// How far the store may fall behind (a flush in flight for this long) before input pauses.
    pub max_lag: Duration,
    /// Whether audit records are kept in the store's ledger.
    pub audit_ledger: bool,
    /// Whether flushes carry membership changes ([`ViewChange`]s) for the store to write.
    pub membership_views: bool,
    /// How often a changed partition publishes its summary for other instances.
    pub summary_interval: Duration,
    /// Work-queue entries per queue in a published summary.
    pub summary_queue_depth: usize,
    /// Whether the store keeps states as a log it compacts after each [`Sweep`]: then every flush also rewrites as
    /// many debtors of the partition, in slot order, as it has changed rows.
    pub sweep: bool,
}

/// Counters of the write-behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Flushes written.
    pub flushes: u64,
    /// Debtor rows written (changed debtors and those a sweep rewrote).
    pub rows: u64,
    /// Of those, rows a sweep rewrote.
    pub swept: u64,
    /// Statements written (rows, views, ledger, checkpoints).
    pub statements: u64,
    /// Requests sent to the store (a batch of statements is one).
    pub requests: u64,
    /// Failed attempts (each retried).
    pub failed_attempts: u64,
    /// Debtors restored from the store.
    pub restored_debtors: u64,
    /// Milliseconds the last completed flush took, retries included.
    pub last_flush_ms: u64,
}

impl StoreStats {
    /// Adds another handle's counters (the engine threads of one instance); the last flush's time is the longest.
    pub fn add(&mut self, other: &StoreStats) {
        self.flushes += other.flushes;
        self.rows += other.rows;
        self.swept += other.swept;
        self.statements += other.statements;
        self.requests += other.requests;
        self.failed_attempts += other.failed_attempts;
        self.restored_debtors += other.restored_debtors;
        self.last_flush_ms = self.last_flush_ms.max(other.last_flush_ms);
    }
}

/// Why the store could not serve a request, classified by what the caller does about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer, or refused for now, and kept doing so past the caller's patience.
    #[error("the state store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store cannot serve this instance until an operator acts: not set up, invalid settings, or stored rows
    /// this version cannot read.
    #[error("the state store cannot be used: {0}")]
    Unusable(#[source] BoxError),
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unavailable(_) => ErrorClass::Transient,
            StoreError::Unusable(_) => ErrorClass::Fatal,
        }
    }
}

/// A state store as the pipeline uses it: restores gate a partition's start and run to completion; flushes run in
/// the background, one at a time, retried by the store until they land (writes are idempotent).
pub trait StateStore: Send + std::fmt::Debug {
    /// The settings the pipeline paces itself by.
    fn settings(&self) -> StoreSettings;

    /// Reads partition `partition`'s stored state, retrying for up to `patience` while the store is unavailable
    /// (the partition cannot start without it).
    fn restore(&mut self, partition: i32, patience: Duration) -> Result<Restored, StoreError>;

    /// Starts writing `flushes` in the background: each partition's rows, ledger entries and aggregates, then its
    /// checkpoint. Call only when not [busy](StateStore::busy).
    fn submit(&mut self, flushes: Vec<PartitionFlush>);

    /// Whether the flush in flight completed since the last call (`Some(true)`), is still out (`Some(false)`), or
    /// there is none (`None`).
    fn poll(&mut self) -> Option<bool>;

    /// Whether a flush is being written.
    fn busy(&self) -> bool;

    /// Waits up to `timeout` for the flush in flight; returns whether none is left.
    fn wait(&mut self, timeout: Duration) -> bool;

    /// How long the store has been behind: since the flush in flight started, or zero when idle.
    fn lag(&self) -> Duration;

    /// Time since the last flush completed.
    fn since_last_flush(&self) -> Duration;

    /// Counters so far.
    fn stats(&self) -> StoreStats;

    /// A further handle on the same store for another engine thread: it shares the connection and has a flush in
    /// flight, a lag and counters of its own.
    fn another(&self) -> Box<dyn StateStore>;
}
