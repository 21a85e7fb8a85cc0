//! The API's endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mora_domain::action::AuditRecord;
use mora_domain::debtor::Debtor;
use mora_domain::time::DAY_MS;
use mora_domain::time::Ts;
use mora_runtime::{LabelledDay, PartitionWorker, Portfolio, label_dims, window_of_days};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiState, remote};

type Shared = State<Arc<ApiState>>;

/// A JSON error: `{"error": code, "message": ...}`.
pub(crate) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
) -> (StatusCode, Json<serde_json::Value>) {
    (status, Json(json!({ "error": code, "message": message })))
}

/// Any path this API does not have: a JSON 404 like its other errors (listing where to look).
pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "no such path `{}`; the API is described at /openapi.json",
            uri.path()
        ),
    )
    .into_response()
}

/// Liveness: the process answers.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: partitions are assigned and the pipeline has not stopped on an error.
pub(crate) async fn readyz(State(s): Shared) -> Response {
    if s.backend.ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "no partition assigned yet, or the pipeline stopped",
        )
        .into_response()
    }
}

/// Prometheus text format.
pub(crate) async fn metrics(State(s): Shared) -> Response {
    match &s.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no_metrics",
            "metrics are not enabled",
        )
        .into_response(),
    }
}

/// The API's description.
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[derive(Serialize)]
struct Timers {
    next_wake: Option<Ts>,
    next_step: Option<Ts>,
    promise_deadlines: Vec<Ts>,
    deferred: Vec<serde_json::Value>,
}

/// `GET /v1/debtors/{id}`: from memory when this instance owns the debtor's partition, otherwise from the state
/// store (when configured).
pub(crate) async fn debtor(State(s): Shared, Path(id): Path<String>) -> Response {
    let engine = s.backend.engine();
    let mut found: Option<(i32, Debtor, Vec<AuditRecord>, Ts)> = None;
    let mut partitions = Vec::new();
    let mut lookup = |w: &PartitionWorker| {
        partitions.push(w.partition());
        if let Some(d) = w.debtor(&id) {
            let recent = w
                .recent_decisions(&id, RECENT)
                .into_iter()
                .cloned()
                .collect();
            found = Some((w.partition(), d.clone(), recent, w.clock()));
        }
    };
    match s.backend.partitions_total() {
        // Only the engine thread owning the debtor's partition is asked.
        Some(total) => {
            let partition = mora_runtime::partition_for(id.as_bytes(), total) as i32;
            s.backend.visit_partition(partition, &mut lookup);
        }
        None => s
            .backend
            .visit(&mut |workers| workers.iter().for_each(|w| lookup(w))),
    }
    if let Some((partition, d, mut recent, clock)) = found {
        // Memory holds the decisions made since this instance took the partition over (a restart or a rebalance
        // starts it empty); the ledger, when stored, has the older ones.
        if recent.len() < RECENT
            && let Some(Ok(store)) = remote::store(&s).await
        {
            match store.recent_decisions(partition, &id, clock, RECENT).await {
                Ok(older) => merge_recent(&mut recent, older),
                Err(e) => {
                    tracing::warn!(error = %e, "Reading a debtor's earlier decisions from the ledger failed.")
                }
            }
        }
        return Json(debtor_json(&engine, partition, &d, json!(recent), "memory")).into_response();
    }
    if let (Some(_), Some(total)) = (&s.store, s.backend.partitions_total()) {
        let partition = mora_runtime::partition_for(id.as_bytes(), total) as i32;
        if !partitions.contains(&partition) {
            let stored = match remote::store(&s).await {
                Some(Ok(store)) => stored_debtor(store, partition, &id).await,
                Some(Err(e)) => Err(e),
                None => Ok(None),
            };
            return match stored {
                Ok(Some((d, recent))) => {
                    Json(debtor_json(&engine, partition, &d, recent, "state_store")).into_response()
                }
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no debtor `{id}` (partition {partition}, read from the state store)"),
                )
                .into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "Reading a debtor from the state store failed.");
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "state_store_unavailable",
                        "the debtor's partition is owned by another instance and the state store did not answer",
                    )
                    .into_response()
                }
            };
        }
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no debtor `{id}` in the partitions of this instance searched ({partitions:?})"),
    )
    .into_response()
}

/// Completes `recent` (from memory, newest first) with `older` (from the ledger, newest first) up to [`RECENT`]:
/// the ledger's entries not already in memory, older than memory's oldest (or as old: the same instant can hold
/// several decisions).
fn merge_recent(recent: &mut Vec<AuditRecord>, older: Vec<AuditRecord>) {
    let oldest = recent.last().map(|r| r.at);
    for r in older {
        if recent.len() >= RECENT {
            break;
        }
        if oldest.is_none_or(|o| r.at <= o) && !recent.contains(&r) {
            recent.push(r);
        }
    }
}

/// A debtor of a partition another instance owns: its stored row, and its latest decisions from the ledger.
async fn stored_debtor(
    store: &mora_connector_scylla::Store,
    partition: i32,
    id: &str,
) -> Result<Option<(Debtor, serde_json::Value)>, String> {
    let Some(d) = store
        .debtor(partition, id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let now = store
        .checkpoint(partition)
        .await
        .map_err(|e| e.to_string())?
        .map_or(Ts(0), |c| c.clock);
    let recent = store
        .recent_decisions(partition, id, now, RECENT)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some((d, json!(recent))))
}

/// Recent decisions shown with a debtor.
const RECENT: usize = 50;

fn debtor_json(
    engine: &mora_domain::engine::Engine,
    partition: i32,
    d: &Debtor,
    recent: serde_json::Value,
    source: &str,
) -> serde_json::Value {
    let dv = &d.derived;
    let strategy = engine.strategies.get(d.cursor.strategy);
    let queues: Vec<&String> = engine
        .queues
        .names()
        .iter()
        .enumerate()
        .filter(|(i, _)| dv.queues & (1 << i) != 0)
        .map(|(_, n)| n)
        .collect();
    let timers = Timers {
        next_wake: (d.next_wake != Ts::MAX).then_some(d.next_wake),
        next_step: d.cursor.next_step(),
        promise_deadlines: d.cold().promises.iter().map(|p| p.deadline).collect(),
        deferred: d
            .cold()
            .pending
            .iter()
            .map(|p| {
                json!({
                    "release": p.release,
                    "channel": p.action.channel.as_str(),
                    "action_id": p.action.action_id.0,
                    "step": p.action.reason.step,
                })
            })
            .collect(),
    };
    json!({
        "debtor_id": d.id,
        "partition": partition,
        "source": source,
        "segment": engine.segmentation.names().get(dv.segment as usize),
        "stage": dv.stage.as_str(),
        "bucket": engine.aging.bucket_names().get(dv.bucket as usize),
        "dpd": dv.dpd,
        "priority": dv.priority,
        "outstanding_base": dv.outstanding_base.get(),
        "overdue_base": dv.overdue_base.get(),
        "outstanding": d.outstanding(),
        "queues": queues,
        "strategy": strategy.map(|s| json!({ "id": s.id, "arm": s.arm })),
        "timers": timers,
        "recent_decisions": recent,
        "state": d,
    })
}

/// `GET /v1/portfolio`: owned partitions from memory, the others from their owners' published summaries.
pub(crate) async fn portfolio(State(s): Shared) -> Json<serde_json::Value> {
    let mut total = Portfolio::default();
    let mut memory = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            memory.push(w.partition());
            total.merge(&w.portfolio());
        }
    });
    let (foreign, _) = remote::foreign(&s, &memory, None).await;
    for summary in &foreign.summaries {
        total.merge(&summary.portfolio);
    }
    Json(json!({
        "partitions": foreign.covered(&memory),
        "sources": foreign.sources(&memory),
        "portfolio": total,
    }))
}

#[derive(Deserialize)]
pub(crate) struct KpiQuery {
    window: Option<String>,
}

/// `GET /v1/kpis?window=30d`: counters summed over the window up to each partition's clock, merged across
/// partitions (owned ones from memory, the others from the state store), then turned into rates.
pub(crate) async fn kpis(State(s): Shared, Query(q): Query<KpiQuery>) -> Response {
    let window = q.window.unwrap_or_else(|| "30d".into());
    let days = window
        .strip_suffix('d')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| (1..=mora_runtime::KPI_RETENTION_DAYS).contains(n));
    let Some(days) = days else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_window",
            &format!(
                "window `{window}`: give a number of days, 1d to {}d",
                mora_runtime::KPI_RETENTION_DAYS
            ),
        )
        .into_response();
    };
    let engine = s.backend.engine();
    let mut sums: LabelledDay = LabelledDay::new();
    let mut memory = Vec::new();
    let mut until = Ts::MIN;
    s.backend.visit(&mut |workers| {
        for w in workers {
            memory.push(w.partition());
            until = until.max(w.clock());
            for (label, c) in label_dims(&engine, &w.kpis(days)) {
                sums.entry(label).or_default().add(&c);
            }
        }
    });
    let (foreign, stored_days) = remote::foreign(&s, &memory, Some(days)).await;
    for (summary, stored) in foreign.summaries.iter().zip(&stored_days) {
        until = until.max(summary.clock);
        let today = summary.clock.0.div_euclid(DAY_MS);
        let counted = window_of_days(stored.iter().map(|(d, c)| (d, c)), today, days);
        for (label, c) in counted.iter().chain(&summary.populations) {
            sums.entry(label.clone()).or_default().add(c);
        }
    }
    let names = engine.aging.bucket_names();
    let mut by_segment = BTreeMap::new();
    let mut by_arm = BTreeMap::new();
    let mut all = None;
    for (label, c) in &sums {
        let rates = c.rates(names);
        if label == "all" {
            all = Some(rates);
        } else if label.starts_with("segment:") {
            by_segment.insert(label.clone(), rates);
        } else {
            by_arm.insert(label.clone(), rates);
        }
    }
    Json(json!({
        "window_days": days,
        "until": (until != Ts::MIN).then_some(until),
        "partitions": foreign.covered(&memory),
        "sources": foreign.sources(&memory),
        "all": all,
        "by_segment": by_segment,
        "by_arm": by_arm,
    }))
    .into_response()
}

/// `POST /v1/admin/reload`: loads the configuration files again; a configuration that does not load is refused
/// (422, naming the file and field) and the one in force stays.
pub(crate) async fn reload(State(s): Shared) -> Response {
    let backend = s.backend.clone();
    let reloader = s.reloader.clone();
    let result = tokio::task::spawn_blocking(move || reloader.reload(backend.as_ref())).await;
    match result {
        Ok(Ok(Some(r))) => Json(json!({ "status": "reloaded", "report": r })).into_response(),
        Ok(Ok(None)) => Json(json!({
            "status": "unchanged",
            "message": "the decision files parse to the configuration in force: no debtor was re-evaluated"
        }))
        .into_response(),
        Ok(Err(e)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_configuration",
            &e.to_string(),
        )
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload_failed",
            &e.to_string(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use mora_domain::action::DecisionKind;

    use super::*;

    fn decision(at: i64, reason: &str) -> AuditRecord {
        AuditRecord {
            debtor_id: "D-1".into(),
            at: Ts(at),
            kind: DecisionKind::Emitted,
            action_id: None,
            channel: None,
            rule: "strategy".into(),
            reason: reason.into(),
            until: None,
            strategy: None,
            arm: None,
            subject: None,
            previous: None,
            debtor: None,
        }
    }

    #[test]
    fn memory_decisions_are_completed_with_older_ledger_ones_once_each() {
        // Memory: since the partition was taken over; the ledger: everything flushed, newest first.
        let mut recent = vec![decision(30, "c"), decision(20, "b")];
        let ledger = vec![decision(20, "b"), decision(20, "b2"), decision(10, "a")];
        merge_recent(&mut recent, ledger);
        let reasons: Vec<&str> = recent.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons, ["c", "b", "b2", "a"]);

        // Nothing in memory (just restored): the ledger's, up to the bound.
        let mut recent = Vec::new();
        merge_recent(
            &mut recent,
            (0..80).rev().map(|t| decision(t, "x")).collect(),
        );
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].at, Ts(79));
    }
}
