//! The stored form of a debtor's state, a day's KPI counters and a partition's summary, behind a format number so
//! that a later layout can be told apart from an earlier one. Every store keeps these bytes as they are, so the
//! format belongs to the runtime, not to a database connector.
//!
//! Debtor state, format 3 (written since the compact debtor): a layout of mora's own, written and read field by
//! field (`layout`): no names, lengths only for text and sequences, integers as varints, amounts as a scale and
//! an integer mantissa, dates as day numbers; a typical debtor decodes without allocating. A field added or
//! reordered is a new format: the decoder of every earlier one stays, and a row read in an earlier format is
//! written in the current one on its next flush. Still read: format 2 (the fields in declaration order in postcard's
//! wire format, through serde) and format 1 (MessagePack, structs as arrays, amounts and dates as text).
//!
//! KPI counters and summaries stay MessagePack (format 1): they are written once per interval, not per event.

use mora_domain::debtor::Debtor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kpis::LabelledDay;
use crate::summary::PartitionSummary;

/// A stored value that cannot be written or read back by this version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value was written in a format this version does not know.
    #[error(
        "{what} of `{key}`: format {format} is not known to this version (it reads up to {known})"
    )]
    UnknownFormat {
        /// What was being read (debtor state, KPI counters, partition summary).
        what: &'static str,
        /// Whose (a debtor id, a partition).
        key: String,
        /// The stored format number.
        format: i16,
        /// The format this version reads.
        known: i16,
    },
    /// The bytes do not decode in their declared format.
    #[error("{what} of `{key}` is unreadable")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// Whose.
        key: String,
        /// The decoder's complaint.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value could not be encoded (a bug: every state the engine builds is encodable).
    #[error("{what} of `{key}` cannot be encoded")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// Whose.
        key: String,
        /// The encoder's complaint.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Format of the `state` column written by this version.
pub const FORMAT: i16 = 3;

/// The postcard format written before [`FORMAT`] 3, still read.
const POSTCARD: i16 = 2;

/// The MessagePack format written before format 2, still read.
const MESSAGEPACK: i16 = 1;

/// Encodes a debtor's state in [`FORMAT`].
pub fn encode(d: &Debtor) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    encode_into(d, &mut out);
    Ok(out)
}

/// Appends a debtor's state in [`FORMAT`] to `out` (a caller encoding many reuses one buffer).
pub fn encode_into(d: &Debtor, out: &mut Vec<u8>) {
    super::layout::write(d, out);
}

/// Encodes a debtor's state in format 2, as versions before format 3 wrote it (tests of the upgrade path, the
/// codec benchmark's comparison).
pub fn encode_format_2(d: &Debtor) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(d).map_err(|e| CodecError::Encode {
        what: "debtor state",
        key: d.id.to_string(),
        source: e.into(),
    })
}

/// Decodes a state written in `format` (any format this version knows).
pub fn decode(debtor: &str, format: i16, bytes: &[u8]) -> Result<Debtor, CodecError> {
    let what = "debtor state";
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| CodecError::Decode {
        what,
        key: debtor.into(),
        source,
    };
    match format {
        FORMAT => super::layout::read(bytes).map_err(|e| failed(e.into())),
        POSTCARD => postcard::from_bytes(bytes).map_err(|e| failed(e.into())),
        MESSAGEPACK => rmp_serde::from_slice(bytes).map_err(|e| failed(e.into())),
        _ => Err(CodecError::UnknownFormat {
            what,
            key: debtor.into(),
            format,
            known: FORMAT,
        }),
    }
}

/// Format of the `counters` (KPI days) and `summary` columns written by this version.
pub const AGGREGATE_FORMAT: i16 = 1;

fn encode_aggregate<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec(v).map_err(|e| CodecError::Encode {
        what,
        key: "partition".into(),
        source: e.into(),
    })
}

/// Decodes `bytes` stored in `formats.0` as a `T` of format `formats.1`.
fn decode_as<T: DeserializeOwned>(
    what: &'static str,
    key: &str,
    (format, known): (i16, i16),
    bytes: &[u8],
) -> Result<T, CodecError> {
    if format != known {
        return Err(CodecError::UnknownFormat {
            what,
            key: key.into(),
            format,
            known,
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode {
        what,
        key: key.into(),
        source: e.into(),
    })
}

/// Encodes one day's KPI counters.
pub fn encode_kpi_day(day: &LabelledDay) -> Result<Vec<u8>, CodecError> {
    encode_aggregate("KPI counters", day)
}

/// Decodes one day's KPI counters.
pub fn decode_kpi_day(format: i16, bytes: &[u8]) -> Result<LabelledDay, CodecError> {
    decode_as(
        "KPI counters",
        "partition",
        (format, AGGREGATE_FORMAT),
        bytes,
    )
}

/// Encodes a partition summary.
pub fn encode_summary(s: &PartitionSummary) -> Result<Vec<u8>, CodecError> {
    encode_aggregate("partition summary", s)
}

/// Decodes a partition summary.
pub fn decode_summary(format: i16, bytes: &[u8]) -> Result<PartitionSummary, CodecError> {
    decode_as(
        "partition summary",
        "partition",
        (format, AGGREGATE_FORMAT),
        bytes,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{CollectingSink, Operator, PartitionWorker};
    use mora_domain::testkit::{self, ts};

    use super::*;

    #[test]
    fn a_debtor_with_history_round_trips() {
        let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-02T14:00:00Z");
        for ev in [
            testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
            testkit::obligation("D-1", "L1", "COP", "400000.50", "2026-03-10", at),
        ] {
            w.on_event(&ev, &mut sink).unwrap();
        }
        w.on_tick(ts("2026-03-20T00:00:00Z"), &mut sink);
        let d = w.debtor("D-1").unwrap();
        assert!(!d.cold().contacts.is_empty() && !d.cold().issued.is_empty());
        let bytes = encode(d).unwrap();
        assert_eq!(&decode("D-1", FORMAT, &bytes).unwrap(), d);
        assert!(bytes.len() < 300, "{} bytes", bytes.len());
    }

    #[test]
    fn every_truncation_and_byte_flip_is_refused_or_read_without_panicking() {
        let mut w = PartitionWorker::new(0, Arc::new(testkit::engine()));
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-02T14:00:00Z");
        for ev in [
            testkit::debtor_upserted("D-1", "CO", "America/Bogota", at),
            testkit::obligation("D-1", "L1", "COP", "400000.50", "2026-03-10", at),
        ] {
            w.on_event(&ev, &mut sink).unwrap();
        }
        w.on_tick(ts("2026-03-20T00:00:00Z"), &mut sink);
        let bytes = encode(w.debtor("D-1").unwrap()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode("D-1", FORMAT, &bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode("D-1", FORMAT, &longer).is_err(), "a byte too many");
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = decode("D-1", FORMAT, &b);
            }
        }
    }

    #[test]
    fn unknown_formats_and_garbage_are_refused_by_name() {
        let err = decode("D-7", 9, b"").unwrap_err().to_string();
        assert!(err.contains("D-7") && err.contains("format 9"), "{err}");
        assert!(decode("D-7", FORMAT, b"\xff\xff").is_err());
    }

    #[test]
    fn summaries_and_kpi_days_round_trip() {
        let mut w = PartitionWorker::new(3, Arc::new(testkit::engine()));
        let mut sink = CollectingSink::default();
        let at = ts("2026-03-02T14:00:00Z");
        for i in 0..20 {
            let id = format!("D-{i}");
            w.on_event(
                &testkit::debtor_upserted(&id, "CO", "America/Bogota", at),
                &mut sink,
            )
            .unwrap();
            w.on_event(
                &testkit::obligation(&id, "L1", "COP", "400000.50", "2026-03-10", at),
                &mut sink,
            )
            .unwrap();
        }
        w.on_tick(ts("2026-03-20T00:00:00Z"), &mut sink);
        let summary = w.summary(5);
        assert!(summary.queues.values().any(|q| q.truncated()));
        let bytes = encode_summary(&summary).unwrap();
        assert_eq!(decode_summary(AGGREGATE_FORMAT, &bytes).unwrap(), summary);
        let days = w.take_kpi_days();
        assert!(!days.is_empty());
        for (_, day) in &days {
            let bytes = encode_kpi_day(day).unwrap();
            assert_eq!(&decode_kpi_day(AGGREGATE_FORMAT, &bytes).unwrap(), day);
        }
        assert!(w.take_kpi_days().is_empty(), "taken days are clean");
        assert!(
            decode_summary(2, &bytes)
                .unwrap_err()
                .to_string()
                .contains("format 2")
        );
    }
}
