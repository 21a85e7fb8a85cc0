//! # mora
//!
//! The engine's application layer: configuration loading and the commands of the `mora` binary. The decision core
//! is `mora-domain`, the partition runtime `mora-runtime`.
//!
//! ```no_run
//! let loaded = mora::config::load(None).expect("built-in configuration");
//! let args = mora::demo::DemoArgs::small("out/example");
//! let summary = mora::demo::run(&args, loaded.engine).expect("demo");
//! println!("{}", summary.render());
//! ```

pub mod api;
pub mod config;
pub mod demo;
pub mod replay;
pub mod schemas;
pub mod stream;
pub mod telemetry;
