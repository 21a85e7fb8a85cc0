//! Errors of the state store.

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Invalid settings (names the field).
    #[error("invalid state configuration: {0}")]
    Config(String),
    /// The database could not be reached or refused a statement.
    #[error("database: {0}")]
    Database(String),
    /// The keyspace has not been created.
    #[error("keyspace `{0}` is not initialised: run `mora migrate --config FILE` first")]
    NotMigrated(String),
    /// A stored row could not be read back.
    #[error("stored row for debtor `{debtor}` is unreadable: {reason}")]
    Corrupt {
        /// Debtor id.
        debtor: String,
        /// Why.
        reason: String,
    },
}

impl StateError {
    pub(crate) fn db(e: impl std::fmt::Display) -> Self {
        StateError::Database(e.to_string())
    }
}
