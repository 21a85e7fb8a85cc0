//! Bearer tokens with roles: 401 without a known token, 403 when its role is not enough, as JSON.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::config::{ApiConfig, Role};
use super::handlers::error;

/// Known tokens.
pub(crate) struct Auth {
    tokens: Vec<(String, String, Role)>,
}

impl Auth {
    pub(crate) fn new(cfg: &ApiConfig) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            let value = match (&t.token, &t.token_env) {
                (Some(v), None) => v.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "api.tokens[{i}].token_env: environment variable {var} is not set"
                    )
                })?,
                _ => anyhow::bail!("api.tokens[{i}]: give exactly one of token and token_env"),
            };
            if value.len() < 16 {
                anyhow::bail!("api.tokens[{i}]: a token must have at least 16 characters");
            }
            tokens.push((value, t.name.clone(), t.role));
        }
        if tokens.is_empty() {
            let addr: std::net::SocketAddr = cfg
                .listen
                .parse()
                .map_err(|e| anyhow::anyhow!("api.listen: `{}`: {e}", cfg.listen))?;
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "api.tokens: required when api.listen ({}) is not a loopback address",
                    cfg.listen
                );
            }
            tracing::warn!(listen = %cfg.listen, "The API has no tokens: open to anyone on this machine.");
        }
        Ok(Self { tokens })
    }

    fn role_of(&self, header: Option<&str>) -> Result<Option<(&str, Role)>, ()> {
        if self.tokens.is_empty() {
            return Ok(Some(("anonymous", Role::Admin)));
        }
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Ok(None);
        };
        // Compare every token in full, so timing does not tell how much of one matched.
        let mut found = None;
        for (value, name, role) in &self.tokens {
            let same = value.len() == token.len()
                && value
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if same {
                found = Some((name.as_str(), *role));
            }
        }
        found.map(Some).ok_or(())
    }
}

/// Checks the request's token against the role its route needs (reloads need `admin`).
pub(crate) async fn require(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let needed = if req.method() == Method::POST {
        Role::Admin
    } else {
        Role::Read
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.role_of(header) {
        Ok(Some((name, role))) if role >= needed => {
            tracing::debug!(caller = name, path = %req.uri().path(), "API request.");
            next.run(req).await
        }
        Ok(Some((name, _))) => {
            tracing::warn!(caller = name, path = %req.uri().path(), "API request refused: role.");
            error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token's role does not allow this request",
            )
            .into_response()
        }
        Ok(None) | Err(()) => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
        .into_response(),
    }
}
