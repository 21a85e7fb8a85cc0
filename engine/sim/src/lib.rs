//! # mora-sim
//!
//! A simulated portfolio for demos, load generation and benchmarks. Each partition's debtors are simulated by their
//! own seeded generator, so the same seed and partition count give the same event log on any machine, and
//! partitions can run in parallel without changing it.
//!
//! Debtors follow archetypes (punctual payers, self-curers, debtors who pay after contact, strugglers who pay in
//! part and break promises, defaulters, disputers) and react to the engine's actions: gateways report outcomes,
//! right-party contacts produce promises and payments.
//!
//! ```
//! use mora_sim::{PartitionSim, SimConfig};
//! let cfg = SimConfig { debtors: 50, days: 30, partitions: 1, ..SimConfig::default() };
//! let mut sim = PartitionSim::new(&cfg, 0);
//! let mut n = 0;
//! while sim.pop_until(cfg.end()).is_some() { n += 1; }
//! assert!(n > 50);
//! ```

mod behaviour;
mod config;
mod partition;
mod profile;

pub use config::SimConfig;
pub use partition::{PartitionSim, SimRecord};
