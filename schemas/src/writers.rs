//! Writer schemas by schema id, for records framed with ids a schema registry assigned.
//!
//! With a registry, the four bytes after the magic byte are whatever id the producer's registry gave its schema.
//! The connector fetches each new id's schema once and compiles it here against mora's reader schema for the topic's
//! family ([`WriterSchema::for_family`]); the [`SchemaTable`] shares the compiled entries between engine threads,
//! each of which reads them through a [`TableView`] without locking on the per-record path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use mora_domain::event::Envelope;

use crate::clock::{ClockTick, decode_clock};
use crate::error::DecodeError;
use crate::registry::{Family, Registry, SchemaKind};
use crate::resolve::Transcoder;

/// How records that carry one writer schema id are read.
#[derive(Debug, Clone)]
pub enum WriterSchema {
    /// The writer schema is mora's current schema of the family: bodies are read as they are.
    Current,
    /// An evolved writer schema: bodies are rewritten into the reader's layout, then read.
    Transcoded(Transcoder),
    /// Records with this id cannot be read; the reason goes with them to the dead-letter topic.
    Refused(String),
}

thread_local! {
    /// Scratch space for transcoded bodies (one per thread, reused).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The 4-byte schema id of a Confluent-framed payload.
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Writes `id` into a Confluent-framed payload's header (mora's writers frame with its built-in ids).
pub fn set_schema_id(bytes: &mut [u8], id: u32) {
    if let [0, rest @ ..] = bytes
        && let Some(header) = rest.first_chunk_mut::<4>()
    {
        *header = id.to_be_bytes();
    }
}

impl WriterSchema {
    /// Compiles the registry's schema text `writer` for records of `family` against mora's current reader schema.
    /// Never fails: a schema that cannot be read becomes [`WriterSchema::Refused`] with the reason.
    pub fn for_family(family: Family, writer: &str) -> Self {
        let schema = match Schema::parse_str(writer) {
            Ok(s) => s,
            Err(e) => return Self::Refused(format!("the writer schema does not parse: {e}")),
        };
        let (_, reader) = Registry::global().current(SchemaKind::Event(family));
        match Transcoder::compile(&schema, reader) {
            Ok(t) if t.is_identity() => Self::Current,
            Ok(t) => Self::Transcoded(t),
            Err(e) => Self::Refused(format!(
                "the writer schema cannot be read as mora's {} schema: {e}",
                family.name()
            )),
        }
    }

    /// Runs `read` on the record's body in the reader's layout. `bytes` is the whole Confluent-framed payload.
    fn with_body<T>(
        &self,
        bytes: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let id = schema_id(bytes).ok_or(DecodeError::TruncatedHeader(bytes.len()))?;
        let body = &bytes[5..];
        match self {
            Self::Current => read(body),
            Self::Transcoded(t) => SCRATCH.with(|s| {
                let mut scratch = s.borrow_mut();
                scratch.clear();
                t.transcode(body, &mut scratch)?;
                read(&scratch)
            }),
            Self::Refused(reason) => Err(DecodeError::Unresolvable {
                id,
                reason: reason.clone(),
            }),
        }
    }

    /// Decodes an event of `family` framed with this writer schema's id.
    pub fn decode_event(&self, family: Family, bytes: &[u8]) -> Result<Envelope, DecodeError> {
        if family == Family::Clock {
            return crate::decode_event(family, bytes);
        }
        self.with_body(bytes, |body| match body {
            // The fast reader treats a leading zero as a frame; a body's first field is a non-empty string.
            [0, ..] | [] => Err(DecodeError::Malformed("record truncated".into())),
            _ => crate::fast::decode_current(family, body),
        })
    }

    /// Decodes a clock record framed with this writer schema's id.
    pub fn decode_clock(&self, bytes: &[u8]) -> Result<ClockTick, DecodeError> {
        self.with_body(bytes, |body| match body {
            [0, ..] | [] => Err(DecodeError::Malformed("record truncated".into())),
            _ => decode_clock(body),
        })
    }
}

type Entries = HashMap<(Family, u32), Arc<WriterSchema>>;

/// Compiled writer schemas by (topic family, schema id), shared by the engine threads. Bounded: a table that
/// reaches its capacity starts again empty (entries are fetched again as their ids come back).
#[derive(Debug)]
pub struct SchemaTable {
    version: AtomicU64,
    entries: Mutex<Arc<Entries>>,
    capacity: usize,
}

impl SchemaTable {
    /// An empty table of at most 1 000 entries.
    pub fn new() -> Arc<Self> {
        Self::with_capacity(1000)
    }

    /// An empty table of at most `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU64::new(0),
            entries: Mutex::new(Arc::new(HashMap::new())),
            capacity: capacity.max(1),
        })
    }

    fn snapshot(&self) -> Arc<Entries> {
        self.entries
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Whether an entry for `id` in `family` exists.
    pub fn contains(&self, family: Family, id: u32) -> bool {
        self.snapshot().contains_key(&(family, id))
    }

    /// Adds (or replaces) the entry for `id` in `family`.
    pub fn insert(&self, family: Family, id: u32, writer: WriterSchema) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = if guard.len() >= self.capacity {
            HashMap::new()
        } else {
            (**guard).clone()
        };
        next.insert((family, id), Arc::new(writer));
        *guard = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader of the table for one thread.
    pub fn view(self: &Arc<Self>) -> TableView {
        TableView {
            table: self.clone(),
            seen: self.version.load(Ordering::Acquire),
            entries: self.snapshot(),
        }
    }
}

/// One thread's reader of a [`SchemaTable`]: a snapshot refreshed when the table has grown, so a lookup costs one
/// atomic load and a hash probe, with nothing written to memory other threads read.
#[derive(Debug, Clone)]
pub struct TableView {
    table: Arc<SchemaTable>,
    seen: u64,
    entries: Arc<Entries>,
}

impl TableView {
    /// The entry for `id` in `family`, if the table has one.
    pub fn get(&mut self, family: Family, id: u32) -> Option<&WriterSchema> {
        let now = self.table.version.load(Ordering::Acquire);
        if now != self.seen {
            self.entries = self.table.snapshot();
            self.seen = now;
        }
        self.entries.get(&(family, id)).map(|w| &**w)
    }
}
