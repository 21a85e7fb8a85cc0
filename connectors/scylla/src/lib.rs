//! # mora-connector-scylla
//!
//! Durable state on ScyllaDB (or any server speaking the same CQL protocol, such as Apache Cassandra).
//!
//! Memory is the working set; the database makes it durable and shareable:
//! - [`migrate`] creates the keyspace and tables of `cql/` beside this crate (idempotent);
//! - a partition's changed debtors are flushed in coalesced batches ([`mora_runtime::PartitionFlush`], one row per changed
//!   debtor however many events touched it), followed by the partition's checkpoint (the input cut every stored
//!   row reflects at least);
//! - on assignment a partition is restored from its rows and resumes reading from its checkpoint
//!   ([`Store::restore`]); rows written ahead of the checkpoint carry their own cut, so records they already
//!   reflect are skipped for them.
//!
//! [`StateHandle`] implements the runtime's durable-state port ([`mora_runtime::StateStore`]) on it: the binary
//! connects one and hands it to the pipeline, which never names this crate.

mod config;
mod error;
mod store;
mod writer;

pub use config::{ConsistencyLevel, Replication, StateConfig};
pub use error::StateError;
pub use store::{
    ChunkError, LedgerChunkError, LedgerRecord, SCHEMA, Store, Written, migrate, schema_statements,
    shard_of,
};
pub use writer::StateHandle;
