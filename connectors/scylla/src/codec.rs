//! The compact binary form of a debtor's state: MessagePack with structs as arrays (no field names) behind a
//! format number, so a later layout can be told apart from this one. MessagePack is self-describing, which the
//! decimal amounts' deserialiser needs.

use mora_domain::debtor::Debtor;

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
}
