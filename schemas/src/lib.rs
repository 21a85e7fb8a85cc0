//! # mora-schemas
//!
//! The Avro contract between mora and core banking, ERPs and channel gateways. The `.avsc` files in `avro/` are the
//! source of truth; this crate embeds and parses them once and maps records to the domain's types.
//!
//! Input records arrive either as raw Avro (written with the current schema of their topic family) or in the
//! Confluent wire format (a zero magic byte, a four-byte big-endian schema id, then the Avro body), which lets
//! producers still on an older schema version be read through Avro schema resolution.
//!
//! ```
//! use mora_schemas::{Family, Wire, decode_event, encode_event};
//! use mora_domain::testkit;
//! let ev = testkit::payment("D-1", "P-1", "USD", "12.50", None, testkit::ts("2026-03-02T14:00:00Z"));
//! let bytes = encode_event(&ev, Wire::Confluent).unwrap();
//! assert_eq!(decode_event(Family::Payment, &bytes).unwrap(), ev);
//! ```

mod clock;
mod codec;
mod error;
mod events;
mod fast;
mod outputs;
mod registry;
mod resolve;
mod symbols;
mod write;
mod writers;

pub use clock::{ClockTick, decode_clock, encode_clock};
pub use error::{DecodeError, EncodeError};
pub use events::{decode_event, decode_event_generic, encode_event, family_of};
pub use outputs::{
    DeadLetter, decode_action, decode_audit, decode_dead_letter, encode_action,
    encode_action_generic, encode_audit, encode_audit_generic, encode_dead_letter,
};
pub use registry::{Family, Registry, SchemaKind, Wire};
pub use resolve::{ResolveError, Transcoder};
pub use writers::{SchemaTable, TableView, WriterSchema, schema_id, set_schema_id};
