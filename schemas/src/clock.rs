//! Clock records: time passing, as data in the input log.

use apache_avro::types::Value;
use compact_str::CompactString;
use mora_domain::time::Ts;

use crate::codec::{self, Fields, record, string};
use crate::error::{DecodeError, EncodeError};
use crate::registry::{Family, SchemaKind, Wire};

/// One clock record: partition `partition`'s time has reached `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockTick {
    /// Who wrote it (`wall`, `sim`, a tool's name); never empty.
    pub source: CompactString,
    /// The input partition whose clock this sets.
    pub partition: i32,
    /// The instant time has reached.
    pub at: Ts,
}

/// Encodes a clock record.
pub fn encode_clock(t: &ClockTick, wire: Wire) -> Result<Vec<u8>, EncodeError> {
    let value = record(vec![
        ("source", string(&t.source)),
        ("partition", Value::Int(t.partition)),
        ("at", Value::TimestampMillis(t.at.0)),
    ]);
    codec::encode(SchemaKind::Event(Family::Clock), value, wire)
}

/// Decodes a clock record.
pub fn decode_clock(bytes: &[u8]) -> Result<ClockTick, DecodeError> {
    let mut f = Fields::of(
        codec::decode(SchemaKind::Event(Family::Clock), bytes)?.value,
        "clock",
    )?;
    Ok(ClockTick {
        source: f.id("source")?,
        partition: f.int("partition")?,
        at: f.ts("at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_framings() {
        let t = ClockTick {
            source: "wall".into(),
            partition: 0,
            at: Ts(1_772_460_000_000),
        };
        for wire in [Wire::Raw, Wire::Confluent] {
            assert_eq!(decode_clock(&encode_clock(&t, wire).unwrap()).unwrap(), t);
        }
        let bytes = encode_clock(&t, Wire::Confluent).unwrap();
        assert!(crate::decode_event(Family::Clock, &bytes).is_err());
        assert!(crate::decode_event(Family::Payment, &bytes).is_err());
    }

    #[test]
    fn an_empty_source_is_refused() {
        let t = ClockTick {
            source: "".into(),
            partition: 1,
            at: Ts(0),
        };
        let bytes = encode_clock(&t, Wire::Confluent).unwrap();
        assert!(decode_clock(&bytes).is_err());
    }
}
