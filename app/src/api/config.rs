//! The `[api]` section of `mora.toml`.

use serde::{Deserialize, Serialize};

/// HTTP API settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer tokens and their roles. With none, the API is open: allowed only on a loopback address.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Reload the decision configuration when its files change (checked every 2 s).
    #[serde(default = "default_watch")]
    pub watch: bool,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_watch() -> bool {
    true
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tokens: Vec::new(),
            watch: default_watch(),
        }
    }
}

impl ApiConfig {
    /// Everything `mora run` checks before serving, without serving: tokens (one of `token` and `token_env`, the
    /// variable set, at least 16 characters, no value under two names) and, with no token, a loopback `listen`.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::auth::Auth::new(self).map(|_| ())
    }
}

/// One bearer token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (appears in logs instead of the token).
    pub name: String,
    /// The token itself; prefer `token_env`.
    pub token: Option<String>,
    /// The environment variable holding the token.
    pub token_env: Option<String>,
    /// What it may do.
    pub role: Role,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A token's permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read the portfolio, debtors, queues and KPIs (risk and collections teams).
    Read,
    /// Also reload the configuration.
    Admin,
}
