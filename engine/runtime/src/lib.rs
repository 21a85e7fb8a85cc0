//! # mora-runtime
//!
//! Partition workers: each owns the debtors of one input partition in a plain map (no locks on the hot path), a
//! timer index ordered by instant, and the partition's work queues. Records come in through
//! [`Operator::process`], time through [`Operator::on_tick`]; decisions go out through a [`Sink`]. Sources
//! (Kafka, the simulator) and sinks (Kafka topics, files) live in other crates and only see these ports; so does the
//! state store, through the [`StateStore`] port of [`durable`].
//!
//! ```
//! use mora_runtime::{CollectingSink, Operator, PartitionWorker};
//! use mora_domain::testkit;
//! let mut worker = PartitionWorker::new(0, std::sync::Arc::new(testkit::engine()));
//! let mut sink = CollectingSink::default();
//! let at = testkit::ts("2026-03-02T14:00:00Z");
//! worker.on_event(&testkit::debtor_upserted("D-1", "CO", "America/Bogota", at), &mut sink).unwrap();
//! worker.on_event(&testkit::obligation("D-1", "L1", "COP", "400000", "2026-03-10", at), &mut sink).unwrap();
//! worker.on_tick(testkit::ts("2026-03-12T00:00:00Z"), &mut sink);
//! assert_eq!(sink.actions.len(), 2); // an e-mail reminder at D-3, an SMS at D+1
//! ```

mod changes;
pub mod durable;
mod error;
mod kpis;
mod operator;
mod partitioner;
mod portfolio;
mod schema_ids;
mod sink;
mod stats;
mod store;
mod summary;
mod timers;
mod worker;

pub use changes::{Fences, ViewKeys};
pub use durable::{
    Checkpoint, DebtorRow, Offsets, PartitionFlush, Restored, StateStore, StoreError,
    StoreSettings, StoreStats, Sweep, SweepMark, ViewChange,
};
pub use error::{BoxError, Classify, ErrorClass, chain as error_chain};
pub use kpis::{
    Dim, KpiCounts, KpiRates, LabelledDay, RETENTION_DAYS as KPI_RETENTION_DAYS, Rate, dim_label,
    dim_of_label, label_dims, window_of_days,
};
pub use operator::{Operator, PREPARE_AHEAD};
pub use partitioner::{murmur2, partition_for};
pub use portfolio::{Portfolio, Tally};
pub use schema_ids::{RegistrySchemas, SchemaFetchError, SchemaSource};
pub use sink::{CollectingSink, InputRecord, LogRecord, Sink, replay_order};
pub use stats::{ArmStats, WorkerStats};
pub use store::DebtorStore;
pub use summary::{PartitionSummary, QueueEntry, QueueHead};
pub use timers::TimerIndex;
pub use worker::PartitionWorker;
