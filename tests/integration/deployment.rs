//! The deployment files for users with Docker: they cannot run here (no Docker engine), so they are parsed and
//! checked for the services and ports the README names.

use yaml_rust2::{Yaml, YamlLoader};

fn load(path: &str) -> Vec<Yaml> {
    let full = format!("{}/../deploy/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{full} is not valid YAML: {e}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_kafka_scylla_topic_creation_and_the_engine() {
    let doc = &load("compose.yaml")[0];
    let services = &doc["services"];
    for name in ["kafka", "kafka-init", "scylla", "mora"] {
        assert!(
            !services[name].is_badvalue(),
            "compose.yaml lacks service {name}"
        );
    }
    assert_eq!(strings(&services["kafka"]["ports"]), ["9092:9092"]);
    assert_eq!(strings(&services["scylla"]["ports"]), ["9042:9042"]);
    assert_eq!(strings(&services["mora"]["ports"]), ["8080:8080"]);
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller")
    );
    let scylla = strings(&services["scylla"]["command"]).join(" ");
    assert!(
        scylla.contains("--smp 1") && scylla.contains("--overprovisioned 1"),
        "{scylla}"
    );
    assert_eq!(
        services["mora"]["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );
    let init = strings(&services["kafka-init"]["command"]).join("\n");
    for topic in [
        "mora.in.",
        "mora.actions.",
        "mora.audit",
        "mora.dead-letter",
    ] {
        assert!(init.contains(topic), "kafka-init does not create {topic}*");
    }
    let dockerfile = std::fs::read_to_string(format!(
        "{}/../deploy/Dockerfile",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        2,
        "multi-stage"
    );
}

#[test]
fn kubernetes_manifests_describe_the_engine_with_external_kafka_and_scylla() {
    let kustomization = &load("k8s/kustomization.yaml")[0];
    let resources = strings(&kustomization["resources"]);
    let mut kinds = Vec::new();
    for r in &resources {
        for doc in load(&format!("k8s/{r}")) {
            kinds.push(doc["kind"].as_str().unwrap_or_default().to_string());
            if doc["kind"].as_str() == Some("Deployment") {
                let c = &doc["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(8080));
                assert_eq!(
                    c["envFrom"][0]["configMapRef"]["name"].as_str(),
                    Some("mora-endpoints")
                );
            }
            if doc["metadata"]["name"].as_str() == Some("mora-endpoints") {
                assert!(
                    doc["data"]["MORA_KAFKA_BROKERS"]
                        .as_str()
                        .is_some_and(|s| s.contains(":9092"))
                );
                assert!(
                    doc["data"]["MORA_CQL_NODES"]
                        .as_str()
                        .is_some_and(|s| s.contains(":9042"))
                );
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Namespace", "Service"]);
    // Every configuration file the generator mounts exists.
    for generator in kustomization["configMapGenerator"].as_vec().unwrap() {
        for f in strings(&generator["files"]) {
            let path = f.rsplit('=').next().unwrap();
            assert!(
                std::path::Path::new(&format!(
                    "{}/../deploy/k8s/{path}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .exists(),
                "kustomization mounts missing file {path}"
            );
        }
    }
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_the_engine_exports() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/mora-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut sources = String::new();
    for dir in ["connectors/kafka/src", "app/src"] {
        read_rust_sources(&std::path::Path::new(root).join(dir), &mut sources);
    }
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("mora_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.push(name.trim_end_matches("_bucket").to_string());
            }
        }
    }
    assert!(names.len() >= 10);
    for n in names {
        assert!(
            sources.contains(&format!("\"{n}\"")),
            "the dashboard uses {n}, which the engine does not export"
        );
    }
}

/// Appends every `.rs` file under `dir`, sub-folders included, to `out`.
fn read_rust_sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_rust_sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            *out += &std::fs::read_to_string(path).unwrap();
        }
    }
}
