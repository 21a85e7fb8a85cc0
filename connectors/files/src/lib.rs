//! # mora-connector-files
//!
//! Sinks that write a partition's decisions as JSON Lines: `actions/<channel>.jsonl` (one action per line),
//! `dead_letters.jsonl`, and optionally `audit.jsonl`. Each partition writes its own directory so that parallel
//! partitions never interleave; [`merge_partitions`] then concatenates them in partition order, which keeps the
//! output byte-identical from run to run.

mod log_file;
mod merge;
mod sink;

pub use log_file::{read_log, write_log};
pub use merge::merge_partitions;
pub use sink::JsonlSink;
