//! The `[schema_registry]` section of `mora.toml`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How subjects are named (Confluent's subject name strategies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNaming {
    /// `<topic>-value` (TopicNameStrategy, the serializers' default).
    #[default]
    Topic,
    /// The record's full name, e.g. `mora.v1.PaymentEvent` (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

impl SubjectNaming {
    /// The subject of values of `topic` whose schema's top record is `record` (full name).
    pub fn subject(self, topic: &str, record: &str) -> String {
        match self {
            Self::Topic => format!("{topic}-value"),
            Self::Record => record.to_string(),
            Self::TopicRecord => format!("{topic}-{record}"),
        }
    }
}

/// Where the schema registry is and how mora uses it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URLs of the registry's Confluent-compatible API (`http://host:8081`, or Apicurio's
    /// `http://host:8080/apis/ccompat/v7`); tried in order, the next one when one cannot be reached.
    pub url: Vec<String>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password (prefer `password_env`).
    pub password: Option<String>,
    /// Environment variable holding the basic-auth password.
    pub password_env: Option<String>,
    /// PEM file of the certificate authorities trusted for `https` URLs (default: the bundled web roots).
    pub ca_file: Option<PathBuf>,
    /// Subject naming strategy.
    #[serde(default)]
    pub subjects: SubjectNaming,
    /// Whether mora registers its output schemas at start (otherwise they must be registered already, and are
    /// looked up and checked).
    #[serde(default = "default_true")]
    pub auto_register: bool,
    /// Writer schemas kept compiled, by id (a table that fills up starts again empty).
    #[serde(default = "default_cache")]
    pub cache: usize,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_true() -> bool {
    true
}

fn default_cache() -> usize {
    1000
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl RegistryConfig {
    /// A configuration for `url` with every default.
    pub fn new(url: &str) -> Self {
        Self {
            url: vec![url.to_string()],
            username: None,
            password: None,
            password_env: None,
            ca_file: None,
            subjects: SubjectNaming::Topic,
            auto_register: true,
            cache: default_cache(),
            timeout: default_timeout(),
        }
    }

    /// Checks every field without contacting the registry; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("schema_registry.url: at least one URL is required".into());
        }
        for u in &self.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 9 {
                return Err(format!(
                    "schema_registry.url: `{u}` is not an http:// or https:// URL"
                ));
            }
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(
                "schema_registry.password and schema_registry.password_env: give one, not both"
                    .into(),
            );
        }
        if (self.password.is_some() || self.password_env.is_some()) && self.username.is_none() {
            return Err("schema_registry.username: required with a password".into());
        }
        if let Some(var) = &self.password_env
            && std::env::var(var).is_err()
        {
            return Err(format!(
                "schema_registry.password_env: the variable `{var}` is not set"
            ));
        }
        if let Some(ca) = &self.ca_file
            && !ca.is_file()
        {
            return Err(format!(
                "schema_registry.ca_file: `{}` is not a readable file",
                ca.display()
            ));
        }
        if self.cache == 0 || self.cache > 1_000_000 {
            return Err(format!(
                "schema_registry.cache: {} is outside 1..=1000000",
                self.cache
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return Err("schema_registry.timeout: must be between 1 ms and 5 min".into());
        }
        Ok(())
    }

    /// The basic-auth password, from the file or its variable.
    pub(crate) fn password(&self) -> Option<String> {
        self.password.clone().or_else(|| {
            self.password_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_three_strategies() {
        let (t, r) = ("mora.in.payment", "mora.v1.PaymentEvent");
        assert_eq!(SubjectNaming::Topic.subject(t, r), "mora.in.payment-value");
        assert_eq!(SubjectNaming::Record.subject(t, r), "mora.v1.PaymentEvent");
        assert_eq!(
            SubjectNaming::TopicRecord.subject(t, r),
            "mora.in.payment-mora.v1.PaymentEvent"
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let mut c = RegistryConfig::new("http://127.0.0.1:8081");
        assert!(c.validate().is_ok());
        c.url = vec!["127.0.0.1:8081".into()];
        assert!(c.validate().unwrap_err().starts_with("schema_registry.url"));
        c = RegistryConfig::new("http://registry:8081");
        c.password = Some("x".into());
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("schema_registry.username")
        );
        c.username = Some("u".into());
        c.password_env = Some("MORA_TEST_SURELY_UNSET_VARIABLE".into());
        assert!(c.validate().unwrap_err().contains("give one, not both"));
        c.password = None;
        assert!(c.validate().unwrap_err().contains("is not set"));
        c = RegistryConfig::new("http://registry:8081");
        c.cache = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("schema_registry.cache")
        );
        c = RegistryConfig::new("http://registry:8081");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("schema_registry.ca_file")
        );
    }
}
