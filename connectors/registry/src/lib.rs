//! # mora-connector-registry
//!
//! A client of a schema registry's Confluent-compatible REST API (Confluent Schema Registry, Apicurio Registry's
//! `/apis/ccompat/v7`, and others that serve it), for producers and consumers that frame Avro with the registry's
//! ids (`KafkaAvroSerializer` and its peers):
//! - [`RegistryClient`] implements the runtime's [`mora_runtime::SchemaSource`]: the writer schema of an id a
//!   producer's registry assigned, fetched once per id;
//! - [`outputs::prepare`] registers (or, with `auto_register = false`, looks up) mora's output schemas under the
//!   subjects of its output topics, so gateways read them with `KafkaAvroDeserializer` as they are;
//! - [`outputs::check`] and [`outputs::register_inputs`] are `mora schemas check` and `mora schemas register`.
//!
//! Without a `[schema_registry]` section mora frames with its built-in ids and none of this runs.

mod client;
mod config;
pub mod outputs;

pub use client::{RegistryClient, RegistryError};
pub use config::{RegistryConfig, SubjectNaming};
