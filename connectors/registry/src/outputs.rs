//! mora's schemas and the registry's subjects: registering or finding the output schemas at start, `mora schemas
//! check` and `mora schemas register`.

use std::collections::HashMap;

use apache_avro::Schema;
use mora_schemas::{Registry, SchemaKind, Transcoder};

use crate::client::{RegistryClient, RegistryError};
use crate::config::RegistryConfig;

/// A topic and the schema mora reads or writes on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSchema {
    /// The topic.
    pub topic: String,
    /// mora's schema for it.
    pub kind: SchemaKind,
}

/// mora's schema text of `kind` and the full name of its top record.
fn ours(kind: SchemaKind) -> (&'static str, String) {
    let text = Registry::global().source(kind);
    let (_, schema) = Registry::global().current(kind);
    let name = match schema {
        Schema::Record(r) => r.name.fullname(None),
        _ => kind.name().to_string(),
    };
    (text, name)
}

/// The subject of `t` under the configured naming.
pub fn subject_of(cfg: &RegistryConfig, t: &TopicSchema) -> String {
    cfg.subjects.subject(&t.topic, &ours(t.kind).1)
}

/// Why `writer` cannot be read with `reader` (field by field), if it cannot.
fn unreadable(writer: &str, reader: &str) -> Option<String> {
    let w = match Schema::parse_str(writer) {
        Ok(w) => w,
        Err(e) => return Some(format!("the registered schema does not parse: {e}")),
    };
    let r = Schema::parse_str(reader).ok()?;
    Transcoder::compile(&w, &r).err().map(|e| e.to_string())
}

/// Why the output schemas could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The registry could not be reached (worth retrying).
    #[error("{0}")]
    Unavailable(String),
    /// The registry refused, or a subject lacks mora's schema: an operator must act.
    #[error("{0}")]
    Refused(String),
}

/// At start: the id of each output topic's schema, registered now (`auto_register`) or found registered. Fails on
/// the first topic whose subject refuses mora's schema or lacks it, naming the subject.
pub fn prepare(
    client: &RegistryClient,
    cfg: &RegistryConfig,
    outputs: &[TopicSchema],
) -> Result<HashMap<String, u32>, PrepareError> {
    let mut ids = HashMap::new();
    for t in outputs {
        let subject = subject_of(cfg, t);
        let (text, _) = ours(t.kind);
        let classify = |e: RegistryError| match e {
            RegistryError::Unavailable(m) => PrepareError::Unavailable(m),
            e => PrepareError::Refused(refusal(client, &subject, t.kind, e)),
        };
        let id = if cfg.auto_register {
            client.register(&subject, text).map_err(classify)?
        } else {
            client.lookup(&subject, text).map_err(classify)?.ok_or_else(|| {
                PrepareError::Refused(format!(
                    "subject `{subject}` has no version equal to mora's {} schema, and auto_register is off: \
                     register it (`mora schemas register` registers the inputs; set auto_register = true for \
                     the outputs) or let the registry's owners do so",
                    t.kind.name()
                ))
            })?
        };
        ids.insert(t.topic.clone(), id);
    }
    Ok(ids)
}

/// A registration refused: the registry's answer, and the field at fault when the schemas say which.
fn refusal(client: &RegistryClient, subject: &str, kind: SchemaKind, e: RegistryError) -> String {
    let detail = match &e {
        RegistryError::Refused { status: 409, .. } => client
            .latest(subject)
            .ok()
            .flatten()
            .and_then(|latest| unreadable(&latest, ours(kind).0))
            .map(|why| format!(" ({why})"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "subject `{subject}`: mora's {} schema was not registered: {e}{detail}",
        kind.name()
    )
}

/// One subject's verdict in `mora schemas check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The subject.
    pub subject: String,
    /// Whether mora reads from or writes to its topic.
    pub direction: &'static str,
    /// The subject's compatibility level.
    pub level: String,
    /// `None`: compatible (or nothing registered yet, said in `note`); `Some`: why not.
    pub problem: Option<String>,
    /// What else to say (no version yet...).
    pub note: Option<String>,
}

/// `mora schemas check`: for every topic mora reads (`inputs`) and writes (`outputs`), whether mora's schema is
/// compatible with what the subject holds under the subject's level; for inputs, also whether mora's reader reads
/// the latest registered version, field by field.
pub fn check(
    client: &RegistryClient,
    cfg: &RegistryConfig,
    inputs: &[TopicSchema],
    outputs: &[TopicSchema],
) -> Result<Vec<Finding>, RegistryError> {
    let mut findings = Vec::new();
    for (direction, list) in [("reads", inputs), ("writes", outputs)] {
        for t in list {
            let subject = subject_of(cfg, t);
            let (text, _) = ours(t.kind);
            let level = client.level(&subject)?;
            let latest = client.latest(&subject)?;
            let Some(latest) = latest else {
                findings.push(Finding {
                    subject,
                    direction,
                    level,
                    problem: None,
                    note: Some("no version registered yet".into()),
                });
                continue;
            };
            let verdict = client.compatible(&subject, text)?;
            // mora's reader must read what producers write, whatever the level says.
            let local = (direction == "reads")
                .then(|| unreadable(&latest, text))
                .flatten();
            let problem = match (verdict, local) {
                (_, Some(why)) => Some(format!("mora cannot read the latest version: {why}")),
                (Some(false), None) => Some(format!(
                    "the registry finds mora's {} schema incompatible with the latest version under {level}{}",
                    t.kind.name(),
                    unreadable(&latest, text)
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default()
                )),
                _ => None,
            };
            findings.push(Finding {
                subject,
                direction,
                level,
                problem,
                note: None,
            });
        }
    }
    Ok(findings)
}

/// `mora schemas register`: registers mora's input schemas under the subjects of the input topics, for producers
/// to write with (or to evolve from). Returns each subject and its id.
pub fn register_inputs(
    client: &RegistryClient,
    cfg: &RegistryConfig,
    inputs: &[TopicSchema],
) -> Result<Vec<(String, u32)>, String> {
    inputs
        .iter()
        .map(|t| {
            let subject = subject_of(cfg, t);
            client
                .register(&subject, ours(t.kind).0)
                .map(|id| (subject.clone(), id))
                .map_err(|e| refusal(client, &subject, t.kind, e))
        })
        .collect()
}
