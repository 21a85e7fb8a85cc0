//! # mora-connector-kafka
//!
//! The streaming engine: a consumer group member reads the co-partitioned input topics, hands each record to the
//! worker that owns its partition, and writes actions (one topic per channel), audit records and dead letters.
//!
//! - `config`: the `[kafka]` section of `mora.toml`, security settings and raw librdkafka options.
//! - `topics`: topic names and the co-partitioning check.
//! - `slot`: one assigned partition: its worker, the records received per topic, and timestamp order across topics.
//! - `pipeline`: the partitions, pending offsets and the transaction cycle.
//! - `context`: rebalance handling (commit before releasing partitions, rebuild state on assignment).
//! - `ends`: where each input partition ends on the broker, from the client's statistics.
//! - `stats`: the counters an instance reports.
//! - `durable`: restore from the state store on assignment, coalesced flushes after commits, pausing while the
//!   database is behind.
//! - `run`: the loop, on a dedicated thread (the client's transaction calls block).

mod client;
mod clock;
mod config;
mod context;
mod durable;
mod ends;
mod error;
mod log;
mod pipeline;
mod run;
mod sink;
mod slot;
mod stats;
mod topics;

pub use client::plain as client_config;
pub use clock::system_time;
pub use config::{
    ClockConfig, ClockSource, DeliveryMode, KafkaConfig, SecurityConfig, TopicsConfig,
};
pub use error::PipelineError;
pub use log::read_partition_log;
pub use run::{InstanceView, ReloadReport, RunHandle, run, run_with_registry, run_with_state};
pub use stats::RunStats;
pub use topics::{check_co_partitioned, create_topics};
