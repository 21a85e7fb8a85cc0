use std::fs;

use super::*;

fn copy_deploy_config(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::copy(
        root.join("../deploy/config/mora.toml"),
        dir.join("mora.toml"),
    )
    .unwrap();
    let src = root.join("defaults");
    for sub in ["", "policies", "holidays"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        for e in fs::read_dir(src.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn built_in_defaults_load() {
    let loaded = load(None).unwrap();
    assert_eq!(
        loaded.engine.policies.ids(),
        vec!["CL", "CO", "MX", "PE", "US", "US-MA"]
    );
    assert!(
        loaded
            .engine
            .segmentation
            .names()
            .contains(&"high-value-early".to_string())
    );
}

#[test]
fn the_shipped_files_load_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    copy_deploy_config(dir.path());
    let loaded = load(Some(&dir.path().join("mora.toml"))).unwrap();
    assert_eq!(loaded.engine.policies.ids().len(), 6);
}

fn error_after(edit: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    copy_deploy_config(dir.path());
    edit(dir.path());
    load(Some(&dir.path().join("mora.toml")))
        .unwrap_err()
        .to_string()
}

#[test]
fn an_invalid_decision_value_names_file_field_and_reason() {
    let err = error_after(|d| {
        let p = d.join("decisions.toml");
        let s = fs::read_to_string(&p).unwrap().replace(
            "amount_min = \"2500\"",
            "amount_min = \"2500\"\namount_max = \"100\"",
        );
        fs::write(p, s).unwrap();
    });
    assert!(err.contains("decisions.toml"), "{err}");
    assert!(err.contains("segmentation.rules[1].amount_max"), "{err}");
    assert!(err.contains("greater than amount_min"), "{err}");
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let err = error_after(|d| {
        let p = d.join("decisions.toml");
        let s = fs::read_to_string(&p)
            .unwrap()
            .replace("[priority]", "[priority]\nurgency = 3.0");
        fs::write(p, s).unwrap();
    });
    assert!(
        err.contains("decisions.toml") && err.contains("unknown field `urgency`"),
        "{err}"
    );
}

#[test]
fn a_bad_policy_names_the_policy_file() {
    let err = error_after(|d| {
        let p = d.join("policies/PE.toml");
        let s = fs::read_to_string(&p)
            .unwrap()
            .replace("from = \"07:00\"", "from = \"7am\"");
        fs::write(p, s).unwrap();
    });
    assert!(
        err.contains("PE.toml") && err.contains("windows[0].from") && err.contains("HH:MM"),
        "{err}"
    );
}

#[test]
fn an_unknown_segment_in_a_strategy_is_refused() {
    let err = error_after(|d| {
        let p = d.join("decisions.toml");
        let s = fs::read_to_string(&p).unwrap().replace(
            "segments = [\"self-curers\"]",
            "segments = [\"self-curer\"]",
        );
        fs::write(p, s).unwrap();
    });
    assert!(
        err.contains("strategies[1].segments") && err.contains("unknown segment `self-curer`"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = load(Some(Path::new("/nonexistent/mora.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/mora.toml"), "{err}");
}

#[test]
fn engine_threads_default_to_the_cores_and_zero_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_deploy_config(dir.path());
    let path = dir.path().join("mora.toml");
    let loaded = load(Some(&path)).unwrap();
    assert!(loaded.app.engine.threads() >= 1);
    let base = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{base}\n[engine]\nthreads = 3\n")).unwrap();
    assert_eq!(load(Some(&path)).unwrap().app.engine.threads(), 3);
    fs::write(&path, format!("{base}\n[engine]\nthreads = 0\n")).unwrap();
    let err = load(Some(&path)).unwrap_err().to_string();
    assert!(
        err.contains("mora.toml") && err.contains("engine.threads"),
        "{err}"
    );
}

#[test]
fn a_policies_directory_without_a_policy_is_refused_naming_it() {
    let err = error_after(|d| {
        for e in fs::read_dir(d.join("policies")).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
    });
    assert!(
        err.contains("policies") && err.contains("decisions.policies_dir: no policy file"),
        "{err}"
    );
}

#[test]
fn a_bad_schema_registry_section_fails_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_deploy_config(dir.path());
    let file = dir.path().join("mora.toml");
    let base = fs::read_to_string(&file).unwrap();
    for (section, field) in [
        ("url = [\"registry:8081\"]", "schema_registry.url"),
        ("url = []", "schema_registry.url"),
        (
            "url = [\"http://registry:8081\"]\npassword = \"p\"",
            "schema_registry.username",
        ),
        (
            "url = [\"http://registry:8081\"]\ncache = 0",
            "schema_registry.cache",
        ),
        (
            "url = [\"http://registry:8081\"]\nsubjects = \"by_guess\"",
            "subjects",
        ),
        ("url = [\"http://registry:8081\"]\nretries = 3", "retries"),
    ] {
        fs::write(&file, format!("{base}\n[schema_registry]\n{section}\n")).unwrap();
        let err = load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains(field), "{section}: {err}");
    }
    fs::write(
        &file,
        format!("{base}\n[schema_registry]\nurl = [\"https://registry:8081\"]\n"),
    )
    .unwrap();
    let loaded = load(Some(&file)).unwrap();
    let r = loaded.app.schema_registry.unwrap();
    assert!(r.auto_register);
    assert_eq!(r.subjects, mora_connector_registry::SubjectNaming::Topic);
}
