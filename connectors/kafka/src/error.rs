//! What can stop the pipeline, classified by who must act.

use mora_runtime::durable::codec::CodecError;
use mora_runtime::{Classify, ErrorClass, StoreError};
use thiserror::Error;

/// An error that stops the pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The configuration is wrong (an operator must fix it; the message names the field).
    #[error("configuration: {0}")]
    Config(String),
    /// Input topics are missing or not co-partitioned (an operator must fix the topics).
    #[error("topics: {0}")]
    Topics(String),
    /// The Kafka client failed in a way retrying will not fix (fenced producer, authorization, ...).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The state store failed in a way retrying did not fix (unreachable past the patience, not set up, corrupt).
    #[error("state store, partition {partition}: {source}")]
    Restore {
        /// The partition being restored.
        partition: i32,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A changed debtor or aggregate could not be encoded for the state store (a bug).
    #[error("state store: {0}")]
    Encode(#[from] CodecError),
    /// A record mora writes could not be encoded (a bug: every record it builds fits its schema).
    #[error("encoding an output record: {0}")]
    Output(#[from] mora_schemas::EncodeError),
    /// The schema registry could not be asked for a writer schema.
    #[error("schema registry: {0}")]
    Registry(String),
    /// The engine thread could not start, or ended without saying why.
    #[error("engine thread: {0}")]
    Thread(String),
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Kafka(rdkafka::error::KafkaError::Transaction(t))
                if t.is_retriable() =>
            {
                ErrorClass::Transient
            }
            PipelineError::Restore { source, .. } => source.class(),
            PipelineError::Registry(_) => ErrorClass::Transient,
            PipelineError::Config(_)
            | PipelineError::Topics(_)
            | PipelineError::Kafka(_)
            | PipelineError::Encode(_)
            | PipelineError::Output(_)
            | PipelineError::Thread(_) => ErrorClass::Fatal,
        }
    }
}
