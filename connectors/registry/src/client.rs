//! Requests to the registry's Confluent-compatible REST API, with failover across its URLs.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use mora_runtime::{SchemaFetchError, SchemaSource};
use serde_json::{Value, json};
use thiserror::Error;

use crate::config::RegistryConfig;

/// What a request to the registry came to.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// No URL could be reached, or each answered with a server error: transient.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry answered and refused (not found, incompatible, unauthorized).
    #[error("schema registry answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Confluent's `error_code` (e.g. 40401 subject not found, 40403 schema not found, 409 incompatible).
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// The configuration cannot make a client (CA file unreadable...) or an answer does not parse.
    #[error("schema registry: {0}")]
    Invalid(String),
}

impl RegistryError {
    /// Whether the registry answered that the subject, version or schema does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
    }
}

/// A client of one registry (several URLs of it).
#[derive(Debug)]
pub struct RegistryClient {
    agent: ureq::Agent,
    urls: Vec<String>,
    auth: Option<String>,
    /// Index of the URL that answered last (tried first).
    preferred: AtomicUsize,
}

const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/json";
const CONTENT: &str = "application/vnd.schemaregistry.v1+json";

impl RegistryClient {
    /// A client for `cfg` (validated first). Makes no request.
    pub fn new(cfg: &RegistryConfig) -> Result<Self, RegistryError> {
        cfg.validate().map_err(RegistryError::Invalid)?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                RegistryError::Invalid(format!("schema_registry.ca_file `{}`: {e}", path.display()))
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    RegistryError::Invalid(format!(
                        "schema_registry.ca_file `{}`: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "schema_registry.ca_file `{}`: no certificate in it",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        let auth = cfg.username.as_ref().map(|u| {
            let pair = format!("{u}:{}", cfg.password().unwrap_or_default());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Self {
            agent,
            urls: cfg
                .url
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            auth,
            preferred: AtomicUsize::new(0),
        })
    }

    /// One request, tried on each URL in turn (starting with the one that answered last) until one answers
    /// without a server error. Returns the status and the parsed body.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), RegistryError> {
        let mut failures = Vec::new();
        let first = self.preferred.load(Ordering::Relaxed);
        for k in 0..self.urls.len() {
            let i = (first + k) % self.urls.len();
            let url = format!("{}{path}", self.urls[i]);
            let sent = match (method, body) {
                ("GET", _) => {
                    let mut r = self.agent.get(&url).header("Accept", ACCEPT);
                    if let Some(a) = &self.auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                (_, b) => {
                    let mut r = self
                        .agent
                        .post(&url)
                        .header("Accept", ACCEPT)
                        .header("Content-Type", CONTENT);
                    if let Some(a) = &self.auth {
                        r = r.header("Authorization", a);
                    }
                    r.send(b.map(Value::to_string).unwrap_or_default())
                }
            };
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            if status >= 500 {
                failures.push(format!("{url}: HTTP {status} {}", text.trim()));
                continue;
            }
            self.preferred.store(i, Ordering::Relaxed);
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status >= 300 {
                return Err(RegistryError::Refused {
                    status,
                    code: value["error_code"].as_i64().unwrap_or(i64::from(status)),
                    message: value["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| text.trim().to_string()),
                });
            }
            return Ok((status, value));
        }
        Err(RegistryError::Unavailable(failures.join("; ")))
    }

    fn field<'a>(v: &'a Value, name: &str, what: &str) -> Result<&'a Value, RegistryError> {
        v.get(name)
            .ok_or_else(|| RegistryError::Invalid(format!("{what}: no `{name}` in the answer {v}")))
    }

    fn id_of(v: &Value, what: &str) -> Result<u32, RegistryError> {
        Self::field(v, "id", what)?
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                RegistryError::Invalid(format!("{what}: the id in {v} is not a 32-bit number"))
            })
    }

    /// The schema text registered under `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let (_, v) = self.request("GET", &format!("/schemas/ids/{id}"), None)?;
        Self::field(&v, "schema", "schema by id")?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Invalid(format!("schema by id {id}: not a string")))
    }

    /// Registers `schema` under `subject` (a no-op returning the id if it is there already); the registry refuses
    /// a schema incompatible with the subject's versions under its compatibility level.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let (_, v) = self.request(
            "POST",
            &format!("/subjects/{subject}/versions"),
            Some(&json!({ "schema": schema })),
        )?;
        Self::id_of(&v, "register")
    }

    /// The id of `schema` under `subject`, if it is registered there.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        match self.request(
            "POST",
            &format!("/subjects/{subject}"),
            Some(&json!({ "schema": schema })),
        ) {
            Ok((_, v)) => Self::id_of(&v, "lookup").map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The latest schema text under `subject`, if the subject exists.
    pub fn latest(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        match self.request("GET", &format!("/subjects/{subject}/versions/latest"), None) {
            Ok((_, v)) => Ok(Self::field(&v, "schema", "latest version")?
                .as_str()
                .map(str::to_string)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `schema` is compatible with `subject`'s versions under the subject's level (`None`: no such
    /// subject, nothing to be compatible with).
    pub fn compatible(&self, subject: &str, schema: &str) -> Result<Option<bool>, RegistryError> {
        match self.request(
            "POST",
            &format!("/compatibility/subjects/{subject}/versions/latest"),
            Some(&json!({ "schema": schema })),
        ) {
            Ok((_, v)) => Ok(v["is_compatible"].as_bool()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The compatibility level in force for `subject` (its own, else the registry's).
    pub fn level(&self, subject: &str) -> Result<String, RegistryError> {
        let own = match self.request(
            "GET",
            &format!("/config/{subject}?defaultToGlobal=true"),
            None,
        ) {
            Ok((_, v)) => v["compatibilityLevel"].as_str().map(str::to_string),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if let Some(level) = own {
            return Ok(level);
        }
        let (_, v) = self.request("GET", "/config", None)?;
        Ok(v["compatibilityLevel"]
            .as_str()
            .unwrap_or("BACKWARD")
            .to_string())
    }
}

impl SchemaSource for RegistryClient {
    fn schema(&self, id: u32) -> Result<String, SchemaFetchError> {
        self.schema_by_id(id).map_err(|e| match e {
            RegistryError::Unavailable(m) => SchemaFetchError::Unavailable(m),
            e if e.is_not_found() => SchemaFetchError::NotFound(format!("schema id {id}: {e}")),
            // Unauthorized, a malformed answer: nothing a retry of the same request changes soon, but nothing the
            // record did either, so it is not dead-lettered: the input waits and the log says why.
            e => SchemaFetchError::Unavailable(e.to_string()),
        })
    }
}
