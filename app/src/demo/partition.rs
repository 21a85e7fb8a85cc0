//! One partition of the demo: simulator → Avro → partition worker → files, with actions fed back to the simulator.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mora_connector_files::JsonlSink;
use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::debtor::Debtor;
use mora_domain::ids::Channel;
use mora_domain::time::{DAY_MS, MINUTE_MS};
use mora_runtime::{InputRecord, Operator, PartitionWorker, Portfolio, Sink, WorkerStats};
use mora_schemas::{DeadLetter, Wire, encode_event};
use mora_sim::{PartitionSim, SimConfig, SimRecord};

/// How often simulated time ticks when no event arrives: timers fire at their own instants regardless, so this
/// only bounds how long the partition clock may lag behind the simulated wall clock.
const TICK_MS: i64 = 15 * MINUTE_MS;

/// What one partition produced.
#[derive(Debug)]
pub(super) struct PartitionResult {
    pub stats: WorkerStats,
    pub portfolio: Portfolio,
    /// Top of the dialer queue: (rank, state with DPD and priority as of the end of the run).
    pub dialer_top: Vec<(i64, Debtor)>,
    pub dialer_len: usize,
}

/// Writes to files, keeps the actions for the simulator to react to, and counts what `mora run` counts in its
/// metrics (the same names, so a dashboard built on the demo works on the engine).
struct DemoSink {
    files: JsonlSink,
    feedback: Vec<Action>,
    /// `mora_actions_total` per channel, in `Channel::ALL` order.
    actions: Vec<metrics::Counter>,
}

impl Sink for DemoSink {
    fn action(&mut self, partition: i32, action: &Action) {
        self.files.action(partition, action);
        if let Some(i) = Channel::ALL.iter().position(|c| *c == action.channel) {
            self.actions[i].increment(1);
        }
        self.feedback.push(action.clone());
    }

    fn audit(&mut self, partition: i32, record: &AuditRecord) {
        if record.kind == DecisionKind::Noted && record.reason == "unmatched_action" {
            metrics::counter!("mora_unmatched_outcomes_total").increment(1);
        }
        if matches!(record.kind, DecisionKind::Deferred | DecisionKind::Dropped) {
            metrics::counter!(
                "mora_blocked_total",
                "kind" => record.kind.as_str(),
                "reason" => record.reason.to_string()
            )
            .increment(1);
        }
        self.files.audit(partition, record);
    }

    fn dead_letter(&mut self, partition: i32, record: DeadLetter) {
        metrics::counter!(
            "mora_dead_letters_total",
            "error_kind" => record.error_kind.to_string()
        )
        .increment(1);
        self.files.dead_letter(partition, record);
    }
}

pub(super) fn run(
    p: u32,
    cfg: &SimConfig,
    shared: &Mutex<PartitionWorker>,
    dir: &Path,
    audit: bool,
    days_done: &AtomicU64,
) -> anyhow::Result<PartitionResult> {
    let mut sim = PartitionSim::new(cfg, p);
    let partition = p as i32;
    let mut sink = DemoSink {
        files: JsonlSink::create(dir, audit)?,
        feedback: Vec::new(),
        actions: Channel::ALL
            .iter()
            .map(|c| metrics::counter!("mora_actions_total", "channel" => c.as_str()))
            .collect(),
    };
    let topics: Vec<String> = mora_schemas::Family::ALL
        .iter()
        .map(|f| format!("demo.{}", f.name()))
        .collect();
    let records_in: Vec<metrics::Counter> = topics
        .iter()
        .map(|t| metrics::counter!("mora_records_in_total", "topic" => t.clone()))
        .collect();
    let thread = format!("partition-{p}");
    metrics::gauge!("mora_partitions_owned", "thread" => thread.clone()).set(1.0);
    let mut offset = 0i64;
    let (start, end) = (cfg.start_ts(), cfg.end());
    let mut t = start;
    let mut next_day = start.plus_ms(DAY_MS);
    while t < end {
        if super::interrupted() {
            anyhow::bail!("interrupted: the demo stopped before the end of its simulated days");
        }
        let tick = t.plus_ms(TICK_MS).min(end);
        // Held for one simulated quarter hour at a time, so the API can read between ticks.
        let mut worker = shared.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(rec) = sim.pop_until(tick) {
            let family = rec.family();
            let (key, bytes) = match &rec {
                SimRecord::Event(ev) => (ev.debtor_id.clone(), encode_event(ev, Wire::Confluent)?),
                SimRecord::Poison { key, bytes, .. } => (key.clone(), bytes.clone()),
            };
            // A poison record carries no time of its own: the partition handles it at its current clock.
            let input = InputRecord {
                family,
                topic: &topics[mora_schemas::Family::ALL
                    .iter()
                    .position(|f| *f == family)
                    .unwrap_or(0)],
                partition,
                offset,
                key: Some(key.as_bytes()),
                payload: &bytes,
                writer: None,
            };
            offset += 1;
            records_in[mora_schemas::Family::ALL
                .iter()
                .position(|f| *f == family)
                .unwrap_or(0)]
            .increment(1);
            worker.process(&input, &mut sink);
            for a in sink.feedback.drain(..) {
                sim.react(&a);
            }
        }
        worker.on_tick(tick, &mut sink);
        metrics::gauge!("mora_debtors", "thread" => thread.clone()).set(worker.len() as f64);
        for a in sink.feedback.drain(..) {
            sim.react(&a);
        }
        t = tick;
        while t >= next_day {
            days_done.fetch_add(1, Ordering::Relaxed);
            next_day = next_day.plus_ms(DAY_MS);
        }
    }
    sink.files.finish()?;
    let worker = shared.lock().unwrap_or_else(|e| e.into_inner());
    let dialer_top = worker
        .queue_top("dialer", 10)
        .into_iter()
        .filter_map(|(rank, id)| {
            // Days past due and priority as of the end of the run, not of the debtor's last evaluation.
            let mut d = worker.debtor(&id)?.clone();
            d.derived.dpd = d.days_past_due(worker.clock());
            let engine = worker.engine();
            d.derived.priority = engine.priority.score(&d, &engine.fx);
            Some((rank, d))
        })
        .collect();
    Ok(PartitionResult {
        stats: worker.stats().clone(),
        portfolio: worker.portfolio(),
        dialer_top,
        dialer_len: worker.queue_len("dialer"),
    })
}
