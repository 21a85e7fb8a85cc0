//! mora's integration tests: one binary, one module per area.

// Helpers outside #[test] functions panic on failure by design: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod api;
mod cql;
mod demo;
mod kafka;
mod pipeline;
mod replay;
mod restore;
mod services;
mod state;
mod utils;
