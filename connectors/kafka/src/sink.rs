//! Writing a partition's decisions to Kafka, with backpressure: a full producer queue blocks (serving delivery
//! reports) instead of dropping or growing without bound.

use std::time::Duration;

use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::ids::Channel;
use mora_runtime::RegistrySchemas;
use mora_runtime::Sink;
use mora_schemas::{
    DeadLetter, Wire, encode_action, encode_audit, encode_dead_letter, set_schema_id,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord};
use tracing::error;

use crate::config::TopicsConfig;
use crate::durable::Ledger;

/// The output topics' names, per-channel counters and, with a schema registry, the schema id each topic's records
/// are framed with: resolved once rather than per record.
#[derive(Debug)]
pub(crate) struct Outputs {
    /// Per channel, in [`Channel::ALL`] order: the action topic, its counter and its registry id.
    actions: Vec<(String, metrics::Counter, Option<u32>)>,
    audit: (String, Option<u32>),
    dead_letter: (String, Option<u32>),
}

impl Outputs {
    pub(crate) fn new(topics: &TopicsConfig, schemas: Option<&RegistrySchemas>) -> Self {
        let id = |t: &str| schemas.and_then(|s| s.output_id(t));
        Self {
            actions: Channel::ALL
                .iter()
                .map(|c| {
                    let topic = topics.actions(*c);
                    let schema = id(&topic);
                    (
                        topic,
                        metrics::counter!("mora_actions_total", "channel" => c.as_str()),
                        schema,
                    )
                })
                .collect(),
            audit: (topics.audit.clone(), id(&topics.audit)),
            dead_letter: (topics.dead_letter.clone(), id(&topics.dead_letter)),
        }
    }
}

/// Frames `bytes` (encoded with mora's built-in id) with the registry's id for its topic, if there is one.
fn framed(mut bytes: Vec<u8>, id: Option<u32>) -> Vec<u8> {
    if let Some(id) = id {
        set_schema_id(&mut bytes, id);
    }
    bytes
}

/// Counts of records written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub actions: u64,
    pub audits: u64,
    pub dead_letters: u64,
    /// Outputs dropped because the partition was restoring (they were sent before).
    pub suppressed: u64,
    /// Times a full producer queue paused the loop.
    pub backpressure_waits: u64,
}

/// Sends to the producer; in restore mode, drops everything (state is being rebuilt from records already handled).
pub(crate) struct KafkaSink<'a> {
    pub producer: &'a BaseProducer,
    pub outputs: &'a Outputs,
    pub restoring: bool,
    pub written: &'a mut Written,
    /// First send error that is not backpressure; the pipeline aborts the transaction on it.
    pub failed: &'a mut Option<KafkaError>,
    /// Decisions kept for the state store's ledger (replayed ones too: ledger writes are idempotent).
    pub ledger: Option<&'a mut Ledger>,
}

impl KafkaSink<'_> {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> bool {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.written.backpressure_waits += 1;
                    self.producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => {
                    error!(topic, error = %e, "Producing an output failed; the transaction will be aborted.");
                    if self.failed.is_none() {
                        *self.failed = Some(e);
                    }
                    return false;
                }
            }
        }
    }
}

impl Sink for KafkaSink<'_> {
    fn action(&mut self, _partition: i32, action: &Action) {
        if let Some(l) = self.ledger.as_deref_mut() {
            l.actions.push(action.clone());
        }
        if self.restoring {
            self.written.suppressed += 1;
            return;
        }
        match encode_action(action, Wire::Confluent) {
            Ok(bytes) => {
                let outputs = self.outputs;
                let Some((topic, sent, id)) = outputs.actions.get(action.channel as usize) else {
                    return;
                };
                let bytes = framed(bytes, *id);
                if self.send(topic, action.debtor_id.as_bytes(), &bytes) {
                    self.written.actions += 1;
                    sent.increment(1);
                }
            }
            Err(e) => {
                error!(action_id = %action.action_id.0, error = %e, "An action could not be encoded.")
            }
        }
    }

    fn audit(&mut self, _partition: i32, record: &AuditRecord) {
        if let Some(l) = self.ledger.as_deref_mut().filter(|l| l.keep_audits) {
            l.audits.push(record.clone());
        }
        if self.restoring {
            return;
        }
        if record.kind == DecisionKind::Noted && record.reason == "unmatched_action" {
            // A gateway reporting outcomes for actions mora did not send (or a manual call): visible, not refused.
            metrics::counter!("mora_unmatched_outcomes_total").increment(1);
        }
        if matches!(record.kind, DecisionKind::Deferred | DecisionKind::Dropped) {
            metrics::counter!(
                "mora_blocked_total",
                "kind" => record.kind.as_str(),
                "reason" => record.reason.to_string()
            )
            .increment(1);
        }
        if let Ok(bytes) = encode_audit(record, Wire::Confluent) {
            let outputs = self.outputs;
            let bytes = framed(bytes, outputs.audit.1);
            if self.send(&outputs.audit.0, record.debtor_id.as_bytes(), &bytes) {
                self.written.audits += 1;
            }
        }
    }

    fn dead_letter(&mut self, _partition: i32, record: DeadLetter) {
        if self.restoring {
            return;
        }
        match encode_dead_letter(&record, Wire::Confluent) {
            Ok(bytes) => {
                let outputs = self.outputs;
                let key = record.key.clone().unwrap_or_default();
                let bytes = framed(bytes, outputs.dead_letter.1);
                if self.send(&outputs.dead_letter.0, &key, &bytes) {
                    self.written.dead_letters += 1;
                    metrics::counter!(
                        "mora_dead_letters_total",
                        "error_kind" => record.error_kind.to_string()
                    )
                    .increment(1);
                }
            }
            Err(e) => error!(error = %e, "A dead letter could not be encoded."),
        }
    }
}
