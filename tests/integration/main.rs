//! mora's integration tests: one binary, one module per area.

mod demo;
mod utils;
