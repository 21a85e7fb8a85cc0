//! Building librdkafka client configurations: defaults, then security, then raw options (last, so they win).

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

fn base(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    let s = &cfg.security;
    let pairs = [
        ("security.protocol", &s.protocol),
        ("ssl.ca.location", &s.ssl_ca_location),
        ("ssl.certificate.location", &s.ssl_certificate_location),
        ("ssl.key.location", &s.ssl_key_location),
        ("sasl.mechanism", &s.sasl_mechanism),
        ("sasl.username", &s.sasl_username),
        ("sasl.password", &s.sasl_password),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            c.set(k, v);
        }
    }
    c
}

fn finish(mut c: ClientConfig, cfg: &KafkaConfig) -> ClientConfig {
    for (k, v) in &cfg.librdkafka_options {
        c.set(k, v);
    }
    c
}

/// The engine's consumer: manual commits, `read_committed`, range assignment (partition p of every co-partitioned
/// topic lands on the same member).
pub(crate) fn consumer(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base(cfg);
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "range")
        .set("enable.partition.eof", "false")
        // Per-partition end offsets for ordering across topics come from the statistics callback.
        .set("statistics.interval.ms", "100");
    if let Some(id) = &cfg.instance_id {
        c.set("group.instance.id", id);
    }
    finish(c, cfg)
}

/// The engine's producer: idempotent always; transactional in exactly-once mode. Bounded queue: a full queue blocks
/// the loop, which pauses consumption.
pub(crate) fn producer(cfg: &KafkaConfig, transactional_id: Option<&str>) -> ClientConfig {
    let mut c = base(cfg);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "262144");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id).set(
            "transaction.timeout.ms",
            cfg.transaction_timeout.as_millis().to_string(),
        );
    }
    finish(c, cfg)
}

/// A plain client configuration with the brokers, security settings and raw options of `cfg` (admin clients, topic
/// creation, the load generator's producer).
pub fn plain(cfg: &KafkaConfig) -> ClientConfig {
    finish(base(cfg), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaConfig;

    #[test]
    fn security_settings_and_raw_options_reach_the_client_and_raw_options_win() {
        let mut cfg = KafkaConfig::new("broker-1:9093");
        cfg.security.protocol = Some("sasl_ssl".into());
        cfg.security.sasl_mechanism = Some("SCRAM-SHA-512".into());
        cfg.security.sasl_username = Some("mora".into());
        cfg.security.sasl_password = Some("secret".into());
        cfg.security.ssl_ca_location = Some("/etc/ssl/ca.pem".into());
        cfg.librdkafka_options
            .insert("socket.keepalive.enable".into(), "true".into());
        cfg.librdkafka_options
            .insert("isolation.level".into(), "read_uncommitted".into());
        let c = consumer(&cfg);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("mora"));
        assert_eq!(c.get("sasl.password"), Some("secret"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ssl/ca.pem"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(
            c.get("isolation.level"),
            Some("read_uncommitted"),
            "raw options are applied last"
        );
        let p = producer(&cfg, Some("tx-1"));
        assert_eq!(
            (p.get("transactional.id"), p.get("security.protocol")),
            (Some("tx-1"), Some("sasl_ssl"))
        );
        assert_eq!(producer(&cfg, None).get("transactional.id"), None);
    }

    #[test]
    fn a_bad_security_protocol_is_refused_naming_the_field() {
        let mut cfg = KafkaConfig::new("b:9092");
        cfg.security.protocol = Some("tls".into());
        assert!(
            cfg.validate()
                .unwrap_err()
                .contains("kafka.security.protocol")
        );
    }
}
