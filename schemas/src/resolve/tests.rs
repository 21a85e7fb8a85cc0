//! The compiled resolution against mora's own readers: evolved writers read to the same events, refusals name the
//! field, and an older schema version reads as apache-avro's generic resolution reads it.

use apache_avro::Schema;
use apache_avro::types::Value;
use mora_domain::testkit;
use serde_json::{Value as Json, json};

use crate::registry::{Family, Registry, SchemaKind};
use crate::{Wire, WriterSchema, decode_event, decode_event_generic, encode_event};

fn current_json(family: Family) -> Json {
    serde_json::from_str(Registry::global().source(SchemaKind::Event(family))).unwrap()
}

/// The payload union's branches of an envelope schema in JSON form.
fn branches(schema: &mut Json) -> &mut Vec<Json> {
    let fields = schema["fields"].as_array_mut().unwrap();
    let payload = fields.iter_mut().find(|f| f["name"] == "payload").unwrap();
    payload["type"].as_array_mut().unwrap()
}

fn fields_of<'a>(branches: &'a mut [Json], record: &str) -> &'a mut Vec<Json> {
    let b = branches.iter_mut().find(|b| b["name"] == record).unwrap();
    b["fields"].as_array_mut().unwrap()
}

/// Re-encodes `value` (a generic record read with mora's schema) with `writer`, after `edit` reshapes it.
fn reencode(
    writer: &Schema,
    value: Value,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
) -> Vec<u8> {
    let Value::Record(mut top) = value else {
        panic!("not a record")
    };
    edit(&mut top);
    let mut framed = vec![0, 0, 0, 0, 99];
    framed.extend(apache_avro::to_avro_datum(writer, Value::Record(top)).unwrap());
    framed
}

fn generic(family: Family, bytes: &[u8]) -> Value {
    let (_, s) = Registry::global().current(SchemaKind::Event(family));
    apache_avro::from_avro_datum(s, &mut &bytes[..], None).unwrap()
}

fn payload_fields(top: &mut [(String, Value)]) -> &mut Vec<(String, Value)> {
    let (_, p) = top.iter_mut().find(|(n, _)| n == "payload").unwrap();
    let Value::Union(_, inner) = p else {
        panic!("payload is a union")
    };
    let Value::Record(fields) = &mut **inner else {
        panic!("a record")
    };
    fields
}

#[test]
fn the_current_schema_is_read_as_it_is() {
    let text = Registry::global().source(SchemaKind::Event(Family::Payment));
    assert!(matches!(
        WriterSchema::for_family(Family::Payment, text),
        WriterSchema::Current
    ));
}

#[test]
fn an_evolved_writer_reads_to_the_same_event() {
    // The writer adds a field with a default at the top and in the payment, leaves the optional obligation id out
    // and lists the union's branches in another order.
    let mut w = current_json(Family::Payment);
    w["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "source_system", "type": "string", "default": "core"}));
    let b = branches(&mut w);
    let f = fields_of(b, "PaymentReceived");
    f.retain(|x| x["name"] != "obligation_id");
    f.push(json!({"name": "teller", "type": ["null", "string"], "default": null}));
    b.rotate_left(1);
    let writer = Schema::parse_str(&w.to_string()).unwrap();
    let ws = WriterSchema::for_family(Family::Payment, &w.to_string());
    assert!(matches!(ws, WriterSchema::Transcoded(_)), "{ws:?}");

    let ev = testkit::payment(
        "D-1",
        "P-1",
        "USD",
        "12.50",
        None,
        testkit::ts("2026-03-02T14:00:00Z"),
    );
    let raw = encode_event(&ev, Wire::Raw).unwrap();
    let bytes = reencode(&writer, generic(Family::Payment, &raw), |top| {
        top.push(("source_system".into(), Value::String("erp".into())));
        let (_, p) = top.iter_mut().find(|(n, _)| n == "payload").unwrap();
        // PaymentReceived was branch 0; after the rotation it is the last of three.
        if let Value::Union(i, _) = p {
            *i = 2;
        }
        let fields = payload_fields(top);
        fields.retain(|(n, _)| n != "obligation_id");
        fields.push((
            "teller".into(),
            Value::Union(1, Box::new(Value::String("T-9".into()))),
        ));
    });
    assert_eq!(ws.decode_event(Family::Payment, &bytes).unwrap(), ev);
}

#[test]
fn an_older_version_reads_as_schema_resolution_reads_it() {
    let v1 = include_str!("../../avro/compat/account.v1.avsc");
    let ws = WriterSchema::for_family(Family::Account, v1);
    assert!(matches!(ws, WriterSchema::Transcoded(_)), "{ws:?}");
    let writer = Schema::parse_str(v1).unwrap();
    let ev = testkit::debtor_upserted(
        "D-7",
        "US",
        "America/New_York",
        testkit::ts("2026-03-02T14:00:00Z"),
    );
    let raw = encode_event(&ev, Wire::Raw).unwrap();
    let bytes = reencode(&writer, generic(Family::Account, &raw), |top| {
        payload_fields(top).retain(|(n, _)| n != "region");
    });
    let mut builtin = bytes.clone();
    crate::set_schema_id(&mut builtin, 10); // the built-in id of account v1
    let expected = decode_event_generic(Family::Account, &builtin).unwrap();
    assert_eq!(ws.decode_event(Family::Account, &bytes).unwrap(), expected);
    assert_eq!(decode_event(Family::Account, &builtin).unwrap(), expected);
    // A truncated body is refused, as the readers refuse it.
    for cut in 5..bytes.len() {
        assert!(
            ws.decode_event(Family::Account, &bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_field_of_another_type_is_refused_naming_it() {
    let mut w = current_json(Family::Payment);
    let f = fields_of(branches(&mut w), "PaymentReceived");
    let amount = f.iter_mut().find(|x| x["name"] == "amount").unwrap();
    amount["type"] = json!("string");
    let WriterSchema::Refused(reason) = WriterSchema::for_family(Family::Payment, &w.to_string())
    else {
        panic!("accepted")
    };
    assert!(
        reason.contains("PaymentEvent.payload.PaymentReceived.amount"),
        "{reason}"
    );
    assert!(reason.contains("string cannot be read as"), "{reason}");
}

#[test]
fn a_required_field_left_out_is_refused_naming_it() {
    let mut w = current_json(Family::Payment);
    fields_of(branches(&mut w), "PaymentReceived").retain(|x| x["name"] != "currency");
    let WriterSchema::Refused(reason) = WriterSchema::for_family(Family::Payment, &w.to_string())
    else {
        panic!("accepted")
    };
    assert!(
        reason.contains(
            "PaymentEvent.payload.PaymentReceived.currency: the writer has no such field"
        ),
        "{reason}"
    );
}

#[test]
fn another_familys_schema_is_refused() {
    let text = Registry::global().source(SchemaKind::Event(Family::Account));
    let WriterSchema::Refused(reason) = WriterSchema::for_family(Family::Payment, text) else {
        panic!("accepted")
    };
    assert!(
        reason.contains("is not the reader's record PaymentEvent"),
        "{reason}"
    );
}

#[test]
fn a_refused_id_decodes_to_an_error_naming_it() {
    let ws = WriterSchema::Refused("not found in the registry".into());
    let err = ws
        .decode_event(Family::Payment, &[0, 0, 0, 1, 7, 2, 65])
        .unwrap_err();
    assert_eq!(err.to_string(), "schema id 263: not found in the registry");
}

#[test]
fn the_table_shares_entries_with_views() {
    let table = crate::SchemaTable::new();
    let mut view = table.view();
    assert!(view.get(Family::Payment, 5).is_none());
    table.insert(Family::Payment, 5, WriterSchema::Current);
    assert!(matches!(
        view.get(Family::Payment, 5),
        Some(WriterSchema::Current)
    ));
    assert!(view.get(Family::Account, 5).is_none());
    assert!(table.contains(Family::Payment, 5));
}

#[test]
fn a_full_table_starts_again() {
    let table = crate::SchemaTable::with_capacity(2);
    for id in 0..3 {
        table.insert(Family::Payment, id, WriterSchema::Current);
    }
    assert_eq!(table.len(), 1);
    assert!(table.contains(Family::Payment, 2));
}
