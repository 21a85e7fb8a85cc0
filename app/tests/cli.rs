//! The `mora` binary as a user runs it.

// Helpers outside #[test] functions panic on failure by design: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn mora() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mora"))
}

/// `/etc/mora` as the Dockerfile lays it out: the embedded decision files (`app/defaults`) with the container's
/// `deploy/config/mora.toml` beside them. Returns the path of `mora.toml`.
fn container_config(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["", "policies", "holidays"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join("defaults").join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let cfg = dir.join("mora.toml");
    std::fs::copy(root.join("../deploy/config/mora.toml"), &cfg).unwrap();
    cfg
}

#[test]
fn demo_writes_actions_and_a_summary_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = mora()
        .args([
            "demo",
            "--debtors",
            "1500",
            "--days",
            "45",
            "--no-progress",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Actions sent:") && stdout.contains("Dialer queue:"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for key in [
        "events",
        "events_per_sec",
        "actions_by_channel",
        "blocked_by_reason",
        "portfolio",
        "dialer_top10",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    let sms = std::fs::read_to_string(dir.path().join("actions/sms.jsonl")).unwrap();
    assert_eq!(
        sms.lines().count() as u64,
        summary["actions_by_channel"]["sms"].as_u64().unwrap()
    );
}

#[test]
fn validate_accepts_the_shipped_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = container_config(dir.path());
    // Its API tokens come from the environment, as in a deployment.
    let out = mora()
        .args(["validate", "--config"])
        .arg(&cfg)
        .env("MORA_API_READ_TOKEN", "read-token-of-the-test-0001")
        .env("MORA_API_ADMIN_TOKEN", "admin-token-of-the-test-0001")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("jurisdictions CL, CO, MX, PE, US, US-MA")
    );
    // Without them, validate refuses what `mora run` would refuse, naming the field.
    let out = mora()
        .args(["validate", "--config"])
        .arg(&cfg)
        .env_remove("MORA_API_READ_TOKEN")
        .env_remove("MORA_API_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "api.tokens[0].token_env: environment variable MORA_API_READ_TOKEN is not set"
        ),
        "{err}"
    );
}

#[test]
fn validate_refuses_an_open_api_off_loopback_and_a_token_under_two_names() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[api]\nlisten = \"0.0.0.0:8080\"\n",
            "api.tokens: required when api.listen (0.0.0.0:8080) is not a loopback address",
        ),
        (
            "[api]\ntokens = [\n  { name = \"ops\", token = \"0123456789abcdef-same\", role = \"admin\" },\n  \
             { name = \"risk\", token = \"0123456789abcdef-same\", role = \"read\" },\n]\n",
            "api.tokens[1] (risk): the same token as api.tokens[0] (ops)",
        ),
        (
            "[api]\nlisten = \"not an address\"\n",
            "api.listen: `not an address`",
        ),
    ];
    for (toml, expected) in cases {
        let cfg = container_config(dir.path());
        let text = std::fs::read_to_string(&cfg).unwrap();
        let start = text.find("[api]").unwrap();
        let end = text[start + 5..]
            .find("\n[")
            .map_or(text.len(), |i| start + 5 + i + 1);
        std::fs::write(&cfg, format!("{}{toml}{}", &text[..start], &text[end..])).unwrap();
        let out = mora()
            .args(["validate", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{toml}: {err}"
        );
    }
}

#[test]
fn the_repository_configuration_validates_from_the_checkout() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mora.toml");
    let out = mora().args(["validate", "--config", cfg]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_configuration_fails_fast_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mora.toml"),
        "[decisions]\nfile = \"decisions.toml\"\nunknown_knob = 1\n",
    )
    .unwrap();
    let out = mora()
        .args(["validate", "--config"])
        .arg(dir.path().join("mora.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mora.toml") && err.contains("unknown_knob"),
        "{err}"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = container_config(dir.path());
    let out = mora()
        .args(["validate", "--config"])
        .arg(&cfg)
        .env("MORA__DECISIONS__FILE", "missing.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn validate_on_a_directory_says_so_rather_than_no_such_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = mora()
        .args(["validate", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is a directory"),
        "{err}"
    );
    let missing = dir.path().join("missing.toml");
    let out = mora()
        .args(["validate", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn demo_serve_on_a_taken_port_fails_instead_of_exiting_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = mora()
        .args([
            "demo",
            "--serve",
            "--no-progress",
            "--debtors",
            "50",
            "--days",
            "2",
        ])
        .args(["--listen", &addr, "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--serve: cannot listen on"),
        "{err}"
    );
}

#[test]
fn sigterm_during_the_demo_stops_it_failing_and_leaves_no_partition_files() {
    let dir = tempfile::tempdir().unwrap();
    let child = mora()
        .args([
            "demo",
            "--debtors",
            "200000",
            "--days",
            "120",
            "--no-api",
            "--no-progress",
            "--out",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let partial = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".partition-")
            })
            .count()
    };
    // Wait until the partitions are writing, then stop the demo as a service manager would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while partial(dir.path()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted demo must not exit 0");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(partial(dir.path()), 0, "partition files left behind");
    assert!(
        !dir.path().join("summary.json").exists(),
        "no summary of a run that did not finish"
    );
}

/// GET `path` on `port` with an optional bearer token: status and body.
fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent.get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    match req.call() {
        Ok(mut resp) => (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

#[test]
fn demo_serves_the_api_of_its_config_with_tokens_and_the_engine_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = container_config(&dir.path().join("etc"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = std::fs::read_to_string(&cfg).unwrap();
    let start = toml.find("[api]").unwrap();
    let end = toml[start..]
        .find("]\n\n")
        .map_or(toml.len(), |e| start + e + 3);
    let token = "demo-admin-token-0123456789";
    let toml = format!(
        "{}[api]\nlisten = \"127.0.0.1:{port}\"\nwatch = false\ntokens = [{{ name = \"ops\", token = \"{token}\", role = \"admin\" }}]\n\n{}",
        &toml[..start],
        &toml[end..]
    );
    std::fs::write(&cfg, toml).unwrap();
    let child = mora()
        .args([
            "demo",
            "--serve",
            "--no-progress",
            "--debtors",
            "500",
            "--days",
            "30",
            "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The simulation over (its summary written), `--serve` keeps serving: query then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !dir.path().join("out/summary.json").exists()
        || http_get(port, "/v1/portfolio", Some(token)).0 != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never served its API"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (anonymous, _) = http_get(port, "/v1/portfolio", None);
    let (wrong, _) = http_get(port, "/v1/portfolio", Some("not-the-token-0123456789"));
    let (status, metrics) = http_get(port, "/metrics", Some(token));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (anonymous, wrong),
        (401, 401),
        "the demo's API asks for the configured tokens"
    );
    assert_eq!(status, 200, "{metrics}");
    for name in [
        "mora_actions_total{channel=\"sms\"}",
        "mora_records_in_total",
        "mora_debtors",
        "mora_blocked_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    assert!(
        out.status.success(),
        "--serve stops cleanly on SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
