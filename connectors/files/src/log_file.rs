//! Input-log export files: one JSON object per line with a record's origin and its bytes as hex, so that a log
//! taken from Kafka can be replayed later (or elsewhere) without the brokers.
//!
//! ```text
//! {"family":"payment","topic":"mora.in.payment","partition":0,"offset":41,"timestamp":1772460000000,"key_hex":"442d31","payload_hex":"0000000003..."}
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use mora_runtime::LogRecord;
use mora_schemas::Family;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Line {
    family: String,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key_hex: Option<String>,
    payload_hex: String,
}

/// Writes `records` to `path` (truncating it).
pub fn write_log<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a LogRecord>,
) -> io::Result<u64> {
    let mut w = BufWriter::new(File::create(path)?);
    let mut n = 0;
    for r in records {
        let line = Line {
            family: r.family.name().to_string(),
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key_hex: r.key.as_deref().map(crate::sink::hex),
            payload_hex: crate::sink::hex(&r.payload),
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

/// Reads an export file; an unreadable line fails naming its line number.
pub fn read_log(path: &Path) -> io::Result<Vec<LogRecord>> {
    let bad = |n: usize, why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}:{n}: {why}", path.display()),
        )
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?;
        let family = Family::parse(&l.family)
            .ok_or_else(|| bad(i + 1, format!("unknown family `{}`", l.family)))?;
        out.push(LogRecord {
            family,
            topic: l.topic,
            partition: l.partition,
            offset: l.offset,
            timestamp: l.timestamp,
            key: l
                .key_hex
                .as_deref()
                .map(unhex)
                .transpose()
                .map_err(|e| bad(i + 1, format!("key_hex: {e}")))?,
            payload: unhex(&l.payload_hex).map_err(|e| bad(i + 1, format!("payload_hex: {e}")))?,
        });
    }
    Ok(out)
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let recs = vec![LogRecord {
            family: Family::Clock,
            topic: "mora.in.clock".into(),
            partition: 2,
            offset: 7,
            timestamp: 1_772_460_000_000,
            key: Some(b"2".to_vec()),
            payload: vec![0, 0, 0, 0, 11, 8],
        }];
        assert_eq!(write_log(&p, &recs).unwrap(), 1);
        assert_eq!(read_log(&p).unwrap(), recs);
        std::fs::write(&p, "{\"family\":\"clock\"}\n").unwrap();
        let e = read_log(&p).unwrap_err().to_string();
        assert!(e.contains("log.jsonl:1"), "{e}");
    }
}
