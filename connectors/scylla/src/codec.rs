//! The compact binary form of a debtor's state: MessagePack with structs as arrays (no field names) behind a
//! format number, so a later layout can be told apart from this one. MessagePack is self-describing, which the
//! decimal amounts' deserialiser needs.

use mora_domain::debtor::Debtor;
use mora_runtime::{LabelledDay, PartitionSummary};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StateError;

/// Format of the `state` column written by this version.
pub const FORMAT: i16 = 1;

/// Encodes a debtor's state.
pub fn encode(d: &Debtor) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec(d).map_err(|e| StateError::Corrupt {
        debtor: d.id.to_string(),
        reason: format!("cannot encode: {e}"),
    })
}

/// Decodes a state written in `format`.
pub fn decode(debtor: &str, format: i16, bytes: &[u8]) -> Result<Debtor, StateError> {
    if format != FORMAT {
        return Err(StateError::Corrupt {
            debtor: debtor.into(),
            reason: format!(
                "state format {format} is not known to this version (it reads {FORMAT})"
            ),
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| StateError::Corrupt {
        debtor: debtor.into(),
        reason: e.to_string(),
    })
}

/// Format of the `counters` (KPI days) and `summary` columns written by this version.
pub const AGGREGATE_FORMAT: i16 = 1;

fn encode_aggregate<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec(v).map_err(|e| StateError::Database(format!("encoding {what}: {e}")))
}

fn decode_aggregate<T: DeserializeOwned>(
    what: &str,
    format: i16,
    bytes: &[u8],
) -> Result<T, StateError> {
    if format != AGGREGATE_FORMAT {
        return Err(StateError::Database(format!(
            "{what}: format {format} is not known to this version (it reads {AGGREGATE_FORMAT})"
        )));
    }
    rmp_serde::from_slice(bytes).map_err(|e| StateError::Database(format!("decoding {what}: {e}")))
}

/// Encodes one day's KPI counters.
pub fn encode_kpi_day(day: &LabelledDay) -> Result<Vec<u8>, StateError> {
    encode_aggregate("KPI counters", day)
}

/// Decodes one day's KPI counters.
pub fn decode_kpi_day(format: i16, bytes: &[u8]) -> Result<LabelledDay, StateError> {
    decode_aggregate("KPI counters", format, bytes)
}

/// Encodes a partition summary.
pub fn encode_summary(s: &PartitionSummary) -> Result<Vec<u8>, StateError> {
    encode_aggregate("partition summary", s)
}

/// Decodes a partition summary.
pub fn decode_summary(format: i16, bytes: &[u8]) -> Result<PartitionSummary, StateError> {
    decode_aggregate("partition summary", format, bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mora_domain::testkit::{self, ts};
    use mora_runtime::{CollectingSink, Operator, PartitionWorker};

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
        assert!(!d.contacts.is_empty() && !d.issued.is_empty());
        let bytes = encode(d).unwrap();
        assert_eq!(&decode("D-1", FORMAT, &bytes).unwrap(), d);
        assert!(bytes.len() < 600, "{} bytes", bytes.len());
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
