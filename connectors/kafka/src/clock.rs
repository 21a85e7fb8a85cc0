//! Wall-clock records: with `kafka.clock.source = "wall"`, an instance writes its wall time to the clock topic for
//! every partition it owns, so time moves for debtors who receive no events and a replay of the log sees the same
//! instants the live run saw.

use std::time::{Duration, Instant};

use mora_domain::time::Ts;
use mora_schemas::{ClockTick, Family, Wire, encode_clock};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::client;
use crate::config::{ClockSource, KafkaConfig};
use crate::error::PipelineError;

/// A source of wall time (injectable, so tests can drive it).
pub(crate) type WallClock = fn() -> Ts;

/// The system clock.
pub fn system_time() -> Ts {
    Ts(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

/// Writes a clock record per owned partition every interval.
pub(crate) struct Ticker {
    producer: BaseProducer,
    topic: String,
    interval: Duration,
    last: Option<Instant>,
    now: WallClock,
    /// Records written.
    pub(crate) written: u64,
    /// The registry's id for the clock topic's schema (`None`: the built-in id).
    pub(crate) schema_id: Option<u32>,
}

impl Ticker {
    /// A ticker for `cfg`, or `None` when time comes from the log only.
    pub(crate) fn new(cfg: &KafkaConfig, now: WallClock) -> Result<Option<Self>, PipelineError> {
        if cfg.clock.source != ClockSource::Wall {
            return Ok(None);
        }
        // Clock records are input, not output: they need no transaction, only to reach the log once and in order.
        let producer: BaseProducer = client::plain(cfg)
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        Ok(Some(Self {
            producer,
            topic: cfg.topics.input(Family::Clock),
            interval: cfg.clock.interval,
            last: None,
            now,
            written: 0,
            schema_id: None,
        }))
    }

    /// Writes the records that are due for `partitions`.
    pub(crate) fn tick(&mut self, partitions: &[i32]) -> Result<(), PipelineError> {
        self.producer.poll(Duration::ZERO);
        if partitions.is_empty() || self.last.is_some_and(|l| l.elapsed() < self.interval) {
            return Ok(());
        }
        self.last = Some(Instant::now());
        let at = (self.now)();
        for &p in partitions {
            let mut bytes = encode_clock(
                &ClockTick {
                    source: "wall".into(),
                    partition: p,
                    at,
                },
                Wire::Confluent,
            )?;
            if let Some(id) = self.schema_id {
                mora_schemas::set_schema_id(&mut bytes, id);
            }
            let key = p.to_string();
            let record = BaseRecord::to(&self.topic)
                .partition(p)
                .key(key.as_bytes())
                .payload(&bytes)
                .timestamp(at.0);
            match self.producer.send(record) {
                Ok(()) => self.written += 1,
                // A full queue means the broker is away; the next interval tries again (time simply lags).
                Err((e, _)) => {
                    tracing::warn!(error = %e, partition = p, "Cannot write a clock record.")
                }
            }
        }
        Ok(())
    }

    /// Waits for what was written.
    pub(crate) fn flush(&self, patience: Duration) {
        let _ = self.producer.flush(patience);
    }
}
