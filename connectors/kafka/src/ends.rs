//! Where each input topic-partition ends on the broker, as librdkafka's statistics report it (no extra requests):
//! ordering across topics waits only for topics that still hold records this instance has not received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::statistics::Statistics;

/// How long after a partition is assigned its reported bounds are not trusted: the client keeps a partition's
/// offsets from an earlier assignment until its first fetch answers, and an end from back then makes a topic that
/// moved on meanwhile (under another owner) look caught up. Ten statistics reports and twice the broker's longest
/// fetch wait (500 ms by default).
pub(crate) const TRUST_AFTER: Duration = Duration::from_millis(1000);

/// The bounds known per (topic, partition), and the partitions assigned too recently to trust.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ends {
    /// Per (topic, partition): the log start offset and the offset up to which the broker holds readable records
    /// (last stable offset, as `read_committed` sees it).
    pub bounds: HashMap<(String, i32), (i64, i64)>,
    /// Partitions assigned lately, and when their statistics become trusted.
    distrust_until: HashMap<(String, i32), Instant>,
}

/// Shared between the statistics callback and the engine loop.
pub(crate) type EndOffsets = Arc<Mutex<Ends>>;

/// Records what one statistics report says about each partition's bounds.
pub(crate) fn update(ends: &EndOffsets, statistics: Statistics) {
    update_at(ends, statistics, Instant::now());
}

fn update_at(ends: &EndOffsets, statistics: Statistics, now: Instant) {
    let Ok(mut ends) = ends.lock() else {
        return;
    };
    let Ends {
        bounds,
        distrust_until,
    } = &mut *ends;
    distrust_until.retain(|_, until| *until > now);
    for (name, topic) in statistics.topics {
        for (p, part) in topic.partitions {
            let key = (name.clone(), p);
            // Trusted only once the partition is being fetched (before its first fetch response the offsets are
            // placeholders, and a placeholder end would make an unread topic look caught up), and not right after
            // an assignment (see [`TRUST_AFTER`]).
            if p >= 0
                && part.fetch_state == "active"
                && part.hi_offset >= 0
                && part.ls_offset >= 0
                && !distrust_until.contains_key(&key)
            {
                bounds.insert(key, (part.lo_offset.max(0), part.ls_offset));
            } else {
                bounds.remove(&key);
            }
        }
    }
}

/// Forgets what is known of `assigned`'s partitions and distrusts their statistics for [`TRUST_AFTER`].
pub(crate) fn assigned(ends: &EndOffsets, assigned: &TopicPartitionList) {
    assigned_at(ends, assigned, Instant::now());
}

fn assigned_at(ends: &EndOffsets, assigned: &TopicPartitionList, now: Instant) {
    let Ok(mut ends) = ends.lock() else {
        return;
    };
    for e in assigned.elements() {
        let key = (e.topic().to_string(), e.partition());
        ends.bounds.remove(&key);
        ends.distrust_until.insert(key, now + TRUST_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(topic: &str, partition: i32, ls_offset: i64) -> Statistics {
        use rdkafka::statistics::{Partition, Topic};
        let part = Partition {
            partition,
            fetch_state: "active".into(),
            hi_offset: ls_offset,
            ls_offset,
            ..Partition::default()
        };
        let topic_stats = Topic {
            topic: topic.into(),
            partitions: HashMap::from([(partition, part)]),
            ..Topic::default()
        };
        Statistics {
            topics: HashMap::from([(topic.to_string(), topic_stats)]),
            ..Statistics::default()
        }
    }

    #[test]
    fn bounds_reported_right_after_an_assignment_are_not_trusted_until_a_while_later() {
        let ends = EndOffsets::default();
        let t0 = Instant::now();
        update_at(&ends, report("in.account", 3, 40), t0);
        assert_eq!(
            ends.lock().unwrap().bounds[&("in.account".into(), 3)],
            (0, 40)
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in.account", 3);
        assigned_at(&ends, &tpl, t0);
        assert!(
            ends.lock().unwrap().bounds.is_empty(),
            "forgotten on assignment"
        );
        // A report from before the first fetch answers: the end of the earlier assignment.
        update_at(&ends, report("in.account", 3, 40), t0 + TRUST_AFTER / 2);
        assert!(ends.lock().unwrap().bounds.is_empty(), "not trusted yet");
        update_at(&ends, report("in.account", 3, 90), t0 + TRUST_AFTER);
        assert_eq!(
            ends.lock().unwrap().bounds[&("in.account".into(), 3)],
            (0, 90)
        );
    }
}
