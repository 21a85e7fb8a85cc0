//! What a partition publishes for the instances that do not own it: its portfolio figures, the present populations
//! its KPIs are computed against, and the head of each work queue. The owner writes it to the state store every
//! few seconds; any instance answers portfolio, KPI and queue queries for partitions it does not own from it.

use std::collections::BTreeMap;

use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::time::Ts;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::kpis::{Dim, KpiCounts, LabelledDay, count_population};
use crate::operator::PREPARE_AHEAD;
use crate::portfolio::{Portfolio, PortfolioTally};
use crate::store::DebtorStore;

/// A partition's walk for its summary (portfolio figures and KPI populations), taken a slice of debtors at a time
/// while the partition goes on: figures gathered over the walk, each debtor as it was when visited.
#[derive(Debug)]
pub(crate) struct SummaryWalk {
    /// Work-queue entries per queue.
    pub(crate) depth: usize,
    /// The next slot to visit.
    next: usize,
    pub(crate) portfolio: PortfolioTally,
    pub(crate) populations: BTreeMap<Dim, KpiCounts>,
}

impl SummaryWalk {
    pub(crate) fn new(depth: usize) -> Self {
        Self {
            depth,
            next: 0,
            portfolio: PortfolioTally::default(),
            populations: BTreeMap::new(),
        }
    }

    /// Visits debtors, a few loaded side by side at a time, until every slot is or `until` passes (checked after
    /// each few). Returns whether the walk is over (debtors added meanwhile are visited too).
    pub(crate) fn step(&mut self, store: &DebtorStore, until: Option<std::time::Instant>) -> bool {
        while self.next < store.len() {
            let end = (self.next + PREPARE_AHEAD).min(store.len());
            let window = (self.next..end).map(|s| store.get(s as u32));
            std::hint::black_box(window.clone().fold(0, |f, d| f ^ d.touch_obligations()));
            for d in window {
                self.portfolio.add(d);
                count_population(&mut self.populations, d);
            }
            self.next = end;
            if until.is_some_and(|u| std::time::Instant::now() >= u) {
                break;
            }
        }
        self.next >= store.len()
    }
}

/// One partition's published picture, as of its clock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    /// The partition.
    pub partition: i32,
    /// The partition's clock when the picture was taken.
    pub clock: Ts,
    /// Portfolio figures.
    pub portfolio: Portfolio,
    /// Populations now per KPI dimension label (debtors per bucket, past due, overdue).
    pub populations: LabelledDay,
    /// Per work queue, its length and first entries in priority order.
    pub queues: BTreeMap<String, QueueHead>,
}

/// The head of one work queue of one partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueHead {
    /// Debtors in the queue (all of them, not only those in `entries`).
    pub len: u64,
    /// The first entries, in priority order.
    pub entries: Vec<QueueEntry>,
}

impl QueueHead {
    /// Whether `entries` stops short of the queue's end.
    pub fn truncated(&self) -> bool {
        (self.entries.len() as u64) < self.len
    }
}

/// One debtor in a work queue, with what a collector's list shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The queue's order key (hundredths; see `PriorityWeights::queue_rank`): the score with days past due counted
    /// from a fixed day, so that it does not decay between evaluations.
    #[serde(default)]
    pub rank: i64,
    /// Priority score at the debtor's last evaluation (hundredths).
    pub priority: i64,
    /// The debtor's slot in its partition (the tie-break after rank: first seen first).
    pub slot: u32,
    /// Debtor id.
    pub debtor_id: String,
    /// Days past due.
    pub dpd: u16,
    /// Stage name.
    pub stage: String,
    /// Segment name.
    pub segment: Option<String>,
    /// Overdue, base currency.
    pub overdue_base: Decimal,
}

impl QueueEntry {
    /// The entry of `d` at `rank` and `slot`, with names from `engine`.
    pub fn of(engine: &Engine, rank: i64, slot: u32, d: &Debtor) -> Self {
        let dv = &d.derived;
        Self {
            rank,
            priority: dv.priority,
            slot,
            debtor_id: d.id.to_string(),
            dpd: dv.dpd,
            stage: dv.stage.as_str().to_string(),
            segment: engine
                .segmentation
                .names()
                .get(dv.segment as usize)
                .cloned(),
            overdue_base: dv.overdue_base.get(),
        }
    }
}
