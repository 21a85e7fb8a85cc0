//! Loading configuration: built-in defaults < file < `MORA__...` environment variables, then the decision file,
//! policies and holiday calendars it points to. Every error names the file, the field and the reason.

mod embedded;

use std::fs;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mora_domain::config_error::ConfigError;
use mora_domain::engine::{Engine, EngineConfig};
use mora_domain::policy::{HolidayCalendarConfig, PolicyConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The runtime configuration file (`mora.toml`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Where the decision configuration lives.
    #[serde(default)]
    pub decisions: DecisionsConfig,
    /// Kafka settings (needed by `mora run` and `mora loadgen`).
    pub kafka: Option<mora_connector_kafka::KafkaConfig>,
    /// The state store (ScyllaDB or Cassandra). Without it, `mora run` rebuilds partitions by replaying their
    /// input from the beginning.
    pub state: Option<mora_connector_scylla::StateConfig>,
    /// The HTTP API (`mora run`, `mora demo`): listen address, tokens, file watching.
    pub api: Option<crate::api::ApiConfig>,
    /// Engine threads of `mora run`.
    #[serde(default)]
    pub engine: EngineSection,
    /// A schema registry (Confluent's REST API): input records framed with its ids, outputs registered under
    /// their topics' subjects. Without it, records are framed with mora's built-in schema ids.
    pub schema_registry: Option<mora_connector_registry::RegistryConfig>,
}

/// The `[engine]` section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Engine threads per instance, each owning a disjoint set of partitions with a consumer and a producer of its
    /// own. Default: the machine's available parallelism.
    pub threads: Option<usize>,
}

/// Engine threads an instance may run at most (a sanity bound: more threads than partitions sit idle).
const MAX_THREADS: usize = 1024;

impl EngineSection {
    /// The engine threads to run: as configured, or one per available core.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    fn validate(&self) -> Result<(), String> {
        match self.threads {
            Some(n) if n == 0 || n > MAX_THREADS => Err(format!(
                "engine.threads: {n} is not between 1 and {MAX_THREADS}"
            )),
            _ => Ok(()),
        }
    }
}

/// Paths of the decision configuration, relative to the runtime configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsConfig {
    /// Segmentation, priority, queues and strategies.
    #[serde(default = "default_decisions_file")]
    pub file: PathBuf,
    /// Directory of jurisdiction policy files (`*.toml`).
    #[serde(default = "default_policies_dir")]
    pub policies_dir: PathBuf,
    /// Directory of holiday calendars (`*.toml`).
    #[serde(default = "default_holidays_dir")]
    pub holidays_dir: PathBuf,
}

// The layout of deploy/config, which the embedded defaults mirror.
fn default_decisions_file() -> PathBuf {
    "decisions.toml".into()
}
fn default_policies_dir() -> PathBuf {
    "policies".into()
}
fn default_holidays_dir() -> PathBuf {
    "holidays".into()
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            file: default_decisions_file(),
            policies_dir: default_policies_dir(),
            holidays_dir: default_holidays_dir(),
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid TOML or does not match the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Parser message (line, key and what was expected).
        message: String,
    },
    /// A value failed validation.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// Field and reason.
        error: ConfigError,
    },
}

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Loaded {
    /// Runtime configuration.
    pub app: AppConfig,
    /// The compiled decision configuration.
    pub engine: Engine,
    /// Where it came from (for the log and the summary).
    pub source: String,
    /// The decision configuration as parsed (decisions, policies, holiday calendars), in canonical JSON: two loads
    /// with the same form compile to the same engine, so a reload of unchanged files changes nothing.
    pub decisions_form: String,
}

/// Loads `path` (or the built-in defaults when `None`), with `MORA__` environment overrides.
pub fn load(path: Option<&Path>) -> Result<Loaded, LoadError> {
    let mut fig = Figment::from(Serialized::defaults(AppConfig::default()));
    if let Some(p) = path {
        if !p.is_file() {
            let (kind, what) = match std::fs::metadata(p) {
                Err(_) => (std::io::ErrorKind::NotFound, "no such file"),
                Ok(m) if m.is_dir() => (
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, not a configuration file",
                ),
                Ok(_) => (
                    std::io::ErrorKind::InvalidInput,
                    "is not a regular file (a pipe, socket or device?)",
                ),
            };
            return Err(LoadError::Io {
                path: p.display().to_string(),
                source: std::io::Error::new(kind, what),
            });
        }
        fig = fig.merge(Toml::file(p));
    }
    fig = fig.merge(Env::prefixed("MORA__").split("__"));
    let shown = path.map_or_else(
        || "built-in configuration".to_string(),
        |p| p.display().to_string(),
    );
    let app: AppConfig = fig.extract().map_err(|e| LoadError::Parse {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    app.engine.validate().map_err(|message| LoadError::Parse {
        path: shown.clone(),
        message,
    })?;
    if let Some(r) = &app.schema_registry {
        r.validate().map_err(|message| LoadError::Parse {
            path: shown,
            message,
        })?;
    }
    let (engine, source, decisions_form) = build_engine(path, &app.decisions)?;
    Ok(Loaded {
        app,
        engine,
        source,
        decisions_form,
    })
}

/// Loads only the decision configuration a runtime file points to (its `[decisions]` section; other sections and
/// environment overrides are ignored): a candidate for `mora replay`.
pub fn load_decisions(path: &Path) -> Result<Engine, LoadError> {
    #[derive(Deserialize)]
    struct OnlyDecisions {
        #[serde(default)]
        decisions: DecisionsConfig,
    }
    let text = read(path)?;
    let only: OnlyDecisions = parse(&path.display().to_string(), &text)?;
    Ok(build_engine(Some(path), &only.decisions)?.0)
}

/// Compiles the decision configuration `decisions` of runtime file `path` (built-in defaults when `None`).
fn build_engine(
    path: Option<&Path>,
    decisions_cfg: &DecisionsConfig,
) -> Result<(Engine, String, String), LoadError> {
    let (decisions, policies, calendars, source) = match path {
        None => {
            let d = parse::<EngineConfig>("built-in decisions.toml", embedded::DECISIONS)?;
            let mut policies = Vec::new();
            for (name, text) in embedded::POLICIES {
                policies.push((
                    format!("built-in policies/{name}"),
                    parse::<PolicyConfig>(name, text)?,
                ));
            }
            let mut calendars = Vec::new();
            for (name, text) in embedded::HOLIDAYS {
                calendars.push(parse::<HolidayCalendarConfig>(name, text)?);
            }
            (d, policies, calendars, "built-in defaults".to_string())
        }
        Some(p) => {
            let base = p.parent().unwrap_or(Path::new("."));
            let dfile = base.join(&decisions_cfg.file);
            let d = parse::<EngineConfig>(&dfile.display().to_string(), &read(&dfile)?)?;
            let mut policies = Vec::new();
            let policies_dir = base.join(&decisions_cfg.policies_dir);
            for f in toml_files(&policies_dir)? {
                let name = f.display().to_string();
                policies.push((name.clone(), parse::<PolicyConfig>(&name, &read(&f)?)?));
            }
            // Without a policy every action would be blocked as `unknown_jurisdiction`: failing closed, but
            // silently. Refuse it here, where the cause is plain.
            if policies.is_empty() {
                return Err(LoadError::Parse {
                    path: policies_dir.display().to_string(),
                    message: "decisions.policies_dir: no policy file (*.toml) here; without a jurisdiction's \
                              policy every action for its debtors is blocked"
                        .into(),
                });
            }
            let mut calendars = Vec::new();
            for f in toml_files(&base.join(&decisions_cfg.holidays_dir))? {
                calendars.push(parse::<HolidayCalendarConfig>(
                    &f.display().to_string(),
                    &read(&f)?,
                )?);
            }
            (d, policies, calendars, p.display().to_string())
        }
    };
    let policy_cfgs: Vec<PolicyConfig> = policies.iter().map(|(_, p)| p.clone()).collect();
    let engine = Engine::new(&decisions, &policy_cfgs, &calendars).map_err(|error| {
        // Name the file the field lives in: a policy file when the path starts with its id.
        let path = policies
            .iter()
            .find(|(_, p)| error.field.starts_with(&format!("policy {}", p.id)))
            .map(|(f, _)| f.clone())
            .unwrap_or_else(|| match path {
                None => "built-in decisions.toml".to_string(),
                Some(p) => p
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(&decisions_cfg.file)
                    .display()
                    .to_string(),
            });
        LoadError::Invalid { path, error }
    })?;
    let form = serde_json::to_string(&(&decisions, &policy_cfgs, &calendars)).unwrap_or_default();
    Ok((engine, source, form))
}

fn read(p: &Path) -> Result<String, LoadError> {
    fs::read_to_string(p).map_err(|source| LoadError::Io {
        path: p.display().to_string(),
        source,
    })
}

fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, LoadError> {
    toml::from_str(text).map_err(|e| LoadError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
