//! One assigned partition on this instance: its worker, the records received from each input topic and not yet
//! applied, and the rule that picks the next record so that a partition's topics are applied in timestamp order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use mora_runtime::PartitionWorker;
use rdkafka::message::{Message, OwnedMessage};

use crate::durable::Ledger;

/// The default of `kafka.lagging_topic_wait`: how long a partition waits for a topic the broker still holds records
/// for, counted from when the partition first needed it and it had nothing buffered (or from its last delivery, if
/// later), before applying the other topics' records out of order. A safety net against stale offsets: a topic that
/// is merely behind in the fetch delivers long before this.
pub(crate) const LAGGING_TOPIC_WAIT: Duration = Duration::from_secs(30);

/// Records received from one input topic of the partition and not yet applied.
#[derive(Default)]
pub(crate) struct Inbox {
    /// The records, with when each arrived.
    pub queue: VecDeque<(Instant, OwnedMessage)>,
    /// Whether fetching from this topic-partition is paused because the queue is full.
    pub paused: bool,
    /// Since when the partition has been held back by this topic (empty while the broker holds records for it);
    /// cleared when it delivers.
    stalled_since: Option<Instant>,
}

impl Inbox {
    /// Takes a record in.
    pub(crate) fn push(&mut self, at: Instant, msg: OwnedMessage) {
        self.stalled_since = None;
        self.queue.push_back((at, msg));
    }

    /// Restarts the stall clock (time spent paused for the state store is not time this topic kept others waiting).
    pub(crate) fn forgive(&mut self) {
        self.stalled_since = None;
    }
}

/// One assigned partition.
pub(crate) struct Slot {
    pub worker: PartitionWorker,
    /// Per topic, the committed offset: records below it were handled before and are replayed only to rebuild state.
    pub restore_until: HashMap<String, i64>,
    /// Timestamp of the last record applied (records should be applied in timestamp order).
    pub last_ts: i64,
    /// Records received but not yet applied, per input topic.
    pub inboxes: BTreeMap<String, Inbox>,
    /// Per input topic, the offset after the last record received (from the start offset on). Kept here rather
    /// than asked of the client, whose positions can still show a previous assignment's until a record arrives.
    pub received: HashMap<String, i64>,
    /// Next offset per input topic of the records applied (the cut a flush records).
    pub applied: BTreeMap<String, i64>,
    /// The cut of the last flush.
    pub flushed: BTreeMap<String, i64>,
    /// Decisions since the last flush (only with a state store).
    pub ledger: Ledger,
    /// Time from a record's arrival to its application (ordering waits included), seconds.
    pub latency: metrics::Histogram,
}

/// Why [`Slot::next_ready`] gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Nothing buffered.
    Empty,
    /// A topic with nothing buffered may still deliver an earlier record.
    Waiting,
}

impl Slot {
    pub(crate) fn new(
        worker: PartitionWorker,
        starts: BTreeMap<String, i64>,
        ledger: Ledger,
    ) -> Self {
        let partition = worker.partition();
        Self {
            worker,
            restore_until: HashMap::new(),
            last_ts: i64::MIN,
            inboxes: BTreeMap::new(),
            received: HashMap::new(),
            flushed: starts.clone(),
            applied: starts,
            ledger,
            latency: metrics::histogram!(
                "mora_processing_seconds",
                "partition" => partition.to_string()
            ),
        }
    }

    /// Buffers a record (no allocation per record once the topic has been seen).
    pub(crate) fn receive(&mut self, msg: OwnedMessage, now: Instant) {
        let next = msg.offset() + 1;
        match self.received.get_mut(msg.topic()) {
            Some(n) => *n = (*n).max(next),
            None => {
                self.received.insert(msg.topic().to_string(), next);
            }
        }
        match self.inboxes.get_mut(msg.topic()) {
            Some(inbox) => inbox.push(now, msg),
            None => {
                let mut inbox = Inbox::default();
                let topic = msg.topic().to_string();
                inbox.push(now, msg);
                self.inboxes.insert(topic, inbox);
            }
        }
    }

    /// Records buffered.
    pub(crate) fn buffered(&self) -> usize {
        self.inboxes.values().map(|i| i.queue.len()).sum()
    }

    fn head(&self, topic: &str) -> Option<&OwnedMessage> {
        self.inboxes
            .get(topic)
            .and_then(|i| i.queue.front())
            .map(|(_, m)| m)
    }

    fn pop(&mut self, topic: &str) -> Option<(Instant, OwnedMessage)> {
        self.inboxes
            .get_mut(topic)
            .and_then(|i| i.queue.pop_front())
    }

    /// Whether some topic still has records below its committed offset to replay.
    fn restoring(&self) -> bool {
        self.restore_until.iter().any(|(t, committed)| {
            *committed > 0
                && (self.head(t).is_some_and(|m| m.offset() < *committed)
                    || self.received.get(t).copied().unwrap_or(0) < *committed)
        })
    }

    /// The buffered record to apply next.
    ///
    /// While any topic still has records below its committed offset (restore phase), only those are applied, in
    /// timestamp order across topics, waiting for each such topic to deliver: a new owner must replay exactly what
    /// the previous owner committed before it decides anything new, or timers could fire twice.
    ///
    /// Afterwards: the smallest timestamp among the topics' heads, once no topic of `inputs` with nothing buffered
    /// can still deliver an earlier record. A topic the broker holds records for (`lagging`) is waited for until it
    /// delivers, or for `lagging_wait` without delivering; a caught-up topic only until the oldest head has waited
    /// `max_idle` (an idle topic cannot hold time back longer).
    pub(crate) fn next_ready(
        &mut self,
        inputs: &[String],
        (max_idle, lagging_wait): (Duration, Duration),
        lagging: &HashMap<String, bool>,
        now: Instant,
    ) -> Result<(Instant, OwnedMessage), Hold> {
        if self.restoring() {
            let mut best: Option<(i64, &str)> = None;
            for (t, committed) in &self.restore_until {
                if *committed == 0 {
                    continue;
                }
                match self.head(t) {
                    Some(m) if m.offset() < *committed => {
                        let ts = m.timestamp().to_millis().unwrap_or(0);
                        if best.is_none_or(|(b, bt)| (ts, t.as_str()) < (b, bt)) {
                            best = Some((ts, t));
                        }
                    }
                    // This topic's replay has not been fetched yet.
                    _ if self.received.get(t).copied().unwrap_or(0) < *committed => {
                        tracing::debug!(topic = %t, "restore: waiting for this topic's replay");
                        return Err(Hold::Waiting);
                    }
                    _ => {}
                }
            }
            let topic = best.map(|(_, t)| t.to_string()).ok_or(Hold::Waiting)?;
            return self.pop(&topic).ok_or(Hold::Waiting);
        }
        // The earliest head (ties by topic name), and how long the oldest head has waited.
        let mut best: Option<(i64, &str)> = None;
        let mut oldest: Option<Instant> = None;
        for (t, inbox) in &self.inboxes {
            if let Some((at, m)) = inbox.queue.front() {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                if best.is_none_or(|(b, bt)| (ts, t.as_str()) < (b, bt)) {
                    best = Some((ts, t));
                }
                oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
            }
        }
        let (Some((_, topic)), Some(oldest)) = (best, oldest) else {
            return Err(Hold::Empty);
        };
        let topic = topic.to_string();
        let head_waited = now.saturating_duration_since(oldest);
        let mut hold = false;
        for t in inputs {
            if !self.inboxes.contains_key(t) {
                self.inboxes.insert(t.clone(), Inbox::default()); // once per topic, not per record
            }
            let Some(inbox) = self.inboxes.get_mut(t) else {
                continue;
            };
            if !inbox.queue.is_empty() {
                continue;
            }
            if lagging.get(t).copied().unwrap_or(true) {
                // The broker holds records for it: wait until it delivers, within reason.
                let since = *inbox.stalled_since.get_or_insert(now);
                let stalled = now.saturating_duration_since(since);
                if stalled < lagging_wait {
                    tracing::debug!(topic = %t, ?stalled, "waiting for a topic that is behind");
                    hold = true;
                } else if stalled < lagging_wait + max_idle {
                    tracing::warn!(topic = %t, ?stalled, "A topic the broker holds records for has not delivered; applying other topics' records out of order.");
                }
            } else {
                inbox.stalled_since = None;
                if head_waited < max_idle {
                    tracing::debug!(topic = %t, ?head_waited, "waiting for an idle topic");
                    hold = true;
                }
            }
        }
        if hold {
            return Err(Hold::Waiting);
        }
        self.pop(&topic).ok_or(Hold::Empty)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::Timestamp;

    use super::*;

    fn slot() -> Slot {
        let engine = Arc::new(mora_domain::testkit::engine());
        Slot::new(
            PartitionWorker::new(0, engine),
            BTreeMap::new(),
            Ledger::default(),
        )
    }

    fn msg(topic: &str, offset: i64, ts: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(vec![]),
            None,
            topic.to_string(),
            Timestamp::CreateTime(ts),
            0,
            offset,
            None,
        )
    }

    fn inputs() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn lag(a: bool, b: bool) -> HashMap<String, bool> {
        HashMap::from([("a".into(), a), ("b".into(), b)])
    }

    fn next(s: &mut Slot, lagging: &HashMap<String, bool>, now: Instant) -> Result<i64, Hold> {
        s.next_ready(
            &inputs(),
            (Duration::from_millis(50), LAGGING_TOPIC_WAIT),
            lagging,
            now,
        )
        .map(|(_, m)| m.timestamp().to_millis().unwrap_or(0))
    }

    #[test]
    fn records_of_every_topic_come_out_in_timestamp_order() {
        let mut s = slot();
        let t0 = Instant::now();
        for (t, o, ts) in [("a", 0, 10), ("a", 1, 30), ("b", 0, 20), ("b", 1, 40)] {
            s.receive(msg(t, o, ts), t0);
        }
        let caught_up = lag(false, false);
        let out: Vec<_> = (0..3).map(|_| next(&mut s, &caught_up, t0)).collect();
        assert_eq!(out, vec![Ok(10), Ok(20), Ok(30)]);
        // "a" is empty and caught up: its head waits max_idle, then goes.
        assert_eq!(next(&mut s, &caught_up, t0), Err(Hold::Waiting));
        assert_eq!(
            next(&mut s, &caught_up, t0 + Duration::from_millis(60)),
            Ok(40)
        );
        assert_eq!(next(&mut s, &caught_up, t0), Err(Hold::Empty));
    }

    #[test]
    fn a_topic_behind_holds_the_partition_however_old_the_buffered_records_are() {
        // Records buffered long ago (a deep backlog) must not count as time the missing topic kept them waiting.
        let mut s = slot();
        let t0 = Instant::now();
        s.receive(msg("a", 0, 10), t0);
        let later = t0 + Duration::from_secs(120);
        assert_eq!(next(&mut s, &lag(false, true), later), Err(Hold::Waiting));
        assert_eq!(
            next(&mut s, &lag(false, true), later + Duration::from_secs(29)),
            Err(Hold::Waiting)
        );
        // It delivers an earlier record: order is kept.
        s.receive(msg("b", 0, 5), later + Duration::from_secs(29));
        assert_eq!(next(&mut s, &lag(false, true), later), Ok(5));
        assert_eq!(next(&mut s, &lag(false, false), later), Ok(10));
    }

    #[test]
    fn a_topic_that_never_delivers_is_given_up_on_after_the_wait_and_the_rest_flows() {
        let mut s = slot();
        let t0 = Instant::now();
        for o in 0..3 {
            s.receive(msg("a", o, 10 + o), t0);
        }
        let behind = lag(false, true);
        assert_eq!(next(&mut s, &behind, t0), Err(Hold::Waiting));
        let after = t0 + LAGGING_TOPIC_WAIT;
        assert_eq!(next(&mut s, &behind, after), Ok(10));
        // Once given up on, the topic does not stall each following record again.
        assert_eq!(next(&mut s, &behind, after), Ok(11));
        assert_eq!(next(&mut s, &behind, after), Ok(12));
        // A delivery restarts the clock for the next stall.
        s.receive(msg("b", 0, 50), after);
        s.receive(msg("a", 3, 60), after);
        assert_eq!(next(&mut s, &behind, after), Ok(50));
        assert_eq!(next(&mut s, &behind, after), Err(Hold::Waiting));
    }

    #[test]
    fn a_restoring_partition_replays_only_records_below_the_committed_offsets() {
        let mut s = slot();
        let t0 = Instant::now();
        s.restore_until.insert("a".into(), 2);
        s.restore_until.insert("b".into(), 1);
        s.receive(msg("a", 0, 10), t0);
        // "b" has a record to replay that has not arrived: wait, whatever the timestamps.
        assert_eq!(next(&mut s, &lag(false, false), t0), Err(Hold::Waiting));
        s.receive(msg("b", 0, 5), t0);
        s.receive(msg("b", 1, 7), t0); // new, not replayed before "a"@1
        assert_eq!(next(&mut s, &lag(false, false), t0), Ok(5));
        s.restore_until.insert("b".into(), 0);
        assert_eq!(next(&mut s, &lag(false, false), t0), Ok(10));
    }
}
