//! `mora replay`: backtesting. The input log (a range of the input topics, or an export file) is streamed through
//! two engines, the configuration in force and a candidate, with nothing written to the live topics; each side's
//! actions go to files and a comparison is written beside them. Time comes from the log (events and clock
//! records), so the same input and configurations give byte-identical outputs.
//!
//! Records before the window only build state; decisions are counted from the window's first record to its end.
//! The log is fixed: debtors react in it to what the configuration in force did, so the candidate's promise and
//! cure counts are projections under unchanged behaviour.

mod report;
mod tally;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use mora_connector_files::JsonlSink;
use mora_domain::action::{Action, AuditRecord};
use mora_domain::time::Ts;
use mora_runtime::{LogRecord, Operator, PartitionWorker, Sink, replay_order};
use mora_schemas::DeadLetter;

pub use report::Report;
pub use tally::Tally;

use crate::config;

/// Options of `mora replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Runtime configuration: the brokers and input topics, and the decision configuration in force.
    #[arg(long)]
    pub config: PathBuf,
    /// Runtime configuration whose `[decisions]` point to the candidate strategies, segmentation and policies
    /// (default: the configuration in force, which makes a baseline run).
    #[arg(long)]
    pub candidate: Option<PathBuf>,
    /// Output directory: in_force/ and candidate/ (actions/<channel>.jsonl, audit.jsonl), comparison.json and
    /// comparison.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Replay an export file instead of reading the input topics.
    #[arg(long, conflicts_with_all = ["to_offset"])]
    pub input: Option<PathBuf>,
    /// Also write the log that was read to this export file (replayable later with --input).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Count decisions from this instant on (RFC 3339); earlier records only build state.
    #[arg(long, value_parser = parse_ts)]
    pub from: Option<Ts>,
    /// Replay up to this instant (RFC 3339): later records are left out and timers due by then fire.
    #[arg(long, value_parser = parse_ts)]
    pub to: Option<Ts>,
    /// Count decisions from this offset on, as TOPIC:PARTITION:OFFSET (repeatable; per partition, the window opens
    /// at the first record at or past one of its offsets).
    #[arg(long = "from-offset", value_parser = parse_offset)]
    pub from_offset: Vec<(String, i32, i64)>,
    /// Read each given topic-partition up to this offset, exclusive, as TOPIC:PARTITION:OFFSET (repeatable).
    #[arg(long = "to-offset", value_parser = parse_offset)]
    pub to_offset: Vec<(String, i32, i64)>,
    /// Also write each side's audit records.
    #[arg(long)]
    pub audit: bool,
}

fn parse_ts(s: &str) -> Result<Ts, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| Ts(d.timestamp_millis()))
        .map_err(|e| format!("`{s}` is not an RFC 3339 instant: {e}"))
}

fn parse_offset(s: &str) -> Result<(String, i32, i64), String> {
    let mut it = s.rsplitn(3, ':');
    let (Some(o), Some(p), Some(t)) = (it.next(), it.next(), it.next()) else {
        return Err(format!("`{s}` is not TOPIC:PARTITION:OFFSET"));
    };
    let p = p
        .parse()
        .map_err(|_| format!("`{s}`: partition `{p}` is not a number"))?;
    let o = o
        .parse()
        .map_err(|_| format!("`{s}`: offset `{o}` is not a number"))?;
    Ok((t.to_string(), p, o))
}

/// One configuration's run over a partition.
struct Side {
    worker: PartitionWorker,
    sink: ReplaySink,
    start: tally::Snapshot,
}

/// Writes a side's outputs within the window and counts them.
struct ReplaySink {
    files: JsonlSink,
    tally: Tally,
    counting: bool,
}

impl Sink for ReplaySink {
    fn action(&mut self, p: i32, a: &Action) {
        if self.counting {
            self.files.action(p, a);
            self.tally.action(a);
        }
    }
    fn audit(&mut self, p: i32, r: &AuditRecord) {
        if self.counting {
            self.files.audit(p, r);
            self.tally.audit(r);
        }
    }
    fn dead_letter(&mut self, p: i32, d: DeadLetter) {
        if self.counting {
            self.tally.dead_letter(&d.error_kind);
            self.files.dead_letter(p, d);
        }
    }
}

/// Runs the replay and writes its outputs; returns the report.
pub fn run(args: &ReplayArgs) -> anyhow::Result<Report> {
    let in_force = config::load(Some(&args.config))?;
    let candidate = match &args.candidate {
        Some(c) => config::load_decisions(c)?,
        None => config::load_decisions(&args.config)?,
    };
    let engines = [Arc::new(in_force.engine), Arc::new(candidate)];
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let logs = read_logs(args, &in_force.app)?;
    if let Some(path) = &args.export {
        let n = mora_connector_files::write_log(path, logs.values().flatten())
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(records = n, file = %path.display(), "Input log exported.");
    }
    // Records framed with a registry's ids are read with their writer schemas, fetched once per id.
    let registry = match &in_force.app.schema_registry {
        Some(r) => Some(mora_runtime::RegistrySchemas::new(
            Arc::new(mora_connector_registry::RegistryClient::new(r)?),
            mora_schemas::SchemaTable::with_capacity(r.cache),
            Default::default(),
        )),
        None => None,
    };
    let mut view = registry.as_ref().map(mora_runtime::RegistrySchemas::view);
    let names = ["in_force", "candidate"];
    let mut parts: [Vec<PathBuf>; 2] = Default::default();
    let mut totals: [Tally; 2] = Default::default();
    let mut records = 0u64;
    let mut windowed = 0u64;
    for (&p, log) in &logs {
        let mut sides = Vec::with_capacity(2);
        for (i, engine) in engines.iter().enumerate() {
            let dir = args.out.join(names[i]).join(format!(".partition-{p}"));
            parts[i].push(dir.clone());
            sides.push(Side {
                worker: PartitionWorker::new(p, engine.clone()),
                sink: ReplaySink {
                    files: JsonlSink::create(&dir, args.audit)
                        .with_context(|| format!("cannot create {}", dir.display()))?,
                    tally: Tally::default(),
                    counting: false,
                },
                start: tally::Snapshot::new(),
            });
        }
        let opens = |r: &LogRecord| {
            let by_time = args.from.is_none_or(|f| r.timestamp >= f.0);
            let by_offset = args.from_offset.is_empty()
                || args
                    .from_offset
                    .iter()
                    .any(|(t, pp, o)| *t == r.topic && *pp == p && r.offset >= *o);
            by_time && by_offset
        };
        for rec in log {
            records += 1;
            if !sides[0].sink.counting && opens(rec) {
                for (s, e) in sides.iter_mut().zip(&engines) {
                    s.start = tally::snapshot(e, s.worker.debtors());
                    s.sink.counting = true;
                }
            }
            if sides[0].sink.counting {
                windowed += 1;
            }
            let mut input = rec.as_input();
            if let (Some(reg), Some(view), Some(id)) = (
                &registry,
                view.as_mut(),
                mora_schemas::schema_id(&rec.payload),
            ) {
                if view.get(rec.family, id).is_none() {
                    reg.resolve(rec.family, id).with_context(|| {
                        format!("schema id {id} of {}@{}", rec.topic, rec.offset)
                    })?;
                }
                input.writer = view.get(rec.family, id);
            }
            for s in &mut sides {
                s.worker.process(&input, &mut s.sink);
            }
        }
        for (i, (mut s, e)) in sides.into_iter().zip(&engines).enumerate() {
            if let Some(to) = args.to
                && s.sink.counting
            {
                s.worker.on_tick(to, &mut s.sink);
            }
            if s.sink.counting {
                let end = tally::snapshot(e, s.worker.debtors());
                s.sink.tally.compare(&s.start, &end);
            }
            s.sink.files.finish()?;
            totals[i].merge(s.sink.tally);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let dir = args.out.join(name);
        mora_connector_files::merge_partitions(&dir, &parts[i])
            .with_context(|| format!("cannot merge outputs into {}", dir.display()))?;
    }
    let [a, b] = totals;
    let report = Report::build(args, records, windowed, a, b);
    report.write(&args.out)?;
    Ok(report)
}

/// Every partition's log, in the order the engine applies it, within `--to` / `--to-offset`.
fn read_logs(
    args: &ReplayArgs,
    app: &config::AppConfig,
) -> anyhow::Result<BTreeMap<i32, Vec<LogRecord>>> {
    let mut logs: BTreeMap<i32, Vec<LogRecord>> = BTreeMap::new();
    match &args.input {
        Some(file) => {
            for r in mora_connector_files::read_log(file)
                .with_context(|| format!("cannot read {}", file.display()))?
            {
                logs.entry(r.partition).or_default().push(r);
            }
            for log in logs.values_mut() {
                replay_order(log);
            }
        }
        None => {
            let Some(kafka) = &app.kafka else {
                bail!(
                    "{}: a [kafka] section is needed to read the input topics (or pass --input FILE)",
                    args.config.display()
                );
            };
            let partitions = mora_connector_kafka::check_co_partitioned(kafka)?;
            for p in 0..partitions {
                let until: BTreeMap<String, i64> = args
                    .to_offset
                    .iter()
                    .filter(|(_, pp, _)| *pp == p)
                    .map(|(t, _, o)| (t.clone(), *o))
                    .collect();
                let log = mora_connector_kafka::read_partition_log(kafka, p, &until)?;
                logs.insert(p, log);
            }
        }
    }
    if let Some(to) = args.to {
        for log in logs.values_mut() {
            log.retain(|r| r.timestamp <= to.0);
        }
    }
    Ok(logs)
}

/// Whether two output directories hold the same files with the same bytes (for tests and `--check`).
pub fn same_outputs(a: &Path, b: &Path) -> std::io::Result<bool> {
    let list = |d: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(d).unwrap_or(&p).to_path_buf());
                }
            }
        }
        out.sort();
        Ok(out)
    };
    let (la, lb) = (list(a)?, list(b)?);
    if la != lb {
        return Ok(false);
    }
    for f in la {
        if std::fs::read(a.join(&f))? != std::fs::read(b.join(&f))? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_instants_parse_or_say_why() {
        assert_eq!(
            parse_offset("mora.in.payment:3:120").unwrap(),
            ("mora.in.payment".to_string(), 3, 120)
        );
        assert!(
            parse_offset("mora.in.payment:x:1")
                .unwrap_err()
                .contains("partition")
        );
        assert!(parse_offset("nope").is_err());
        assert_eq!(
            parse_ts("2026-03-02T14:00:00Z").unwrap(),
            Ts(1_772_460_000_000)
        );
        assert!(parse_ts("yesterday").is_err());
    }
}
