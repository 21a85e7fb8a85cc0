//! mora's integration tests: one binary, one module per area.
//!
//! Without features, the server-free areas run (`cargo test` on any machine): the demo end to end, restore semantics
//! under thousands of simulated crashes, and the deployment files. With `--features services`, the areas that need
//! the real Kafka broker and CQL database (`deploy/services.sh up` starts them; `deploy/test.sh` does it all) run
//! too, and each fails saying how to start a server when none is reachable.

// Helpers outside #[test] functions panic on failure by design: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod audit_subjects;
mod catch_up;
mod demo;
mod deployment;
mod layering;
mod output_files;
mod policy_channels;
mod restore;
mod utils;

#[cfg(feature = "services")]
mod api;
#[cfg(feature = "services")]
mod cql;
#[cfg(feature = "services")]
mod debtor_log;
#[cfg(feature = "services")]
mod faults;
#[cfg(feature = "services")]
mod fenced;
#[cfg(feature = "services")]
mod kafka;
#[cfg(feature = "services")]
mod ledger;
#[cfg(feature = "services")]
mod pipeline;
#[cfg(feature = "services")]
mod registry;
#[cfg(feature = "services")]
mod replay;
#[cfg(feature = "services")]
mod servers;
#[cfg(feature = "services")]
mod state;
#[cfg(feature = "services")]
mod stored_format;
