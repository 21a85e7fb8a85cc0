//! Simulation parameters.

use chrono::NaiveDate;
use mora_domain::time::{Ts, local_midnight};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Debtors in the whole portfolio (spread over partitions by Kafka's partitioner on their ids).
    pub debtors: u64,
    /// Simulated days.
    pub days: u32,
    /// Seed; with `partitions`, fixes the whole event log.
    pub seed: u64,
    /// First simulated day (UTC midnight).
    pub start: NaiveDate,
    /// Partitions of the portfolio.
    pub partitions: u32,
    /// Share of records replaced by undecodable bytes, to exercise the dead-letter path.
    pub poison_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            debtors: 100_000,
            days: 120,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default(),
            partitions: 4,
            poison_rate: 1.0 / 20_000.0,
        }
    }
}

impl SimConfig {
    /// First simulated instant.
    pub fn start_ts(&self) -> Ts {
        local_midnight(self.start, chrono_tz::UTC)
    }

    /// Last simulated instant (exclusive).
    pub fn end(&self) -> Ts {
        self.start_ts()
            .plus_ms(i64::from(self.days) * mora_domain::time::DAY_MS)
    }

    /// The id of debtor number `n`.
    pub fn debtor_id(n: u64) -> String {
        format!("D{n:08}")
    }
}
