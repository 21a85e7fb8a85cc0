//! `GET /v1/queues/{name}`: a work queue across every partition in priority order, page by page.
//!
//! Order: rank (highest first; the priority score with days past due counted from a fixed day, so that the order does
//! not depend on when each debtor was last evaluated), then partition, then slot (first seen first). Owned partitions are read from
//! memory; the others from the head of the queue their owner last published (`state.summary_queue_depth` entries
//! per partition). Merging per-partition heads gives the exact global order down to the shortest head that stops
//! short of its queue's end; a page that would reach past it ends there and says so (`incomplete`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mora_runtime::{QueueEntry, QueueHead};
use serde::Deserialize;
use serde_json::json;

use super::handlers::error;
use super::{ApiState, remote};

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    /// Parsed here rather than by the extractor, so that a bad value gets this API's JSON error.
    limit: Option<String>,
    cursor: Option<String>,
}

/// A position in the merged queue: rank, partition, slot. Sorting keys ascending gives queue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(std::cmp::Reverse<i64>, i32, u32);

impl Key {
    fn new(rank: i64, partition: i32, slot: u32) -> Self {
        Key(std::cmp::Reverse(rank), partition, slot)
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

/// The head of a queue a partition's owner published: its entries in queue order, and where it stops short of the
/// queue's end (its last entry, when the queue holds more).
#[derive(Clone, Debug)]
struct Head {
    partition: i32,
    entries: Vec<(Key, QueueEntry)>,
    truncated_at: Option<Key>,
}

impl Head {
    fn of(partition: i32, head: &QueueHead) -> Self {
        let key = |e: &QueueEntry| Key::new(e.rank, partition, e.slot);
        Head {
            partition,
            entries: head.entries.iter().map(|e| (key(e), e.clone())).collect(),
            truncated_at: head
                .truncated()
                .then(|| head.entries.last().map(key))
                .flatten(),
        }
    }
}

/// One page of the merged queue.
#[derive(Debug, Default)]
struct Page {
    /// Entries in queue order, at most the limit.
    items: Vec<(Key, QueueEntry)>,
    /// Where the next page starts, when this one is full.
    next: Option<Key>,
    /// Partitions whose published heads end before this page could be completed (empty: the page is exact).
    short: Vec<i32>,
}

/// Merges owned partitions' entries (already past `cursor`) with the heads other instances published into one page
/// of `limit` entries in queue order. The merged order is exact up to the earliest point where some published head
/// stops short of its queue (the horizon): a page never reaches past it, and one that ends there because of it says
/// which partitions ran short.
fn merge_page(
    mut items: Vec<(Key, QueueEntry)>,
    heads: Vec<Head>,
    cursor: Option<Key>,
    limit: usize,
) -> Page {
    let mut horizon: Option<Key> = None;
    let mut short = Vec::new();
    for head in heads {
        items.extend(
            head.entries
                .into_iter()
                .filter(|(k, _)| cursor.is_none_or(|c| *k > c)),
        );
        if let Some(last) = head.truncated_at {
            short.push(head.partition);
            horizon = Some(horizon.map_or(last, |h| h.min(last)));
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
        .then(|| items.last().map(|(k, _)| *k))
        .flatten();
    Page {
        items,
        next,
        short: if incomplete { short } else { Vec::new() },
    }
}

fn item(partition: i32, e: &QueueEntry) -> serde_json::Value {
    json!({
        "debtor_id": e.debtor_id,
        "priority": e.priority,
        "rank": e.rank,
        "partition": partition,
        "dpd": e.dpd,
        "stage": e.stage,
        "segment": e.segment,
        "overdue_base": e.overdue_base,
    })
}

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// The largest page.
const MAX_LIMIT: usize = 1000;

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
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_limit",
                &format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); got `{}`",
                    q.limit.as_deref().unwrap_or_default()
                ),
            )
            .into_response();
        }
    };
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
    let mut local: Vec<(Key, QueueEntry)> = Vec::new();
    let mut total = 0u64;
    let mut memory = Vec::new();
    s.backend.visit(&mut |workers| {
        for w in workers {
            let part = w.partition();
            memory.push(part);
            total += w.queue_len(&name) as u64;
            // Within the cursor's own partition strictly after it; in others, from the first entry that sorts after
            // it (equal rank: later partitions only).
            let from = cursor.map(|Key(std::cmp::Reverse(p), cp, cs)| {
                if part == cp {
                    (p, cs)
                } else if part > cp {
                    (p.saturating_add(1), u32::MAX)
                } else {
                    (p, u32::MAX)
                }
            });
            for (rank, slot, d) in w.queue_page(&name, from, limit) {
                let e = QueueEntry::of(&engine, rank, slot, d);
                local.push((Key::new(rank, part, slot), e));
            }
        }
    });
    let (foreign, _) = remote::foreign(&s, &memory, None).await;
    let mut heads = Vec::new();
    for summary in &foreign.summaries {
        if let Some(head) = summary.queues.get(&name) {
            total += head.len;
            heads.push(Head::of(summary.partition, head));
        }
    }
    let page = merge_page(local, heads, cursor, limit);
    let next = page.next.map(|k| k.cursor());
    let items: Vec<serde_json::Value> = page.items.iter().map(|(k, e)| item(k.1, e)).collect();
    let incomplete = (!page.short.is_empty()).then_some(page.short);
    let mut body = json!({
        "queue": name,
        "partitions": foreign.covered(&memory),
        "sources": foreign.sources(&memory),
        "total": total,
        "items": items,
        "next_cursor": next,
    });
    if let Some(short) = incomplete {
        body["incomplete"] = json!({
            "partitions": short,
            "message": "the queue continues in partitions another instance owns, past the entries their owners \
                        publish (state.summary_queue_depth); ask the owning instance, or raise the depth",
        });
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rank: i64, slot: u32) -> QueueEntry {
        QueueEntry {
            rank,
            priority: rank,
            slot,
            debtor_id: format!("D-{slot}"),
            dpd: 0,
            stage: "administrative".into(),
            segment: None,
            overdue_base: Default::default(),
        }
    }

    fn local(partition: i32, entries: &[(i64, u32)]) -> Vec<(Key, QueueEntry)> {
        entries
            .iter()
            .map(|&(p, s)| (Key::new(p, partition, s), entry(p, s)))
            .collect()
    }

    fn head(partition: i32, entries: &[(i64, u32)], len: u64) -> Head {
        Head::of(
            partition,
            &QueueHead {
                len,
                entries: entries.iter().map(|&(p, s)| entry(p, s)).collect(),
            },
        )
    }

    fn keys(page: &Page) -> Vec<(i64, i32, u32)> {
        page.items.iter().map(|(k, _)| (k.0.0, k.1, k.2)).collect()
    }

    #[test]
    fn entries_merge_by_priority_then_partition_then_slot() {
        let page = merge_page(
            local(0, &[(900, 1), (500, 2)]),
            vec![head(1, &[(900, 7), (700, 3)], 2)],
            None,
            10,
        );
        assert_eq!(
            keys(&page),
            vec![(900, 0, 1), (900, 1, 7), (700, 1, 3), (500, 0, 2)]
        );
        assert_eq!(page.next, None, "a page that is not full has no next");
        assert!(page.short.is_empty(), "complete heads leave the page exact");
    }

    #[test]
    fn a_full_page_gives_the_cursor_of_its_last_entry_and_the_next_page_resumes_after_it() {
        let all = || local(0, &[(900, 1), (800, 2), (700, 3)]);
        let first = merge_page(all(), vec![], None, 2);
        assert_eq!(keys(&first), vec![(900, 0, 1), (800, 0, 2)]);
        let next = first.next.expect("full page");
        assert_eq!(Key::parse(&next.cursor()), Some(next), "cursors round-trip");
        let rest: Vec<_> = all().into_iter().filter(|(k, _)| *k > next).collect();
        assert_eq!(
            keys(&merge_page(rest, vec![], Some(next), 2)),
            vec![(700, 0, 3)]
        );
    }

    #[test]
    fn published_entries_at_or_before_the_cursor_are_skipped() {
        let cursor = Key::new(800, 0, 5);
        let page = merge_page(
            vec![],
            vec![head(1, &[(900, 1), (800, 2), (700, 3)], 3)],
            Some(cursor),
            10,
        );
        assert_eq!(keys(&page), vec![(800, 1, 2), (700, 1, 3)]);
    }

    #[test]
    fn a_page_stops_at_the_shortest_truncated_head_and_names_its_partition() {
        // Partition 1 published two of its five entries: past (800, 1, 2) its order is unknown.
        let page = merge_page(
            local(0, &[(900, 1), (750, 2), (600, 3)]),
            vec![head(1, &[(850, 1), (800, 2)], 5)],
            None,
            10,
        );
        assert_eq!(keys(&page), vec![(900, 0, 1), (850, 1, 1), (800, 1, 2)]);
        assert_eq!(page.short, vec![1]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_full_page_before_the_horizon_is_exact() {
        let page = merge_page(
            local(0, &[(900, 1), (880, 2)]),
            vec![head(1, &[(850, 1), (800, 2)], 5)],
            None,
            2,
        );
        assert_eq!(keys(&page), vec![(900, 0, 1), (880, 0, 2)]);
        assert!(page.short.is_empty());
        assert!(page.next.is_some());
    }
}
