//! CPU time of each process of a run, from the kernel's accounting (`/proc`, Linux): the machine's cores are shared
//! by the broker, the database, the load generator and the system under test, so a rate means something on another
//! node only together with what each of them spent per event.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`; 100 on Linux's common configurations).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far, by part: `engine` (mora's engine threads, or the peer's whole JVM), `state_io` (the
/// state store driver's runtime threads), `harness` (the rest of this process: the load generator and the
/// latency probe), `kafka` and `cassandra` (the services' processes, when their pid files are found).
#[derive(Debug, Clone, Default)]
pub(super) struct CpuSnapshot(BTreeMap<&'static str, f64>);

impl CpuSnapshot {
    /// Takes one now. `peer` is the peer's process, when the peer is the system under test.
    pub(super) fn take(peer: Option<u32>) -> Self {
        let mut parts = BTreeMap::new();
        let own = ticks(&PathBuf::from("/proc/self/stat")).unwrap_or(0);
        let (mut engine, mut state) = (0, 0);
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let used = ticks(&t.path().join("stat")).unwrap_or(0);
                if comm.starts_with("mora-engine") {
                    engine += used;
                } else if comm.starts_with("mora-state") {
                    state += used;
                }
            }
        }
        let harness = own.saturating_sub(engine + state);
        if let Some(pid) = peer {
            engine = ticks(&PathBuf::from(format!("/proc/{pid}/stat"))).unwrap_or(0);
        }
        parts.insert("engine", engine as f64 / TICKS_PER_SECOND);
        parts.insert("state_io", state as f64 / TICKS_PER_SECOND);
        parts.insert("harness", harness as f64 / TICKS_PER_SECOND);
        let run = std::env::var("MORA_SERVICES_RUN").unwrap_or_else(|_| ".services".into());
        for name in ["kafka", "cassandra"] {
            let pid = std::fs::read_to_string(format!("{run}/{name}.pid")).unwrap_or_default();
            if let Some(t) = ticks(&PathBuf::from(format!("/proc/{}/stat", pid.trim()))) {
                parts.insert(name, t as f64 / TICKS_PER_SECOND);
            }
        }
        Self(parts)
    }

    /// Microseconds of CPU per event of each part between `before` and `self`.
    pub(super) fn per_event_since(
        &self,
        before: &CpuSnapshot,
        events: u64,
    ) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|(k, v)| {
                let used = v - before.0.get(k).copied().unwrap_or(0.0);
                let us = used * 1e6 / events.max(1) as f64;
                (k.to_string(), (us * 10.0).round() / 10.0)
            })
            .collect()
    }
}

/// User plus system clock ticks of a process or thread, from its `stat` file.
fn ticks(stat: &PathBuf) -> Option<u64> {
    let s = std::fs::read_to_string(stat).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
