//! Where records come from and decisions go: the ports connectors implement.

use mora_domain::action::{Action, AuditRecord};
use mora_schemas::{DeadLetter, Family, WriterSchema};

/// One input record as a source delivers it.
#[derive(Clone, Copy, Debug)]
pub struct InputRecord<'a> {
    /// Topic family (decides the schema).
    pub family: Family,
    /// Topic name (for dead letters).
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key (the debtor id).
    pub key: Option<&'a [u8]>,
    /// Avro payload.
    pub payload: &'a [u8],
    /// How to read the payload when its schema id was assigned by a schema registry: the writer schema the
    /// connector fetched for that id, compiled against mora's reader. `None`: raw Avro or mora's built-in ids.
    pub writer: Option<&'a WriterSchema>,
}

/// Receives a partition's decisions.
pub trait Sink {
    /// An action cleared by the compliance guard.
    fn action(&mut self, partition: i32, action: &Action);
    /// An audit record.
    fn audit(&mut self, _partition: i32, _record: &AuditRecord) {}
    /// A record that could not be used.
    fn dead_letter(&mut self, partition: i32, record: DeadLetter);
}

/// A sink that keeps everything in memory (tests, examples, feedback loops).
#[derive(Debug, Default)]
pub struct CollectingSink {
    /// Actions.
    pub actions: Vec<Action>,
    /// Audit records.
    pub audits: Vec<AuditRecord>,
    /// Dead letters.
    pub dead_letters: Vec<DeadLetter>,
}

impl Sink for CollectingSink {
    fn action(&mut self, _: i32, action: &Action) {
        self.actions.push(action.clone());
    }

    fn audit(&mut self, _: i32, record: &AuditRecord) {
        self.audits.push(record.clone());
    }

    fn dead_letter(&mut self, _: i32, record: DeadLetter) {
        self.dead_letters.push(record);
    }
}

/// An input record held in memory (a replay's log, an export file's line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Topic family.
    pub family: Family,
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp (milliseconds since the epoch).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl LogRecord {
    /// The record as a worker takes it.
    pub fn as_input(&self) -> InputRecord<'_> {
        InputRecord {
            family: self.family,
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            payload: &self.payload,
            writer: None,
        }
    }
}

/// Puts one partition's records from all its topics in the order the engine applies them: timestamp, then topic
/// name, then offset (the live pipeline picks the smallest timestamp among the topics' heads, ties by topic name).
pub fn replay_order(records: &mut [LogRecord]) {
    records
        .sort_by(|a, b| (a.timestamp, &a.topic, a.offset).cmp(&(b.timestamp, &b.topic, b.offset)));
}
