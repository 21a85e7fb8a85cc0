//! # mora-connector-scylla
//!
//! Durable state on ScyllaDB (or any server speaking the same CQL protocol, such as Apache Cassandra).
//!
//! Memory is the working set; the database makes it durable and shareable:
//! - [`migrate`] creates the keyspace and tables of `schemas/cql/` (idempotent);
//! - a partition's changed debtors are flushed in coalesced batches ([`PartitionFlush`], one row per changed
//!   debtor however many events touched it), followed by the partition's checkpoint (the input cut every stored
//!   row reflects at least);
//! - on assignment a partition is restored from its rows and resumes reading from its checkpoint
//!   ([`Store::restore`]); rows written ahead of the checkpoint carry their own cut, so records they already
//!   reflect are skipped for them.
//!
//! [`StateHandle`] drives all of it from the engine's synchronous loop.

mod codec;
mod config;
mod error;
mod rows;
mod store;
mod writer;

pub use codec::{
    AGGREGATE_FORMAT, FORMAT, decode, decode_kpi_day, decode_summary, encode, encode_kpi_day,
    encode_summary,
};
pub use config::{ConsistencyLevel, Replication, StateConfig};
pub use error::StateError;
pub use rows::{Checkpoint, DebtorRow, Offsets, PartitionFlush, ViewChange};
pub use store::{
    Restored, SCHEMA, Store, StoredDecision, Written, migrate, schema_statements, shard_of,
};
pub use writer::{StateHandle, StateStats};
