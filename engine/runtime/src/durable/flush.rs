//! What one flush writes for one partition, built on the engine's thread from the worker's changed debtors (cheap
//! copies and one encode per debtor) and written by the store off that thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use mora_domain::action::{Action, AuditRecord};
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::time::Ts;
use rust_decimal::Decimal;

use super::codec::{self, CodecError};
use crate::changes::ViewKeys;
use crate::worker::PartitionWorker;

/// Per input topic, the next offset to read: a cut of the partition's input.
pub type Offsets = BTreeMap<String, i64>;

/// Where a partition's stored state stands: every stored debtor reflects at least the records below `offsets`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Next offset per input topic.
    pub offsets: Offsets,
    /// The partition's clock at the cut (milliseconds since the epoch).
    pub clock: Ts,
}

/// One debtor's row.
#[derive(Clone, Debug)]
pub struct DebtorRow {
    /// Debtor id.
    pub debtor_id: String,
    /// Encoded state ([`codec::FORMAT`]).
    pub state: Vec<u8>,
    /// Aging bucket name.
    pub bucket: String,
    /// Stage name.
    pub stage: &'static str,
    /// Segment name.
    pub segment: String,
    /// Outstanding, base currency.
    pub outstanding_base: Decimal,
    /// Overdue, base currency.
    pub overdue_base: Decimal,
    /// Days past due.
    pub dpd: i32,
    /// Priority (hundredths).
    pub priority: i64,
}

/// A membership view entry to add or remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewChange {
    /// The debtor joined a segment.
    JoinSegment(String, String),
    /// The debtor left a segment.
    LeaveSegment(String, String),
    /// The debtor joined a work queue.
    JoinQueue(String, String),
    /// The debtor left a work queue.
    LeaveQueue(String, String),
}

/// Everything one flush writes for one Kafka partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionFlush {
    /// Kafka partition.
    pub partition: i32,
    /// Changed debtors.
    pub rows: Vec<DebtorRow>,
    /// Membership changes.
    pub views: Vec<ViewChange>,
    /// Actions decided since the last flush (committed to Kafka; replayed ones again, harmlessly).
    pub actions: Vec<Action>,
    /// Audit records since the last flush.
    pub audits: Vec<AuditRecord>,
    /// The cut the rows reflect; written last, once every row is stored.
    pub checkpoint: Arc<Checkpoint>,
    /// KPI days counted into since the last flush (day since the epoch, encoded counters); written with the
    /// checkpoint, so they reflect the same cut.
    pub kpi_days: Vec<(i64, Vec<u8>)>,
    /// The partition's summary for other instances (encoded), when one is due.
    pub summary: Option<Vec<u8>>,
}

impl PartitionFlush {
    /// Statements this flush issues (rows, views, ledger entries), checkpoint excluded.
    pub fn statements(&self) -> usize {
        self.rows.len() + self.views.len() + self.actions.len() + self.audits.len()
    }

    /// Adds the KPI days a worker counted into since the last flush, and its summary when `summary_depth` is given.
    pub fn add_aggregates(
        &mut self,
        worker: &mut PartitionWorker,
        summary_depth: Option<usize>,
    ) -> Result<(), CodecError> {
        for (day, counters) in worker.take_kpi_days() {
            self.kpi_days.push((day, codec::encode_kpi_day(&counters)?));
        }
        if let Some(depth) = summary_depth {
            self.summary = Some(codec::encode_summary(&worker.summary(depth))?);
        }
        Ok(())
    }

    /// Adds a changed debtor: its row, and view changes against the keys it was last stored under.
    pub fn add(
        &mut self,
        engine: &Engine,
        d: &Debtor,
        before: Option<ViewKeys>,
    ) -> Result<(), CodecError> {
        let dv = &d.derived;
        let segment_name = |i: u16| {
            engine
                .segmentation
                .names()
                .get(i as usize)
                .cloned()
                .unwrap_or_default()
        };
        let segment = segment_name(dv.segment);
        self.rows.push(DebtorRow {
            debtor_id: d.id.to_string(),
            state: codec::encode(d)?,
            bucket: engine
                .aging
                .bucket_names()
                .get(dv.bucket as usize)
                .cloned()
                .unwrap_or_default(),
            stage: dv.stage.as_str(),
            segment: segment.clone(),
            outstanding_base: dv.outstanding_base.get(),
            overdue_base: dv.overdue_base.get(),
            dpd: i32::from(dv.dpd),
            priority: dv.priority,
        });
        let id = || d.id.to_string();
        let (old_segment, old_queues) = before.map_or((None, 0), |k| (Some(k.segment), k.queues));
        if old_segment != Some(dv.segment) {
            if let Some(s) = old_segment {
                self.views
                    .push(ViewChange::LeaveSegment(segment_name(s), id()));
            }
            self.views.push(ViewChange::JoinSegment(segment, id()));
        }
        let names = engine.queues.names();
        for (i, name) in names.iter().enumerate().take(32) {
            let bit = 1u32 << i;
            match (old_queues & bit != 0, dv.queues & bit != 0) {
                (false, true) => self.views.push(ViewChange::JoinQueue(name.clone(), id())),
                (true, false) => self.views.push(ViewChange::LeaveQueue(name.clone(), id())),
                _ => {}
            }
        }
        Ok(())
    }
}
