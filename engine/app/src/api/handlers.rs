//! The API's endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mora_domain::action::AuditRecord;
use mora_domain::debtor::Debtor;
use mora_domain::time::Ts;
use mora_runtime::{Dim, KpiCounts, Portfolio, dim_label};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;

type Shared = State<Arc<ApiState>>;

/// A JSON error: `{"error": code, "message": ...}`.
pub(crate) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
) -> (StatusCode, Json<serde_json::Value>) {
    (status, Json(json!({ "error": code, "message": message })))
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
    let mut found: Option<(i32, Debtor, Vec<AuditRecord>)> = None;
    let mut partitions = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            partitions.push(w.partition());
            if let Some(d) = w.debtor(&id) {
                let recent = w.recent_decisions(&id, 50).into_iter().cloned().collect();
                found = Some((w.partition(), d.clone(), recent));
            }
        }
    });
    if let Some((partition, d, recent)) = found {
        return Json(debtor_json(&engine, partition, &d, &recent, "memory")).into_response();
    }
    if let (Some(cfg), Some(total)) = (&s.store, s.backend.partitions_total()) {
        let partition = mora_runtime::partition_for(id.as_bytes(), total) as i32;
        if !partitions.contains(&partition) {
            let store = s
                .store_session
                .get_or_try_init(|| mora_connector_scylla::Store::connect(cfg))
                .await;
            let stored = match store {
                Ok(store) => store.debtor(partition, &id).await,
                Err(e) => Err(e),
            };
            return match stored {
                Ok(Some(d)) => {
                    Json(debtor_json(&engine, partition, &d, &[], "state_store")).into_response()
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
        &format!("no debtor `{id}` in the partitions this instance owns ({partitions:?})"),
    )
    .into_response()
}

fn debtor_json(
    engine: &mora_domain::engine::Engine,
    partition: i32,
    d: &Debtor,
    recent: &[AuditRecord],
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
        next_step: d.cursor.next_step,
        promise_deadlines: d.promises.iter().map(|p| p.deadline).collect(),
        deferred: d
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
        "outstanding_base": dv.outstanding_base,
        "overdue_base": dv.overdue_base,
        "outstanding": d.outstanding(),
        "queues": queues,
        "strategy": strategy.map(|s| json!({ "id": s.id, "arm": s.arm })),
        "timers": timers,
        "recent_decisions": recent,
        "state": d,
    })
}

/// `GET /v1/portfolio`.
pub(crate) async fn portfolio(State(s): Shared) -> Json<serde_json::Value> {
    let mut total = Portfolio::default();
    let mut partitions = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            partitions.push(w.partition());
            total.merge(&w.portfolio());
        }
    });
    Json(json!({ "partitions": partitions, "portfolio": total }))
}

#[derive(Deserialize)]
pub(crate) struct KpiQuery {
    window: Option<String>,
}

/// `GET /v1/kpis?window=30d`.
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
    let mut sums: BTreeMap<Dim, KpiCounts> = BTreeMap::new();
    let mut partitions = Vec::new();
    let mut until = Ts::MIN;
    s.backend.visit(&mut |workers| {
        for w in workers {
            partitions.push(w.partition());
            until = until.max(w.clock());
            for (dim, c) in w.kpis(days) {
                sums.entry(dim).or_default().add(&c);
            }
        }
    });
    let names = engine.aging.bucket_names();
    let mut by_segment = BTreeMap::new();
    let mut by_arm = BTreeMap::new();
    let mut all = None;
    for (dim, c) in &sums {
        let rates = c.rates(names);
        match dim {
            Dim::All => all = Some(rates),
            Dim::Segment(_) => {
                by_segment.insert(dim_label(&engine, *dim), rates);
            }
            Dim::Arm(_) => {
                by_arm.insert(dim_label(&engine, *dim), rates);
            }
        }
    }
    Json(json!({
        "window_days": days,
        "until": (until != Ts::MIN).then_some(until),
        "partitions": partitions,
        "all": all,
        "by_segment": by_segment,
        "by_arm": by_arm,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A position in a merged queue: priority, partition, slot.
fn parse_cursor(c: &str) -> Option<(i64, i32, u32)> {
    let mut it = c.split('.');
    let p = it.next()?.parse().ok()?;
    let part = it.next()?.parse().ok()?;
    let slot = it.next()?.parse().ok()?;
    it.next().is_none().then_some((p, part, slot))
}

/// `GET /v1/queues/{name}?limit=&cursor=`: the queue in priority order (highest first; ties by partition, then
/// arrival), across owned partitions.
pub(crate) async fn queue(
    State(s): Shared,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> Response {
    let engine = s.backend.engine();
    if engine.queues.index(&name).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_queue",
            &format!(
                "no queue `{name}`; queues: {}",
                engine.queues.names().join(", ")
            ),
        )
        .into_response();
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let cursor = match q.cursor.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                "cursor is not one this API gave",
            )
            .into_response();
        }
    };
    let mut items: Vec<(i64, i32, u32, serde_json::Value)> = Vec::new();
    let mut total = 0usize;
    let mut partitions = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            let part = w.partition();
            partitions.push(part);
            total += w.queue_len(&name);
            // Entries after the cursor in (priority desc, partition, slot) order: within the cursor's own partition
            // strictly after it; in others, from the first entry of equal priority on, later partitions only.
            let from = cursor.map(|(p, cp, cs)| {
                if part == cp {
                    (p, cs)
                } else if part > cp {
                    (p.saturating_add(1), u32::MAX)
                } else {
                    (p, u32::MAX)
                }
            });
            for (prio, slot, d) in w.queue_page(&name, from, limit) {
                let dv = &d.derived;
                items.push((
                    prio,
                    part,
                    slot,
                    json!({
                        "debtor_id": d.id,
                        "priority": prio,
                        "partition": part,
                        "dpd": dv.dpd,
                        "stage": dv.stage.as_str(),
                        "segment": engine.segmentation.names().get(dv.segment as usize),
                        "overdue_base": dv.overdue_base,
                    }),
                ));
            }
        }
    });
    items.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    items.truncate(limit);
    let next = (items.len() == limit)
        .then(|| {
            items
                .last()
                .map(|(p, part, slot, _)| format!("{p}.{part}.{slot}"))
        })
        .flatten();
    Json(json!({
        "queue": name,
        "partitions": partitions,
        "total": total,
        "items": items.into_iter().map(|(_, _, _, v)| v).collect::<Vec<_>>(),
        "next_cursor": next,
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
        Ok(Ok(r)) => Json(json!({ "status": "reloaded", "report": r })).into_response(),
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
