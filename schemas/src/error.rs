//! Decoding and encoding errors. Decoding never panics: every malformed payload maps to one of these.

use thiserror::Error;

/// Why a payload could not be decoded. The record goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload had no bytes.
    #[error("empty payload")]
    Empty,
    /// A Confluent-framed payload shorter than its five-byte header.
    #[error("truncated Confluent header: {0} bytes")]
    TruncatedHeader(usize),
    /// The Confluent schema id is not one this engine knows.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// The schema registry's writer schema for this id is unknown or cannot be read as mora's reader schema.
    #[error("schema id {id}: {reason}")]
    Unresolvable {
        /// The id.
        id: u32,
        /// Why (the registry's answer, or the field at fault).
        reason: String,
    },
    /// The schema id belongs to another kind of record than the topic carries.
    #[error("schema id {id} is a {found} schema, expected {expected}")]
    WrongSchema {
        /// The id.
        id: u32,
        /// Kind of the schema with that id.
        found: &'static str,
        /// Kind the topic carries.
        expected: &'static str,
    },
    /// The Avro body could not be read with the writer schema (truncated, garbage, wrong schema).
    #[error("malformed Avro body: {0}")]
    Malformed(String),
    /// Bytes were left over after the record: the writer schema was not the one claimed.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    /// A field was missing or had an unexpected Avro type.
    #[error("field `{0}`: missing or of the wrong type")]
    Field(&'static str),
    /// A field held a value outside its domain.
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An amount has more decimal places than the schema's scale (4).
    #[error("field `{0}`: more than 4 decimal places would be lost")]
    Precision(&'static str),
    /// The Avro writer refused the value (a bug: the mapping and the schema disagree).
    #[error("Avro encoding failed: {0}")]
    Avro(String),
}
