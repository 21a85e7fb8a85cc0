//! Errors of the state store, classified for the loop that meets them.

use mora_runtime::durable::codec::CodecError;
use mora_runtime::{BoxError, Classify, ErrorClass, StoreError};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Invalid settings (names the field).
    #[error("invalid state configuration: {0}")]
    Config(String),
    /// No node of the database could be reached.
    #[error(
        "cannot connect to {nodes:?} (is the database running? `deploy/services.sh up` starts one): {source}"
    )]
    Connect {
        /// The contact points tried.
        nodes: Vec<String>,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database timed out or refused a request.
    #[error("database: {0}")]
    Database(#[source] BoxError),
    /// A statement failed (names it).
    #[error("database: {statement}: {source}")]
    Statement {
        /// The statement, as sent.
        statement: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The keyspace has not been created.
    #[error("keyspace `{0}` is not initialised: run `mora migrate --config FILE` first")]
    NotMigrated(String),
    /// A stored value could not be read back (or a value could not be encoded).
    #[error(transparent)]
    Corrupt(#[from] CodecError),
    /// A chunk of the debtor log could not be read.
    #[error("debtor log of partition {partition}, shard {shard}: {source}")]
    Chunk {
        /// Kafka partition.
        partition: i32,
        /// Shard.
        shard: i16,
        /// What is wrong with the chunk.
        source: crate::store::ChunkError,
    },
    /// A chunk of the ledger could not be read.
    #[error("ledger of partition {partition}, shard {shard}, day {day}: {source}")]
    LedgerChunk {
        /// Kafka partition.
        partition: i32,
        /// Shard.
        shard: i16,
        /// Day (since the epoch).
        day: i32,
        /// What is wrong with the chunk.
        source: crate::store::LedgerChunkError,
    },
    /// A ledger entry could not be encoded for writing or decoded when read.
    #[error("ledger entry of debtor `{debtor}`: {reason}")]
    Ledger {
        /// The debtor.
        debtor: String,
        /// What the Avro codec said.
        reason: String,
    },
}

impl StateError {
    /// A driver error, kept as the source.
    pub(crate) fn db(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StateError::Database(Box::new(e))
    }

    /// A driver error raised by `statement`.
    pub(crate) fn statement(
        statement: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StateError::Statement {
            statement: statement.to_string(),
            source: Box::new(e),
        }
    }
}

impl Classify for StateError {
    fn class(&self) -> ErrorClass {
        match self {
            StateError::Connect { .. } | StateError::Database(_) | StateError::Statement { .. } => {
                ErrorClass::Transient
            }
            StateError::Config(_)
            | StateError::NotMigrated(_)
            | StateError::Corrupt(_)
            | StateError::Chunk { .. }
            | StateError::LedgerChunk { .. }
            | StateError::Ledger { .. } => ErrorClass::Fatal,
        }
    }
}

impl From<StateError> for StoreError {
    fn from(e: StateError) -> Self {
        match e.class() {
            ErrorClass::Transient => StoreError::Unavailable(Box::new(e)),
            _ => StoreError::Unusable(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_is_transient_and_unmigrated_is_fatal_with_its_cause_kept() {
        let down = StateError::db(std::io::Error::other("connection refused"));
        assert_eq!(down.class(), ErrorClass::Transient);
        let port: StoreError = down.into();
        assert!(matches!(port, StoreError::Unavailable(_)));
        assert!(
            mora_runtime::error_chain(&port).contains("connection refused"),
            "{}",
            mora_runtime::error_chain(&port)
        );
        let missing: StoreError = StateError::NotMigrated("mora".into()).into();
        assert_eq!(missing.class(), ErrorClass::Fatal);
        assert!(mora_runtime::error_chain(&missing).contains("mora migrate"));
    }
}
