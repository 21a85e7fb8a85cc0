//! The `[kafka]` section of `mora.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Kafka settings of `mora run` and `mora loadgen`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Consumer group of the engine instances.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Delivery guarantee of actions.
    #[serde(default)]
    pub mode: DeliveryMode,
    /// How often consumed offsets and outputs are committed together.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// How long a partition waits for an input topic with nothing buffered before applying other topics' records
    /// (records of one partition are applied in timestamp order across topics, as Kafka Streams does).
    #[serde(default = "default_max_idle", with = "humantime_serde")]
    pub max_idle: Duration,
    /// How long a partition waits for an input topic the broker still holds records for (a leader that does not
    /// deliver: a broker frozen or restarting) before applying the other topics' records out of order. Longer keeps
    /// the order through longer broker faults at the cost of holding the partition's decisions back meanwhile.
    #[serde(default = "default_lagging_topic_wait", with = "humantime_serde")]
    pub lagging_topic_wait: Duration,
    /// How long the broker lets a transaction stay open (exactly-once mode) before aborting it. An instance killed
    /// and not restarted (its successor has other transactional ids) leaves its last transaction open: until the
    /// broker aborts it, `read_committed` readers of the action topics (dialers, gateways) see nothing past it. The
    /// default is Kafka Streams' for exactly-once; it must exceed `commit_interval` by a good margin, and the
    /// broker's `transaction.max.timeout.ms` (15 min by default) bounds it.
    #[serde(default = "default_transaction_timeout", with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// How long a stop (SIGTERM, SIGINT) may take: the final commit, the last state flush and leaving the group
    /// share it. Past it the open transaction is given up (aborted, or left for the next owner's producer or the
    /// broker's `transaction_timeout` to abort: nothing is lost or doubled, the next owner replays from the last
    /// commit) and the instance exits. Keep it below the orchestrator's grace period (Kubernetes: 30 s).
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Transactional id of this instance (exactly-once mode); unique per running instance. Default: derived from
    /// `instance_id` when set (stable across restarts), otherwise from the group, the host name and the process id.
    pub transactional_id: Option<String>,
    /// A stable identity for this instance (e.g. the pod name of a StatefulSet): static group membership, so a
    /// restarted instance takes its partitions back at once instead of after the session timeout, and a stable
    /// transactional id, so its unfinished transaction is aborted as soon as it starts again.
    pub instance_id: Option<String>,
    /// Where the partitions' time comes from.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicsConfig,
    /// TLS and SASL.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Raw librdkafka options for both the consumer and the producer, applied last (escape hatch).
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

// The group every instance of one deployment joins.
fn default_group() -> String {
    "mora".to_string()
}

// 100 ms: the latency/throughput balance the brief asks for; each commit is a transaction round trip.
fn default_commit_interval() -> Duration {
    Duration::from_millis(100)
}

// Kafka Streams' exactly-once default: a transaction here lasts one commit interval (100 ms by default), so ten
// seconds is ample, and it bounds how long a dead instance's open transaction holds the outputs back.
fn default_transaction_timeout() -> Duration {
    Duration::from_secs(10)
}

// Room for a final commit and flush against a slow cluster, and exit before Kubernetes' default 30 s grace ends.
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(20)
}

// A topic merely behind in the fetch delivers long before this; a broker back from a fault usually within it.
fn default_lagging_topic_wait() -> Duration {
    crate::slot::LAGGING_TOPIC_WAIT
}

// Long enough for a lagging topic's next fetch to arrive, short next to the commit interval's latency budget.
fn default_max_idle() -> Duration {
    Duration::from_millis(50)
}

/// How actions are delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Actions, audit records and consumed offsets commit in one Kafka transaction: readers with
    /// `isolation.level=read_committed` see each action exactly once. Latency includes the commit interval.
    #[default]
    ExactlyOnce,
    /// No transactions: outputs are flushed, then offsets committed. Lower latency; after a crash some actions may
    /// be sent again, with the same deterministic id for the gateway to drop.
    AtLeastOnce,
}

/// The `[kafka.clock]` section: time is data in the input log (the `clock` topic), so a replay decides at the same
/// instants as the live run. Timers fire when a partition's time, moved by its events and its clock records, passes
/// their instant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// `wall`: each instance writes a clock record with its wall time for every partition it owns, every `interval`,
    /// so the partitions' time keeps up with wall time within about `interval`. `log`: the instance writes none and
    /// time moves only with what the log holds (events, and clock records written by someone else, e.g. `mora
    /// loadgen` for simulated time, or an operator's tool).
    pub source: ClockSource,
    /// How often an instance writes wall-clock records (the bound on how far time lags behind wall time).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// Where time comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// Instances write wall-clock records.
    #[default]
    Wall,
    /// Only what is in the log.
    Log,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            source: ClockSource::Wall,
            interval: Duration::from_secs(1),
        }
    }
}

/// Topic names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Input topics are `<input_prefix><family>` (account, obligation, payment, promise, dispute, contact_outcome,
    /// clock).
    pub input_prefix: String,
    /// Action topics are `<actions_prefix><channel>`.
    pub actions_prefix: String,
    /// Decision audit records.
    pub audit: String,
    /// Records that could not be decoded or applied.
    pub dead_letter: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            input_prefix: "mora.in.".into(),
            actions_prefix: "mora.actions.".into(),
            audit: "mora.audit".into(),
            dead_letter: "mora.dead-letter".into(),
        }
    }
}

/// TLS and SASL settings, passed to librdkafka as they are named there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Option<String>,
    /// CA bundle to verify brokers.
    pub ssl_ca_location: Option<String>,
    /// Client certificate (mutual TLS).
    pub ssl_certificate_location: Option<String>,
    /// Client key (mutual TLS).
    pub ssl_key_location: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password (prefer the `MORA__KAFKA__SECURITY__SASL_PASSWORD` environment variable).
    pub sasl_password: Option<String>,
}

impl KafkaConfig {
    /// A configuration with defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: default_group(),
            mode: DeliveryMode::default(),
            commit_interval: default_commit_interval(),
            max_idle: default_max_idle(),
            lagging_topic_wait: default_lagging_topic_wait(),
            transaction_timeout: default_transaction_timeout(),
            shutdown_timeout: default_shutdown_timeout(),
            transactional_id: None,
            instance_id: None,
            clock: ClockConfig::default(),
            topics: TopicsConfig::default(),
            security: SecurityConfig::default(),
            librdkafka_options: BTreeMap::new(),
        }
    }

    /// The settings of engine thread `index` of an instance: thread 0 keeps the instance's identity, so a one-thread
    /// instance and thread 0 of a larger one are the same group member and transactional producer; thread `k > 0`
    /// appends `-k` to `instance_id` and `transactional_id` (each thread is a member and a producer of its own).
    pub fn for_thread(&self, index: usize) -> KafkaConfig {
        let mut cfg = self.clone();
        if index > 0 {
            cfg.instance_id = self.instance_id.as_ref().map(|i| format!("{i}-{index}"));
            cfg.transactional_id = self
                .transactional_id
                .as_ref()
                .map(|t| format!("{t}-{index}"));
        }
        cfg
    }

    /// Checks values a broker would only reject later.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers: must list at least one host:port".into());
        }
        if self.group_id.trim().is_empty() {
            return Err("kafka.group_id: must not be empty".into());
        }
        if self.commit_interval.is_zero() {
            return Err("kafka.commit_interval: must be positive".into());
        }
        if self.transaction_timeout < self.commit_interval * 5
            || self.transaction_timeout > Duration::from_secs(900)
        {
            return Err(format!(
                "kafka.transaction_timeout: {:?} must be at least five commit intervals ({:?}) and at most 15 minutes",
                self.transaction_timeout,
                self.commit_interval * 5
            ));
        }
        if self.lagging_topic_wait < Duration::from_secs(1)
            || self.lagging_topic_wait > Duration::from_secs(3600)
        {
            return Err(format!(
                "kafka.lagging_topic_wait: {:?} must be between 1s and 1 hour",
                self.lagging_topic_wait
            ));
        }
        if self.shutdown_timeout < Duration::from_secs(1)
            || self.shutdown_timeout > Duration::from_secs(600)
        {
            return Err(format!(
                "kafka.shutdown_timeout: {:?} must be between 1s and 10 minutes",
                self.shutdown_timeout
            ));
        }
        if self.clock.interval < Duration::from_millis(10) {
            return Err("kafka.clock.interval: must be at least 10ms".into());
        }
        if let Some(p) = &self.security.protocol
            && !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
                .contains(&p.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "kafka.security.protocol: `{p}` is not plaintext, ssl, sasl_plaintext or sasl_ssl"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_timeout_too_close_to_the_commit_interval_is_refused_by_name() {
        let mut cfg = KafkaConfig::new("b:9092");
        assert_eq!(cfg.validate(), Ok(()));
        cfg.transaction_timeout = Duration::from_millis(300);
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with("kafka.transaction_timeout:"), "{err}");
        cfg.transaction_timeout = Duration::from_secs(3600);
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn a_shutdown_timeout_outside_its_bounds_is_refused_by_name() {
        let mut cfg = KafkaConfig::new("b:9092");
        cfg.shutdown_timeout = Duration::from_millis(500);
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with("kafka.shutdown_timeout:"), "{err}");
        assert!(err.contains("1s and 10 minutes"), "{err}");
        cfg.shutdown_timeout = Duration::from_secs(601);
        assert!(cfg.validate().is_err());
        cfg.shutdown_timeout = Duration::from_secs(5);
        assert_eq!(cfg.validate(), Ok(()));
        cfg.lagging_topic_wait = Duration::ZERO;
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with("kafka.lagging_topic_wait:"), "{err}");
    }

    #[test]
    fn thread_zero_keeps_the_instance_identity_and_others_derive_their_own() {
        let mut cfg = KafkaConfig::new("b:9092");
        cfg.instance_id = Some("mora-0".into());
        cfg.transactional_id = Some("tx".into());
        let t0 = cfg.for_thread(0);
        assert_eq!(
            (t0.instance_id.as_deref(), t0.transactional_id.as_deref()),
            (Some("mora-0"), Some("tx"))
        );
        let t2 = cfg.for_thread(2);
        assert_eq!(
            (t2.instance_id.as_deref(), t2.transactional_id.as_deref()),
            (Some("mora-0-2"), Some("tx-2"))
        );
        assert_eq!(KafkaConfig::new("b:9092").for_thread(1).instance_id, None);
    }
}
