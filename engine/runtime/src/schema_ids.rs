//! The schema-registry port: where the writer schemas of registry-assigned ids come from, and the ids mora's own
//! records are framed with. A connector (the registry client) implements [`SchemaSource`]; the streaming connector
//! asks [`RegistrySchemas::resolve`] for every id it has not seen, before the record is buffered, and frames each
//! output record with [`RegistrySchemas::output_id`] of its topic.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use mora_schemas::{Family, SchemaTable, TableView, WriterSchema};

/// Why a schema could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaFetchError {
    /// The registry answered that it has no schema with this id: the records that carry it cannot be read.
    NotFound(String),
    /// The registry could not be asked (unreachable, timed out, a server error): a transient fault.
    Unavailable(String),
}

impl fmt::Display for SchemaFetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(m) => write!(f, "not found in the schema registry: {m}"),
            Self::Unavailable(m) => write!(f, "schema registry unavailable: {m}"),
        }
    }
}

impl std::error::Error for SchemaFetchError {}

/// A source of writer schemas by id (a schema registry).
pub trait SchemaSource: Send + Sync + fmt::Debug {
    /// The schema text registered under `id`.
    fn schema(&self, id: u32) -> Result<String, SchemaFetchError>;
}

/// The registry mode of an instance: writer schemas by id (fetched once, shared by the engine threads) and the ids
/// of the schemas mora registered (or found) for its output topics.
#[derive(Debug)]
pub struct RegistrySchemas {
    source: Arc<dyn SchemaSource>,
    table: Arc<SchemaTable>,
    outputs: HashMap<String, u32>,
}

impl RegistrySchemas {
    /// `outputs`: schema id per topic mora writes (actions per channel, audit, dead letters, clock).
    pub fn new(
        source: Arc<dyn SchemaSource>,
        table: Arc<SchemaTable>,
        outputs: HashMap<String, u32>,
    ) -> Self {
        Self {
            source,
            table,
            outputs,
        }
    }

    /// A lock-free reader of the writer schemas for one thread.
    pub fn view(&self) -> TableView {
        self.table.view()
    }

    /// Fetches and compiles the writer schema of `id` for `family` into the table. An id the registry does not
    /// have is entered as refused (its records are dead-lettered with the reason); an unavailable registry is
    /// returned as the error, with nothing entered, for the caller to retry. Returns the refusal's reason, if any.
    pub fn resolve(&self, family: Family, id: u32) -> Result<Option<String>, SchemaFetchError> {
        let entry = match self.source.schema(id) {
            Ok(text) => WriterSchema::for_family(family, &text),
            Err(e @ SchemaFetchError::NotFound(_)) => WriterSchema::Refused(e.to_string()),
            Err(e) => return Err(e),
        };
        let refused = match &entry {
            WriterSchema::Refused(reason) => Some(reason.clone()),
            _ => None,
        };
        self.table.insert(family, id, entry);
        Ok(refused)
    }

    /// The id to frame records of `topic` with (`None`: a topic mora did not register).
    pub fn output_id(&self, topic: &str) -> Option<u32> {
        self.outputs.get(topic).copied()
    }
}
