//! The input log every run replays: the simulator's realistic mix over the whole portfolio, generated once (before
//! anything is timed) and kept in memory, so every system and mode sees the same records in the same order.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use mora_domain::engine::Engine;
use mora_domain::time::{DAY_MS, Ts};
use mora_loadgen::{GeneratedRecord, LoadgenOptions, generate};
use mora_schemas::Family;

/// The generated log, extended on demand from a generator thread that waits while nobody asks for more.
#[derive(Debug)]
pub(super) struct Log {
    /// Records so far, in production order.
    pub records: Vec<GeneratedRecord>,
    /// Where the warm-up ends (records before it are produced as a backlog).
    pub warmup: usize,
    rx: Receiver<GeneratedRecord>,
    _generator: JoinHandle<()>,
}

impl Log {
    /// Starts generating `debtors` over `partitions` partitions and takes the first `warmup_days` simulated days as the
    /// warm-up backlog.
    pub(super) fn new(
        debtors: u64,
        partitions: u32,
        seed: u64,
        warmup_days: f64,
        engine: Arc<Engine>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel::<GeneratedRecord>(50_000);
        let opts = LoadgenOptions {
            debtors,
            events: u64::MAX,
            rate: None,
            seed,
            days: 3650,
        };
        let generator = std::thread::Builder::new()
            .name("e2e-generator".into())
            .spawn(move || {
                let _ = generate(&opts, partitions, engine, |rec| Ok(tx.send(rec).is_ok()));
            })?;
        let mut log = Self {
            records: Vec::new(),
            warmup: 0,
            rx,
            _generator: generator,
        };
        let start = mora_sim::SimConfig::default().start_ts();
        let end = start.plus_ms((warmup_days * DAY_MS as f64) as i64);
        loop {
            let rec = log.rx.recv()?;
            let past = rec.at >= end;
            log.records.push(rec);
            if past {
                break;
            }
        }
        log.warmup = log.records.len() - 1;
        Ok(log)
    }

    /// Makes sure at least `n` records exist.
    pub(super) fn ensure(&mut self, n: usize) -> anyhow::Result<()> {
        while self.records.len() < n {
            self.records.push(self.rx.recv()?);
        }
        Ok(())
    }

    /// Debtor events (not clock records) in `records[range]`.
    pub(super) fn events_in(&self, range: std::ops::Range<usize>) -> u64 {
        self.records[range]
            .iter()
            .filter(|r| r.family != Family::Clock)
            .count() as u64
    }

    /// The simulated instant of the last warm-up record.
    pub(super) fn warmup_until(&self) -> Ts {
        self.records
            .get(self.warmup.saturating_sub(1))
            .map_or(Ts(0), |r| r.at)
    }
}
