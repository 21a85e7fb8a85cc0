//! What can stop the pipeline, classified by who must act.

use thiserror::Error;

/// An error that stops the pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The configuration is wrong (an operator must fix it).
    #[error("configuration: {0}")]
    Config(String),
    /// Input topics are missing or not co-partitioned (an operator must fix the topics).
    #[error("topics: {0}")]
    Topics(String),
    /// The Kafka client failed in a way retrying will not fix (fenced producer, authorization, ...).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The state store failed in a way retrying did not fix (unreachable past the patience, not migrated, corrupt).
    #[error("state store: {0}")]
    State(String),
}
