//! Reloading the decision configuration: from the files on request or when they change. A configuration that does
//! not load is refused with its file and field, and the one in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use mora_connector_kafka::ReloadReport;

use super::Backend;
use super::auth::Auth;
use super::config::ApiConfig;
use crate::config::{self, AppConfig, LoadError};

/// Loads the configuration from `path` and swaps it into a backend.
#[derive(Clone, Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    shared: Arc<Shared>,
}

/// What every clone of a reloader sees: the runtime sections in force and the API's tokens.
#[derive(Default)]
struct Shared {
    /// The runtime file's sections as loaded at start or by the last reload, with the decision configuration's
    /// parsed form.
    in_force: Mutex<Option<(AppConfig, String)>>,
    /// The API's tokens, swapped when a reload changes them.
    auth: Mutex<Option<Arc<RwLock<Auth>>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Sections that take effect only at start: a reload that changes one is refused, naming it.
const RESTART_ONLY: [&str; 4] = ["kafka", "state", "engine", "schema_registry"];

impl Reloader {
    /// Reloads from `path` (`None`: started with the built-in configuration, nothing to reload).
    pub fn new(path: Option<PathBuf>) -> Self {
        let in_force = path
            .as_deref()
            .and_then(|p| config::load(Some(p)).ok())
            .map(|l| (l.app, l.decisions_form));
        Self {
            path,
            shared: Arc::new(Shared {
                in_force: Mutex::new(in_force),
                auth: Mutex::new(None),
            }),
        }
    }

    /// The runtime file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The tokens the API checks; a reload that changes `[api] tokens` swaps them.
    pub(crate) fn attach_auth(&self, auth: Arc<RwLock<Auth>>) {
        *self.shared.auth.lock().unwrap_or_else(|e| e.into_inner()) = Some(auth);
    }

    /// Loads and validates the whole runtime file as `mora validate` and `mora run` do, refuses changes that only a
    /// restart can apply, then swaps the decision configuration and, when they changed, the API's tokens. Decision
    /// files that parse to what is in force are not swapped: no debtor is re-evaluated (`None`).
    pub fn reload(&self, backend: &dyn Backend) -> Result<Option<ReloadReport>, LoadError> {
        let Some(path) = &self.path else {
            return Err(LoadError::Io {
                path: "built-in configuration".into(),
                source: std::io::Error::other(
                    "started without --config: there are no files to reload",
                ),
            });
        };
        let refuse = |message: String| LoadError::Parse {
            path: path.display().to_string(),
            message: format!("{message}; nothing was reloaded"),
        };
        let loaded = config::load(Some(path))?;
        let mut in_force = self
            .shared
            .in_force
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut new_auth = None;
        if let Some((old, _)) = in_force.as_ref() {
            let (before, after) = (section_values(old), section_values(&loaded.app));
            for name in RESTART_ONLY {
                if before.get(name) != after.get(name) {
                    return Err(refuse(format!(
                        "`{name}`: changed in the file; it takes effect at restart"
                    )));
                }
            }
            let (old_api, new_api) = (
                old.api.clone().unwrap_or_default(),
                loaded.app.api.clone().unwrap_or_default(),
            );
            if old_api.listen != new_api.listen || old_api.watch != new_api.watch {
                return Err(refuse(
                    "`api.listen` or `api.watch`: changed in the file; they take effect at restart (tokens \
                     rotate by reload)"
                        .into(),
                ));
            }
            if token_values(&old_api) != token_values(&new_api) {
                new_auth = Some(Auth::new(&new_api).map_err(|e| refuse(format!("{e:#}")))?);
            }
        }
        let unchanged = in_force
            .as_ref()
            .is_some_and(|(_, form)| *form == loaded.decisions_form);
        let report = (!unchanged).then(|| backend.reload(Arc::new(loaded.engine)));
        if let Some(auth) = new_auth {
            let attached = self.shared.auth.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = attached.as_ref() {
                *slot.write().unwrap_or_else(|e| e.into_inner()) = auth;
                tracing::info!("API tokens replaced by the reload.");
            }
        }
        *in_force = Some((loaded.app, loaded.decisions_form));
        Ok(report)
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
                        Ok(Some(r)) => tracing::info!(
                            debtors = r.debtors,
                            changed = r.changed,
                            millis = r.millis,
                            "Configuration files changed: reloaded."
                        ),
                        Ok(None) => tracing::info!(
                            "Configuration files touched; the decision configuration is unchanged."
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

/// Each top-level section of a runtime configuration as a value, to compare two of them.
fn section_values(app: &AppConfig) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(app) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// Each token as configured: name, role, and its value or variable (compared, never logged).
fn token_values(api: &ApiConfig) -> Vec<(String, String, Option<String>, Option<String>)> {
    api.tokens
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                format!("{:?}", t.role),
                t.token.clone(),
                t.token_env.clone(),
            )
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DemoBackend;
    use crate::api::config::Role;

    const OLD: &str = "old-read-token-000000000001";
    const NEW: &str = "new-read-token-000000000001";

    /// A runtime file beside a copy of the shipped decision files, with a `[kafka]` section and one token.
    fn runtime(dir: &Path, token: &str, commit: &str, extra: &str) -> PathBuf {
        let defaults = Path::new(env!("CARGO_MANIFEST_DIR")).join("defaults");
        let path = dir.join("mora.toml");
        std::fs::write(
            &path,
            format!(
                "[decisions]\nfile = \"{d}/decisions.toml\"\npolicies_dir = \"{d}/policies\"\n\
                 holidays_dir = \"{d}/holidays\"\n\n[kafka]\nbrokers = \"broker:9092\"\n\
                 commit_interval = \"{commit}\"\n\n[api]\ntokens = [{{ name = \"risk\", token = \"{token}\", \
                 role = \"read\" }}]\n{extra}",
                d = defaults.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn backend() -> DemoBackend {
        let engine = config::load(None).unwrap_or_else(|e| panic!("{e}")).engine;
        DemoBackend {
            workers: Vec::new(),
            engine: Arc::new(Mutex::new(Arc::new(engine))),
        }
    }

    #[test]
    fn a_reload_refuses_restart_only_and_unknown_sections_by_name_and_rotates_tokens() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = runtime(dir.path(), OLD, "100ms", "");
        let reloader = Reloader::new(Some(path.clone()));
        let api = config::load(Some(&path))
            .unwrap_or_else(|e| panic!("{e}"))
            .app
            .api
            .unwrap_or_default();
        let auth = Arc::new(RwLock::new(
            Auth::new(&api).unwrap_or_else(|e| panic!("{e}")),
        ));
        reloader.attach_auth(auth.clone());
        let backend = backend();
        let role = |token: &str| {
            auth.read()
                .unwrap_or_else(|e| e.into_inner())
                .role_of(Some(&format!("Bearer {token}")))
                .map(|r| r.map(|(_, role)| role))
        };

        runtime(dir.path(), OLD, "250ms", "");
        let err = reloader
            .reload(&backend)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("`kafka`") && err.contains("restart"), "{err}");
        runtime(dir.path(), OLD, "100ms", "\n[bogus]\nx = 1\n");
        let err = reloader
            .reload(&backend)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bogus"), "{err}");
        assert_eq!(role(OLD), Ok(Some(Role::Read)), "nothing changed so far");

        runtime(dir.path(), NEW, "100ms", "");
        assert!(
            matches!(reloader.reload(&backend), Ok(None)),
            "the decision files are unchanged: no debtor is re-evaluated, and the tokens rotate all the same"
        );
        assert_eq!(role(NEW), Ok(Some(Role::Read)), "the new token is accepted");
        assert_eq!(role(OLD), Err(()), "the old one is refused");
    }
}
