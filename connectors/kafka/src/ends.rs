//! Where each input topic-partition ends on the broker, as librdkafka's statistics report it (no extra requests):
//! ordering across topics waits only for topics that still hold records this instance has not received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::statistics::Statistics;

/// Per (topic, partition): the log start offset and the offset up to which the broker holds readable records (last
/// stable offset, as `read_committed` sees it).
pub(crate) type EndOffsets = Arc<Mutex<HashMap<(String, i32), (i64, i64)>>>;

/// Records what one statistics report says about each partition's bounds.
pub(crate) fn update(ends: &EndOffsets, statistics: Statistics) {
    let Ok(mut ends) = ends.lock() else {
        return;
    };
    for (name, topic) in statistics.topics {
        for (p, part) in topic.partitions {
            // Trusted only once the partition is being fetched: before its first fetch response the offsets are
            // placeholders, and a placeholder end would make an unread topic look caught up.
            if p >= 0 && part.fetch_state == "active" && part.hi_offset >= 0 && part.ls_offset >= 0
            {
                ends.insert((name.clone(), p), (part.lo_offset.max(0), part.ls_offset));
            } else {
                ends.remove(&(name.clone(), p));
            }
        }
    }
}
