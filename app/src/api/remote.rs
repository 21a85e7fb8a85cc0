//! Partitions another instance owns: read from the state store, where each partition's owner publishes a summary
//! every `state.summary_interval` and its KPI days with every checkpoint. With no state store configured (or
//! `mora demo`), an answer covers only the partitions in memory, and says so.

use mora_connector_scylla::Store;
use mora_runtime::{LabelledDay, PartitionSummary};
use serde_json::{Value, json};

use super::ApiState;

/// What the state store gave for the partitions this instance does not own.
#[derive(Default)]
pub(crate) struct Foreign {
    /// Partitions with a published summary.
    pub summaries: Vec<PartitionSummary>,
    /// Partitions the store had nothing for (never flushed), or could not be read (`error`).
    pub unavailable: Vec<i32>,
    /// Why the store could not be read, if it could not.
    pub error: Option<String>,
}

impl Foreign {
    /// The `sources` object of an answer: which partitions came from memory and which from the state store (with
    /// the partition clock their summary was taken at).
    pub(crate) fn sources(&self, memory: &[i32]) -> Value {
        let stored: Vec<Value> = self
            .summaries
            .iter()
            .map(|s| json!({ "partition": s.partition, "as_of": s.clock }))
            .collect();
        let mut v = json!({
            "memory": memory,
            "state_store": stored,
            "unavailable": self.unavailable,
        });
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        v
    }

    /// Every partition the answer covers, sorted.
    pub(crate) fn covered(&self, memory: &[i32]) -> Vec<i32> {
        let mut all: Vec<i32> = memory
            .iter()
            .copied()
            .chain(self.summaries.iter().map(|s| s.partition))
            .collect();
        all.sort_unstable();
        all
    }
}

/// The partitions of the input this instance does not own (none without a state store or a known partition count).
fn foreign_partitions(s: &ApiState, owned: &[i32]) -> Vec<i32> {
    match (&s.store, s.backend.partitions_total()) {
        (Some(_), Some(total)) => (0..total as i32).filter(|p| !owned.contains(p)).collect(),
        _ => Vec::new(),
    }
}

/// The store's session, connected on first use.
pub(crate) async fn store(s: &ApiState) -> Option<Result<&Store, String>> {
    let cfg = s.store.as_ref()?;
    Some(
        s.store_session
            .get_or_try_init(|| Store::connect(cfg))
            .await
            .map_err(|e| e.to_string()),
    )
}

/// Summaries of the partitions this instance does not own; with `kpi_window` (days), the KPI days of that window up
/// to each partition's clock too (one list per summary, in the same order).
pub(crate) async fn foreign(
    s: &ApiState,
    owned: &[i32],
    kpi_window: Option<i64>,
) -> (Foreign, Vec<Vec<(i64, LabelledDay)>>) {
    let wanted = foreign_partitions(s, owned);
    let mut out = Foreign::default();
    let mut kpis = Vec::new();
    if wanted.is_empty() {
        return (out, kpis);
    }
    let store = match store(s).await {
        Some(Ok(store)) => store,
        Some(Err(e)) => {
            out.unavailable = wanted;
            out.error = Some(e);
            return (out, kpis);
        }
        None => return (out, kpis),
    };
    for p in wanted {
        let read = async {
            let summary = store.summary(p).await?;
            let days = match (kpi_window, &summary) {
                (Some(days), Some(summary)) => {
                    let today = summary.clock.0.div_euclid(mora_domain::time::DAY_MS);
                    store.kpi_days(p, today - days + 1).await?
                }
                _ => Vec::new(),
            };
            Ok::<_, mora_connector_scylla::StateError>((summary, days))
        };
        match read.await {
            Ok((Some(summary), days)) => {
                out.summaries.push(summary);
                kpis.push(days);
            }
            Ok((None, _)) => out.unavailable.push(p),
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "Reading a partition summary failed.");
                out.unavailable.push(p);
                out.error = Some(e.to_string());
            }
        }
    }
    (out, kpis)
}
