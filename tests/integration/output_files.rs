//! The JSON Lines files of `mora demo` and `mora replay` are a contract too: each kind of line has a published JSON
//! Schema (`docs/schemas/`), and every line of a real run validates against it. No server needed.

use std::path::Path;

use mora_runtime::Sink;
use mora_schemas::DeadLetter;
use serde_json::Value;

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Validates every line of `file`; returns how many there were.
fn validate(v: &jsonschema::Validator, file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    for (i, line) in text.lines().enumerate() {
        let value: Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{}:{}: {errors:?}\n{line}",
            file.display(),
            i + 1
        );
    }
    text.lines().count()
}

#[test]
fn every_line_of_a_demo_run_matches_its_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = mora::demo::DemoArgs::small(dir.path());
    args.audit = true;
    let engine = mora::config::load(None).unwrap().engine;
    mora::demo::run(&args, engine).unwrap();
    let actions = validator("action.schema.json");
    let mut n = 0;
    for e in std::fs::read_dir(dir.path().join("actions")).unwrap() {
        n += validate(&actions, &e.unwrap().path());
    }
    assert!(n > 1000, "{n} actions");
    let audits = validate(
        &validator("audit.schema.json"),
        &dir.path().join("audit.jsonl"),
    );
    assert!(audits > n, "{audits} audit records");
    validate(
        &validator("dead_letter.schema.json"),
        &dir.path().join("dead_letters.jsonl"),
    );
}

#[test]
fn dead_letters_as_the_sink_writes_them_match_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = mora_connector_files::JsonlSink::create(dir.path(), false).unwrap();
    for (key, kind) in [(Some(b"D-1".to_vec()), "decode"), (None, "rejected")] {
        sink.dead_letter(
            2,
            DeadLetter {
                topic: "mora.in.payment".into(),
                partition: 2,
                offset: 41,
                key,
                payload: vec![0, 0, 0, 0, 3, 0xff],
                error_kind: kind.into(),
                reason: "schema id 3: not found".into(),
                at: mora_domain::testkit::ts("2026-03-02T14:00:00Z"),
            },
        );
    }
    sink.finish().unwrap();
    let n = validate(
        &validator("dead_letter.schema.json"),
        &dir.path().join("dead_letters.jsonl"),
    );
    assert_eq!(n, 2);
}

#[test]
fn the_schemas_refuse_what_the_contract_excludes() {
    let v = validator("action.schema.json");
    let good: Value = serde_json::from_str(
        r#"{"action_id":"021547a05d06b795d6162a183726a996","debtor_id":"D1","channel":"sms","template":"t",
        "amounts_due":{"PEN":"2514.0000"},"overdue_base":"0","dpd":0,"stage":"preventive","segment":"s",
        "priority":10660,"reason":{"strategy":"s","step":"x","trigger":"schedule"},"jurisdiction":"PE",
        "created_at":"2026-01-05T13:15:00.000Z","not_before":"2026-01-05T13:15:00.000Z","not_after":null,
        "arm":"champion"}"#,
    )
    .unwrap();
    assert!(v.is_valid(&good));
    for (field, bad) in [
        ("amounts_due", serde_json::json!({"PEN": 2514.0})),
        ("channel", serde_json::json!("fax")),
        ("not_before", serde_json::json!("2026-01-05 13:15")),
    ] {
        let mut x = good.clone();
        x[field] = bad;
        assert!(!v.is_valid(&x), "{field} should be refused");
    }
}
