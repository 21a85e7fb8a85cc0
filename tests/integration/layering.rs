//! The crates depend on each other one way, inner to outer (ARCHITECTURE.md): read from their manifests, so an arrow
//! pointing the wrong way fails here, with the manifest that added it.

use std::collections::BTreeSet;

/// The names under `[dependencies]` of the manifest at `path` (relative to the repository root).
fn dependencies(path: &str) -> BTreeSet<String> {
    let file = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap();
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    assert!(
        !names.is_empty() || path == "tests/Cargo.toml",
        "{file}: no dependencies read"
    );
    names
}

/// Fails naming every dependency of `path` in `forbidden`.
fn refuses(path: &str, forbidden: &[&str], why: &str) {
    let deps = dependencies(path);
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(found.is_empty(), "{path} depends on {found:?}: {why}");
}

const SERVERS: [&str; 6] = [
    "rdkafka",
    "rdkafka-sys",
    "scylla",
    "tokio",
    "axum",
    "futures",
];

#[test]
fn the_domain_names_no_other_crate_of_mora_and_no_server_clock_or_randomness() {
    let deps = dependencies("engine/domain/Cargo.toml");
    let own: Vec<&String> = deps.iter().filter(|d| d.starts_with("mora")).collect();
    assert!(own.is_empty(), "the domain depends on {own:?}");
    refuses(
        "engine/domain/Cargo.toml",
        &[&SERVERS[..], &["rand", "rand_chacha", "tikv-jemallocator"]].concat(),
        "the decision core does no I/O and takes time and randomness as data",
    );
}

#[test]
fn schemas_and_runtime_name_no_server_and_only_crates_below_them() {
    refuses(
        "schemas/Cargo.toml",
        &[&SERVERS[..], &["mora-runtime"]].concat(),
        "the contract sits below the runtime",
    );
    refuses(
        "engine/runtime/Cargo.toml",
        &[
            &SERVERS[..],
            &[
                "mora-sim",
                "mora-connector-kafka",
                "mora-connector-scylla",
                "mora-connector-files",
                "mora-connector-registry",
                "ureq",
            ],
        ]
        .concat(),
        "the runtime defines ports; connectors implement them",
    );
}

#[test]
fn connectors_name_no_other_connector_and_no_simulator() {
    let connectors = [
        "mora-connector-files",
        "mora-connector-kafka",
        "mora-connector-scylla",
        "mora-connector-registry",
        "mora-sim",
        "mora-loadgen",
        "mora",
    ];
    for path in [
        "connectors/files/Cargo.toml",
        "connectors/kafka/Cargo.toml",
        "connectors/scylla/Cargo.toml",
        "connectors/registry/Cargo.toml",
    ] {
        refuses(
            path,
            &connectors,
            "connectors meet only through the runtime's ports; the binary wires them",
        );
    }
    refuses(
        "connectors/kafka/Cargo.toml",
        &["scylla"],
        "the pipeline reaches the state store through mora_runtime::StateStore",
    );
    refuses(
        "connectors/scylla/Cargo.toml",
        &["rdkafka", "rdkafka-sys"],
        "the state store knows nothing of Kafka",
    );
    refuses(
        "connectors/kafka/Cargo.toml",
        &["ureq"],
        "the pipeline reaches the schema registry through mora_runtime::SchemaSource",
    );
    refuses(
        "connectors/registry/Cargo.toml",
        &[&SERVERS[..], &["mora-domain"]].concat(),
        "the registry client is HTTP and the Avro contract only",
    );
}
