//! Reloading the decision configuration: from the files on request or when they change. A configuration that does
//! not load is refused with its file and field, and the one in force stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mora_connector_kafka::ReloadReport;

use super::Backend;
use crate::config::{self, LoadError};

/// Loads the configuration from `path` and swaps it into a backend.
#[derive(Clone, Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
}

impl Reloader {
    /// Reloads from `path` (`None`: started with the built-in configuration, nothing to reload).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self { path }
    }

    /// The runtime file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Loads, validates and swaps.
    pub fn reload(&self, backend: &dyn Backend) -> Result<ReloadReport, LoadError> {
        let Some(path) = &self.path else {
            return Err(LoadError::Io {
                path: "built-in configuration".into(),
                source: std::io::Error::other(
                    "started without --config: there are no files to reload",
                ),
            });
        };
        let engine = config::load_decisions(path)?;
        Ok(backend.reload(Arc::new(engine)))
    }

    /// Watches the runtime file and everything its `[decisions]` point to; reloads when one changes.
    pub fn watch(self, backend: Arc<dyn Backend>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("mora-config-watch".into())
            .spawn(move || {
                let mut last = stamp(&path);
                loop {
                    std::thread::sleep(Duration::from_secs(2));
                    let now = stamp(&path);
                    if now == last {
                        continue;
                    }
                    last = now;
                    match self.reload(backend.as_ref()) {
                        Ok(r) => tracing::info!(
                            debtors = r.debtors,
                            changed = r.changed,
                            millis = r.millis,
                            "Configuration files changed: reloaded."
                        ),
                        Err(e) => tracing::error!(
                            error = %e,
                            "Configuration files changed but do not load; the configuration in force stays."
                        ),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot watch the configuration files.");
        }
    }
}

/// The latest modification time among the runtime file and the decision files and directories it names.
fn stamp(path: &Path) -> Option<SystemTime> {
    let mut latest = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let base = path.parent().unwrap_or(Path::new("."));
    let decisions = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
        .and_then(|v| v.get("decisions").cloned());
    let named = |key: &str, default: &str| {
        base.join(
            decisions
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .unwrap_or(default),
        )
    };
    let mut paths = vec![named("file", "decisions.toml")];
    for dir in [
        named("policies_dir", "policies"),
        named("holidays_dir", "holidays"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            paths.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
        paths.push(dir);
    }
    for p in paths {
        let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
        latest = latest.max(m);
    }
    latest
}
