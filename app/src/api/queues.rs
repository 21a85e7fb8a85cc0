//! `GET /v1/queues/{name}`: a work queue across every partition in priority order, page by page.
//!
//! Order: priority (highest first), then partition, then slot (first seen first). Owned partitions are read from
//! memory; the others from the head of the queue their owner last published (`state.summary_queue_depth` entries
//! per partition). Merging per-partition heads gives the exact global order down to the shortest head that stops
//! short of its queue's end; a page that would reach past it ends there and says so (`incomplete`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mora_runtime::QueueEntry;
use serde::Deserialize;
use serde_json::json;

use super::handlers::error;
use super::{ApiState, remote};

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A position in the merged queue: priority, partition, slot. Sorting keys ascending gives queue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(std::cmp::Reverse<i64>, i32, u32);

impl Key {
    fn new(priority: i64, partition: i32, slot: u32) -> Self {
        Key(std::cmp::Reverse(priority), partition, slot)
    }

    fn parse(c: &str) -> Option<Self> {
        let mut it = c.split('.');
        let p = it.next()?.parse().ok()?;
        let part = it.next()?.parse().ok()?;
        let slot = it.next()?.parse().ok()?;
        it.next().is_none().then(|| Key::new(p, part, slot))
    }

    fn cursor(&self) -> String {
        format!("{}.{}.{}", self.0.0, self.1, self.2)
    }
}

fn item(partition: i32, e: &QueueEntry) -> serde_json::Value {
    json!({
        "debtor_id": e.debtor_id,
        "priority": e.priority,
        "partition": partition,
        "dpd": e.dpd,
        "stage": e.stage,
        "segment": e.segment,
        "overdue_base": e.overdue_base,
    })
}

/// `GET /v1/queues/{name}?limit=&cursor=`.
pub(crate) async fn queue(
    State(s): State<Arc<ApiState>>,
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
    let cursor = match q.cursor.as_deref().map(Key::parse) {
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
    let mut items: Vec<(Key, serde_json::Value)> = Vec::new();
    let mut total = 0u64;
    let mut memory = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            let part = w.partition();
            memory.push(part);
            total += w.queue_len(&name) as u64;
            // Within the cursor's own partition strictly after it; in others, from the first entry that sorts after
            // it (equal priority: later partitions only).
            let from = cursor.map(|Key(std::cmp::Reverse(p), cp, cs)| {
                if part == cp {
                    (p, cs)
                } else if part > cp {
                    (p.saturating_add(1), u32::MAX)
                } else {
                    (p, u32::MAX)
                }
            });
            for (prio, slot, d) in w.queue_page(&name, from, limit) {
                let e = QueueEntry::of(&engine, prio, slot, d);
                items.push((Key::new(prio, part, slot), item(part, &e)));
            }
        }
    });
    let (foreign, _) = remote::foreign(&s, &memory, None).await;
    // The earliest position past which some partition's published head no longer shows every entry.
    let mut horizon: Option<Key> = None;
    let mut short = Vec::new();
    for summary in &foreign.summaries {
        let Some(head) = summary.queues.get(&name) else {
            continue;
        };
        total += head.len;
        let part = summary.partition;
        for e in &head.entries {
            let key = Key::new(e.priority, part, e.slot);
            if cursor.is_none_or(|c| key > c) {
                items.push((key, item(part, e)));
            }
        }
        if head.truncated()
            && let Some(last) = head.entries.last()
        {
            let key = Key::new(last.priority, part, last.slot);
            short.push(part);
            horizon = Some(horizon.map_or(key, |h| h.min(key)));
        }
    }
    items.sort_by_key(|a| a.0);
    let mut incomplete = false;
    if let Some(h) = horizon {
        let before = items.len();
        items.retain(|(k, _)| *k <= h);
        // Past the horizon the order is unknown; a page that reaches it stops there.
        incomplete = items.len() < before || items.len() < limit;
    }
    items.truncate(limit);
    if items.len() == limit {
        incomplete = false;
    }
    let next = (items.len() == limit)
        .then(|| items.last().map(|(k, _)| k.cursor()))
        .flatten();
    let mut body = json!({
        "queue": name,
        "partitions": foreign.covered(&memory),
        "sources": foreign.sources(&memory),
        "total": total,
        "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next_cursor": next,
    });
    if incomplete {
        body["incomplete"] = json!({
            "partitions": short,
            "message": "the queue continues in partitions another instance owns, past the entries their owners \
                        publish (state.summary_queue_depth); ask the owning instance, or raise the depth",
        });
    }
    Json(body).into_response()
}
