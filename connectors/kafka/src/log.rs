//! Reading the input log back: one partition of every input topic, from the beginning to a bound, for replays and
//! exports (not the live path: no group, no commits).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mora_runtime::{LogRecord, replay_order};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client;
use crate::config::KafkaConfig;
use crate::error::PipelineError;

const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading may go without a record before giving up on a topic-partition that should have more.
const STALL: Duration = Duration::from_secs(30);

/// Every record of input partition `partition` across the input topics, from the beginning up to (excluding) the
/// topic's offset in `until` (default: its end when reading starts), in the order the engine applies them.
pub fn read_partition_log(
    cfg: &KafkaConfig,
    partition: i32,
    until: &BTreeMap<String, i64>,
) -> Result<Vec<LogRecord>, PipelineError> {
    let consumer: BaseConsumer = client::plain(cfg)
        .set("group.id", format!("{}-replay", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    for topic in cfg.topics.inputs() {
        let (low, high) = consumer.fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)?;
        let end = until.get(&topic).map_or(high, |u| (*u).min(high));
        if end > low {
            tpl.add_partition_offset(&topic, partition, Offset::Beginning)?;
            ends.insert(topic, end);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let Some(end) = ends.get(m.topic()).copied() else {
                    continue;
                };
                if m.offset() < end {
                    let family = cfg.topics.family_of(m.topic()).ok_or_else(|| {
                        PipelineError::Config(format!("{} is not an input topic", m.topic()))
                    })?;
                    out.push(LogRecord {
                        family,
                        topic: m.topic().to_string(),
                        partition,
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis().unwrap_or(0),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    });
                }
                if m.offset() + 1 >= end {
                    ends.remove(m.topic());
                }
            }
            Some(Err(e)) => return Err(e.into()),
            // Transaction markers take offsets without delivering records: a topic whose last offsets are markers
            // ends when its position reaches the bound.
            None => {
                let positions = consumer.position()?;
                for e in positions.elements() {
                    if let (Offset::Offset(p), Some(end)) = (e.offset(), ends.get(e.topic()))
                        && p >= *end
                    {
                        ends.remove(e.topic());
                    }
                }
                if !ends.is_empty() && last_progress.elapsed() > STALL {
                    return Err(PipelineError::Config(format!(
                        "partition {partition}: no progress reading {:?} for {STALL:?}",
                        ends.keys().collect::<Vec<_>>()
                    )));
                }
            }
        }
    }
    replay_order(&mut out);
    Ok(out)
}
