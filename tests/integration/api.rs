//! The HTTP API of a running engine (`mora run`, real Kafka and Cassandra): every endpoint's answers checked
//! against a clean in-memory run over the same events, tokens and roles, an invalid reload refused with the old
//! configuration still in force, and metrics after traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use mora_domain::action::DecisionKind;
use mora_runtime::{Dim, KpiCounts, Portfolio};
use serde_json::{Value, json};

use crate::state::World;

const READ: &str = "risk-team-token-0123456789";
const ADMIN: &str = "ops-admin-token-0123456789";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(port: u16) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self {
            base: format!("http://127.0.0.1:{port}"),
            agent,
        }
    }

    /// Whether the API answers at all (it opens once the instance's engine threads have started).
    fn answers(&self) -> bool {
        self.agent
            .get(format!("{}/v1/portfolio", self.base))
            .header("Authorization", format!("Bearer {READ}"))
            .call()
            .is_ok()
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn post(&self, path: &str, token: &str) -> (u16, Value) {
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send_empty()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[test]
fn every_endpoint_answers_what_the_events_imply_and_reloads_are_checked() {
    let w = World::new();
    // The decision files live in the test's directory so the reload below can break and mend them.
    let decisions = w.dir.join("config");
    copy_dir(
        Path::new(&format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"))),
        &decisions,
    );
    let port = free_port();
    let toml = std::fs::read_to_string(&w.config).unwrap();
    let deploy = format!("{}/../app/defaults", env!("CARGO_MANIFEST_DIR"));
    let toml = toml
        .replace(&deploy, &decisions.display().to_string())
        .replace("[api]\nlisten = \"127.0.0.1:0\"\n", "")
        // Short queue heads, so that paging through partitions another instance owns reaches their end.
        .replace(
            "max_lag = \"5s\"\n",
            "max_lag = \"5s\"\nsummary_interval = \"1s\"\nsummary_queue_depth = 50\n",
        )
        + &format!(
            r#"
[api]
listen = "127.0.0.1:{port}"
watch = false
tokens = [
    {{ name = "risk", token = "{READ}", role = "read" }},
    {{ name = "ops", token = "{ADMIN}", role = "admin" }},
]
"#
        );
    std::fs::write(&w.config, toml).unwrap();
    w.loadgen(20_000);
    let mut engine = w.start_engine(1);
    w.wait_consumed(&mut engine, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(1));
    let api = Client::new(port);
    let mut reference = w.reference_workers();

    // Health, readiness, the description.
    assert_eq!(api.get("/healthz", None).0, 200);
    assert_eq!(api.get("/readyz", None).0, 200);
    let (s, spec) = api.get("/openapi.json", None);
    assert_eq!(s, 200);
    let described: Value =
        serde_json::from_str(include_str!("../../app/src/api/openapi.json")).unwrap();
    assert_eq!(
        spec, described,
        "served as the file deploy/test.sh validates as OpenAPI 3.0.3"
    );
    for path in [
        "/v1/debtors/{id}",
        "/v1/portfolio",
        "/v1/kpis",
        "/v1/queues/{name}",
        "/v1/admin/reload",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} not described");
    }

    // Tokens and roles.
    let (s, body) = api.get("/v1/portfolio", None);
    assert_eq!((s, body["error"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        api.get("/v1/portfolio", Some("not-a-token-at-all-000000"))
            .0,
        401
    );
    let (s, body) = api.post("/v1/admin/reload", READ);
    assert_eq!((s, body["error"].as_str()), (403, Some("forbidden")));

    // Portfolio: the same figures as the clean run.
    let mut expected = Portfolio::default();
    for (rw, _) in &reference {
        expected.merge(&rw.portfolio());
    }
    let (s, body) = api.get("/v1/portfolio", Some(READ));
    assert_eq!(s, 200);
    let got: Value = body["portfolio"].clone();
    assert_eq!(got, serde_json::to_value(&expected).unwrap());
    assert_eq!(body["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(body["sources"]["memory"].as_array().unwrap().len(), 4);

    // A debtor: state and derived figures as the clean run has them, with recent decisions.
    let (rw, sink) = reference
        .iter()
        .max_by_key(|(_, sink)| sink.actions.len())
        .unwrap();
    let busiest = sink.actions.last().unwrap().debtor_id.clone();
    let d = rw.debtor(&busiest).unwrap();
    let (s, body) = api.get(&format!("/v1/debtors/{busiest}"), Some(READ));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["dpd"], d.derived.dpd);
    assert_eq!(body["priority"], d.derived.priority);
    assert_eq!(body["stage"], d.derived.stage.as_str());
    assert_eq!(body["state"], serde_json::to_value(d).unwrap());
    assert!(body["timers"].get("next_wake").is_some());
    let recent = body["recent_decisions"].as_array().unwrap();
    assert!(!recent.is_empty(), "recent decisions of {busiest}");
    assert!(recent.iter().all(|r| r["debtor_id"] == busiest.as_str()));
    assert_eq!(api.get("/v1/debtors/NOBODY", Some(READ)).0, 404);

    // KPIs: counts equal to the clean run's (the rates are computed from them).
    let mut sums: BTreeMap<Dim, KpiCounts> = BTreeMap::new();
    for (rw, _) in &reference {
        for (dim, c) in rw.kpis(90) {
            sums.entry(dim).or_default().add(&c);
        }
    }
    let all = &sums[&Dim::All];
    let (s, body) = api.get("/v1/kpis?window=90d", Some(READ));
    assert_eq!(s, 200, "{body}");
    let k = &body["all"];
    assert_eq!(k["cures"], all.cures);
    assert_eq!(k["promises_kept"], all.promises_kept);
    assert_eq!(k["promises_broken"], all.promises_broken);
    let sent: u64 = k["actions"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sent, all.actions.values().sum::<u64>());
    assert!(sent > 0 && all.promises_kept + all.promises_broken > 0);
    assert!(body["by_segment"].as_object().unwrap().len() > 1);
    assert!(
        body["by_arm"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("/champion"))
    );
    assert_eq!(api.get("/v1/kpis?window=forever", Some(READ)).0, 400);
    let promises: usize = reference
        .iter()
        .flat_map(|(_, s)| &s.audits)
        .filter(|r| {
            matches!(
                r.kind,
                DecisionKind::PromiseKept | DecisionKind::PromiseBroken
            )
        })
        .count();
    assert!(promises as u64 >= all.promises_kept + all.promises_broken);

    let (s, body) = api.get("/v1/no-such-thing", Some(READ));
    assert_eq!(
        (s, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    // Page sizes outside 1..=1000 are refused with the bounds, as JSON.
    for bad in ["0", "1001", "1e9", "-1", "many"] {
        let (s, body) = api.get(&format!("/v1/queues/dialer?limit={bad}"), Some(READ));
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("bad_limit")),
            "limit={bad}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("from 1 to 1000"),
            "{body}"
        );
    }

    // A work queue, page by page: every member once, in rank order, as many as the clean run has.
    let expected_members: BTreeSet<String> = reference
        .iter()
        .flat_map(|(rw, _)| rw.queue_top("dialer", usize::MAX))
        .map(|(_, id)| id.to_string())
        .collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last_rank = i64::MAX;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/queues/dialer?limit=37&cursor={c}"),
            None => "/v1/queues/dialer?limit=37".to_string(),
        };
        let (s, body) = api.get(&path, Some(READ));
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            body["total"].as_u64().unwrap() as usize,
            expected_members.len()
        );
        for item in body["items"].as_array().unwrap() {
            let rank = item["rank"].as_i64().unwrap();
            assert!(rank <= last_rank, "queue out of rank order");
            assert!(item["priority"].is_i64(), "{item}");
            last_rank = rank;
            seen.push(item["debtor_id"].as_str().unwrap().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a debtor on two pages");
    assert_eq!(unique, expected_members);
    assert!(expected_members.len() > 37, "the queue spans several pages");
    assert_eq!(api.get("/v1/queues/nope", Some(READ)).0, 404);
    assert_eq!(api.get("/v1/queues/dialer?cursor=x", Some(READ)).0, 400);

    // An invalid configuration is refused naming the file and field; the one in force stays.
    let file = decisions.join("decisions.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("[priority]", "[priority]\ndpd = -5.0")).unwrap();
    let (s, body) = api.post("/v1/admin/reload", ADMIN);
    assert_eq!(s, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("decisions.toml"), "{message}");
    let (_, after) = api.get(&format!("/v1/debtors/{busiest}"), Some(READ));
    assert_eq!(
        after["priority"], d.derived.priority,
        "the old configuration is in force"
    );
    // The files put back as they were parse to the configuration in force: nothing is re-evaluated, no figure moves.
    std::fs::write(&file, &good).unwrap();
    let (s, body) = api.post("/v1/admin/reload", ADMIN);
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("unchanged")),
        "{body}"
    );
    let (_, same) = api.get(&format!("/v1/debtors/{busiest}"), Some(READ));
    assert_eq!(
        (&same["priority"], &same["dpd"]),
        (&after["priority"], &after["dpd"]),
        "an unchanged reload changes nothing"
    );
    // A valid change: swapped in, every owned debtor re-derived.
    std::fs::write(&file, good.replace("risk = 30.0", "risk = 31.0")).unwrap();
    let (s, body) = api.post("/v1/admin/reload", ADMIN);
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("reloaded")),
        "{body}"
    );
    let debtors: usize = reference.iter().map(|(rw, _)| rw.len()).sum();
    assert_eq!(
        body["report"]["debtors"].as_u64().unwrap() as usize,
        debtors
    );
    // The reload re-derived every debtor at its partition's clock; so does the reference, with the same files.
    let changed = std::sync::Arc::new(mora::config::load(Some(&w.config)).unwrap().engine);
    for (rw, _) in &mut reference {
        rw.set_engine(changed.clone());
    }

    // One validation for reload, validate and run: a section only a restart can apply, or one mora does not know,
    // is refused by name and nothing changes; tokens rotate by reload.
    let runtime = std::fs::read_to_string(&w.config).unwrap();
    for (changed, named) in [
        (
            runtime.replace("commit_interval = \"100ms\"", "commit_interval = \"200ms\""),
            "`kafka`",
        ),
        (format!("{runtime}\n[bogus]\nx = 1\n"), "bogus"),
    ] {
        std::fs::write(&w.config, changed).unwrap();
        let (s, body) = api.post("/v1/admin/reload", ADMIN);
        assert_eq!(s, 422, "{body}");
        assert!(body["message"].as_str().unwrap().contains(named), "{body}");
    }
    let rotated = "rotated-read-token-0000000001";
    std::fs::write(&w.config, runtime.replace(READ, rotated)).unwrap();
    let (s, body) = api.post("/v1/admin/reload", ADMIN);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        api.get("/v1/portfolio", Some(READ)).0,
        401,
        "the old token is refused"
    );
    assert_eq!(
        api.get("/v1/portfolio", Some(rotated)).0,
        200,
        "the new one accepted"
    );
    std::fs::write(&w.config, &runtime).unwrap();
    let (s, body) = api.post("/v1/admin/reload", ADMIN);
    assert_eq!(s, 200, "{body}");
    assert_eq!(api.get("/v1/portfolio", Some(READ)).0, 200);

    // Metrics after traffic.
    let mut resp = ureq::get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap();
    let text = resp.body_mut().read_to_string().unwrap();
    for name in [
        "mora_records_in_total",
        "mora_actions_total",
        "mora_blocked_total",
        "mora_commits_total",
        "mora_processing_seconds_bucket",
        "mora_consumer_lag_records",
        "mora_state_flush_lag_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(
        !text.contains(busiest.as_str()),
        "no debtor id in metric labels"
    );

    // A second instance joins: each owns part of the partitions now; a debtor on the other's partitions is read
    // from the state store.
    let port2 = free_port();
    let second = w.dir.join("mora-2.toml");
    std::fs::write(
        &second,
        std::fs::read_to_string(&w.config)
            .unwrap()
            .replace("instance_id = \"engine-1\"", "instance_id = \"engine-2\"")
            .replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{port2}")),
    )
    .unwrap();
    let mut engine2 = std::process::Command::new(crate::state::mora_bin())
        .args(["run", "--config"])
        .arg(&second)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(w.dir.join("engine-2.log")).unwrap())
        .spawn()
        .unwrap();
    let api2 = Client::new(port2);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    // Its API opens after its engine threads start, which can be after the group has already rebalanced.
    while !api2.answers() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second instance's API did not open"
        );
        assert!(
            engine2.try_wait().unwrap().is_none(),
            "the second instance stopped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let memory = |c: &Client| -> Vec<i64> {
        c.get("/v1/portfolio", Some(READ)).1["sources"]["memory"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    };
    while !(memory(&api).len() == 2 && memory(&api2).len() == 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the partitions were not split between the two instances"
        );
        assert!(
            engine2.try_wait().unwrap().is_none(),
            "the second instance stopped"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Both flush and publish their summaries at least once more.
    std::thread::sleep(Duration::from_secs(3));
    let mine = memory(&api);
    let (other_worker, _) = reference
        .iter()
        .find(|(rw, _)| !mine.contains(&i64::from(rw.partition())))
        .unwrap();
    let d = other_worker
        .debtors()
        .max_by_key(|d| d.cold().contacts.len())
        .unwrap();
    let (s, body) = api.get(&format!("/v1/debtors/{}", d.id), Some(READ));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["source"], "state_store");
    assert_eq!(body["state"], serde_json::to_value(d).unwrap());
    let stored = body["recent_decisions"].as_array().unwrap();
    assert!(!stored.is_empty(), "decisions from the ledger");
    // The ledger keeps the whole audit record: the newest instant's decisions are those of the clean run.
    let clean: Vec<serde_json::Value> = other_worker
        .recent_decisions(&d.id, 50)
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let at_newest = |v: &[serde_json::Value]| {
        let newest = v[0]["at"].clone();
        let mut same: Vec<String> = v
            .iter()
            .filter(|r| r["at"] == newest)
            .map(|r| r.to_string())
            .collect();
        same.sort();
        same
    };
    assert_eq!(
        at_newest(stored),
        at_newest(&clean),
        "newest stored decisions vs a clean run"
    );

    // Either instance gives the whole picture: its own partitions from memory (the second one's restored, KPI
    // counters included), the others from the summaries and KPI days their owner published.
    for (who, c) in [("first", &api), ("second", &api2)] {
        let (_, body) = c.get("/v1/portfolio", Some(READ));
        assert_eq!(
            body["sources"]["state_store"].as_array().unwrap().len(),
            2,
            "{body}"
        );
        assert_eq!(
            body["portfolio"],
            serde_json::to_value(&expected).unwrap(),
            "portfolio from the {who} instance"
        );
        let (_, k) = c.get("/v1/kpis?window=90d", Some(READ));
        let k = &k["all"];
        assert_eq!(
            (&k["cures"], &k["promises_kept"], &k["promises_broken"]),
            (
                &json!(all.cures),
                &json!(all.promises_kept),
                &json!(all.promises_broken)
            ),
            "KPIs from the {who} instance"
        );
        let sent: u64 = k["actions"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(sent, all.actions.values().sum::<u64>(), "{who}");
    }

    // The queue across instances: exact rank order down to the end of the shortest published head (50 per
    // partition here), where a page says it is incomplete.
    let mut reference_order: Vec<i64> = reference
        .iter()
        .flat_map(|(rw, _)| rw.queue_top("dialer", usize::MAX))
        .map(|(p, _)| p)
        .collect();
    reference_order.sort_unstable_by(|a, b| b.cmp(a));
    let (mut seen, mut ranks) = (BTreeSet::new(), Vec::new());
    let mut cursor: Option<String> = None;
    let incomplete = loop {
        let path = match &cursor {
            Some(c) => format!("/v1/queues/dialer?limit=20&cursor={c}"),
            None => "/v1/queues/dialer?limit=20".to_string(),
        };
        let (s, body) = api2.get(&path, Some(READ));
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            body["total"].as_u64().unwrap() as usize,
            expected_members.len()
        );
        for item in body["items"].as_array().unwrap() {
            assert!(seen.insert(item["debtor_id"].as_str().unwrap().to_string()));
            ranks.push(item["rank"].as_i64().unwrap());
        }
        if body.get("incomplete").is_some() {
            break true;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break false,
        }
    };
    assert!(
        incomplete,
        "some partition's dialer queue is longer than 50"
    );
    assert!(ranks.len() >= 50);
    assert_eq!(ranks, reference_order[..ranks.len()]);
    assert!(seen.is_subset(&expected_members));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &engine2.id().to_string()])
        .status();
    let _ = engine2.wait();
    w.stop_engine(engine, 1);
}
