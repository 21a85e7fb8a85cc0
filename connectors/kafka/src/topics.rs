//! Topic names, the co-partitioning check, and topic creation (load generator, tests).

use std::time::Duration;

use mora_domain::ids::Channel;
use mora_schemas::Family;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::client;
use crate::config::{KafkaConfig, TopicsConfig};
use crate::error::PipelineError;

const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

impl TopicsConfig {
    /// The input topic of `family`.
    pub fn input(&self, family: Family) -> String {
        format!("{}{}", self.input_prefix, family.name())
    }

    /// Every input topic, in family order.
    pub fn inputs(&self) -> Vec<String> {
        Family::ALL.iter().map(|f| self.input(*f)).collect()
    }

    /// The action topic of `channel`.
    pub fn actions(&self, channel: Channel) -> String {
        format!("{}{}", self.actions_prefix, channel.as_str())
    }

    /// The family an input topic carries.
    pub fn family_of(&self, topic: &str) -> Option<Family> {
        topic
            .strip_prefix(&self.input_prefix)
            .and_then(Family::parse)
    }
}

/// Checks that every input topic exists and that all have the same partition count (so partition p of each holds
/// the same debtors); returns that count.
pub fn check_co_partitioned(cfg: &KafkaConfig) -> Result<i32, PipelineError> {
    let consumer: BaseConsumer = client::plain(cfg).create()?;
    let metadata = consumer.fetch_metadata(None, METADATA_TIMEOUT)?;
    let mut counts = Vec::new();
    for topic in cfg.topics.inputs() {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none());
        match t {
            Some(t) => counts.push((topic, t.partitions().len() as i32)),
            None => {
                return Err(PipelineError::Topics(format!(
                    "input topic {topic} does not exist"
                )));
            }
        }
    }
    let first = counts[0].1;
    if counts.iter().any(|(_, n)| *n != first) {
        let list: Vec<String> = counts.iter().map(|(t, n)| format!("{t}={n}")).collect();
        return Err(PipelineError::Topics(format!(
            "input topics are not co-partitioned (partition counts differ: {}); every input topic needs the same \
             count so that one worker owns all of a debtor's events",
            list.join(", ")
        )));
    }
    Ok(first)
}

/// Creates the input topics with `partitions` partitions and the output topics, skipping those that exist.
pub fn create_topics(
    cfg: &KafkaConfig,
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, PipelineError> {
    let admin: AdminClient<DefaultClientContext> = client::plain(cfg).create()?;
    let t = &cfg.topics;
    let mut names: Vec<(String, i32)> = t.inputs().into_iter().map(|n| (n, partitions)).collect();
    names.extend(Channel::ALL.iter().map(|c| (t.actions(*c), partitions)));
    names.push((t.audit.clone(), partitions));
    names.push((t.dead_letter.clone(), partitions.min(3)));
    let inputs = t.inputs();
    // Input topics keep their whole history: an assigned partition is rebuilt by replaying it, and simulated or
    // migrated events carry timestamps older than any time-based retention.
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|(n, p)| {
            let topic = NewTopic::new(n, *p, TopicReplication::Fixed(replication));
            if inputs.contains(n) {
                topic.set("retention.ms", "-1")
            } else {
                topic
            }
        })
        .collect();
    let runtime = std::thread::scope(|s| {
        s.spawn(|| {
            // AdminClient is future-based; a minimal executor on a scoped thread drives it without an async runtime.
            futures_lite_block_on(admin.create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
            ))
        })
        .join()
    });
    let results =
        runtime.map_err(|_| PipelineError::Topics("topic creation panicked".into()))??;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => drop(name),
            Err((name, code)) => {
                return Err(PipelineError::Topics(format!(
                    "cannot create {name}: {code}"
                )));
            }
        }
    }
    wait_visible(cfg, &names)?;
    Ok(created)
}

/// Waits until the broker's metadata lists every topic with its partitions: creation returns before the metadata
/// has propagated, and a client that looks at once could find a topic missing.
fn wait_visible(cfg: &KafkaConfig, topics: &[(String, i32)]) -> Result<(), PipelineError> {
    let probe: BaseConsumer = client::plain(cfg).create()?;
    let deadline = std::time::Instant::now() + METADATA_TIMEOUT;
    loop {
        let md = probe.fetch_metadata(None, METADATA_TIMEOUT)?;
        let missing: Vec<&str> = topics
            .iter()
            .filter(|(name, partitions)| {
                !md.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() as i32 >= *partitions
                })
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(PipelineError::Topics(format!(
                "created but not visible in the broker's metadata after {METADATA_TIMEOUT:?}: {}",
                missing.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Blocks on a future by parking the thread between wake-ups (the admin future completes from librdkafka's thread).
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}
