//! The JSON Lines sink.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use mora_domain::action::{Action, AuditRecord};
use mora_domain::ids::Channel;
use mora_domain::time::Ts;
use mora_runtime::Sink;
use mora_schemas::DeadLetter;
use serde::Serialize;

/// Writes actions per channel, dead letters and optionally audit records under one directory.
///
/// `Sink` methods cannot fail, so the first I/O error is kept and returned by [`JsonlSink::finish`]; nothing is
/// written after it.
#[derive(Debug)]
pub struct JsonlSink {
    dir: PathBuf,
    actions: BTreeMap<Channel, BufWriter<File>>,
    dead_letters: BufWriter<File>,
    audit: Option<BufWriter<File>>,
    error: Option<io::Error>,
}

/// A dead letter as JSON (the payload as hex: it is, by definition, not valid Avro).
#[derive(Serialize)]
struct DeadLetterJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<String>,
    payload_hex: String,
    error_kind: &'a str,
    reason: &'a str,
    at: Ts,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl JsonlSink {
    /// Creates `dir/actions/` and the files (truncating earlier ones).
    pub fn create(dir: &Path, audit: bool) -> io::Result<Self> {
        fs::create_dir_all(dir.join("actions"))?;
        let open = |p: PathBuf| File::create(p).map(BufWriter::new);
        let mut actions = BTreeMap::new();
        for c in Channel::ALL {
            actions.insert(c, open(dir.join("actions").join(format!("{c}.jsonl")))?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            actions,
            dead_letters: open(dir.join("dead_letters.jsonl"))?,
            audit: if audit {
                Some(open(dir.join("audit.jsonl"))?)
            } else {
                None
            },
            error: None,
        })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_line(error: &mut Option<io::Error>, w: &mut BufWriter<File>, value: &impl Serialize) {
        if error.is_some() {
            return;
        }
        let result = serde_json::to_writer(&mut *w, value)
            .map_err(io::Error::from)
            .and_then(|()| w.write_all(b"\n"));
        if let Err(e) = result {
            *error = Some(e);
        }
    }

    /// Flushes every file; returns the first error met while writing.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for w in self.actions.values_mut() {
            w.flush()?;
        }
        self.dead_letters.flush()?;
        if let Some(a) = self.audit.as_mut() {
            a.flush()?;
        }
        Ok(())
    }
}

impl Sink for JsonlSink {
    fn action(&mut self, _partition: i32, action: &Action) {
        if let Some(w) = self.actions.get_mut(&action.channel) {
            Self::write_line(&mut self.error, w, action);
        }
    }

    fn audit(&mut self, _partition: i32, record: &AuditRecord) {
        if let Some(w) = self.audit.as_mut() {
            Self::write_line(&mut self.error, w, record);
        }
    }

    fn dead_letter(&mut self, _partition: i32, d: DeadLetter) {
        let json = DeadLetterJson {
            topic: &d.topic,
            partition: d.partition,
            offset: d.offset,
            key: d
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload_hex: hex(&d.payload),
            error_kind: &d.error_kind,
            reason: &d.reason,
            at: d.at,
        };
        Self::write_line(&mut self.error, &mut self.dead_letters, &json);
    }
}
