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
            if let Some(j) = tokens.iter().position(|(v, _, _)| *v == value) {
                anyhow::bail!(
                    "api.tokens[{i}] ({}): the same token as api.tokens[{j}] ({}); each holder needs a token of its own",
                    t.name,
                    tokens[j].1
                );
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
        }
        Ok(Self { tokens })
    }

    /// True when no token is configured: the API is open (allowed on a loopback address only).
    pub(crate) fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    pub(crate) fn role_of(&self, header: Option<&str>) -> Result<Option<(&str, Role)>, ()> {
        if self.tokens.is_empty() {
            return Ok(Some(("anonymous", Role::Admin)));
        }
        // The scheme is case-insensitive (RFC 7235 section 2.1).
        let Some(token) = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
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
    let decided = state
        .auth
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .role_of(header)
        .map(|found| found.map(|(name, role)| (name.to_string(), role)));
    match decided {
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
        Ok(None) | Err(()) => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer <token>)",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"mora\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config::TokenConfig;

    fn token(name: &str, value: &str, role: Role) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            token: Some(value.into()),
            token_env: None,
            role,
        }
    }

    fn config(tokens: Vec<TokenConfig>) -> ApiConfig {
        ApiConfig {
            tokens,
            ..ApiConfig::default()
        }
    }

    #[test]
    fn the_same_token_under_two_names_is_refused_naming_both() {
        let err = Auth::new(&config(vec![
            token("ops", "0123456789abcdef-admin", Role::Admin),
            token("risk", "0123456789abcdef-admin", Role::Read),
        ]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("api.tokens[1] (risk)") && err.contains("api.tokens[0] (ops)"),
            "{err}"
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        let auth = Auth::new(&config(vec![token(
            "ops",
            "0123456789abcdef-admin",
            Role::Admin,
        )]))
        .unwrap_or_else(|e| panic!("{e}"));
        for h in [
            "Bearer 0123456789abcdef-admin",
            "bearer 0123456789abcdef-admin",
            "BEARER 0123456789abcdef-admin",
        ] {
            assert_eq!(auth.role_of(Some(h)), Ok(Some(("ops", Role::Admin))), "{h}");
        }
        assert_eq!(auth.role_of(Some("Basic 0123456789abcdef-admin")), Ok(None));
        assert_eq!(
            auth.role_of(Some("Bearer wrong-token-of-16-chars")),
            Err(())
        );
        assert_eq!(auth.role_of(None), Ok(None));
    }

    #[test]
    fn an_open_api_off_loopback_and_an_unset_token_variable_are_refused_by_name() {
        let open = ApiConfig {
            listen: "0.0.0.0:8080".into(),
            ..ApiConfig::default()
        };
        let err = Auth::new(&open)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("api.tokens: required"), "{err}");
        let unset = config(vec![TokenConfig {
            name: "ops".into(),
            token: None,
            token_env: Some("MORA_TEST_TOKEN_THAT_IS_NEVER_SET".into()),
            role: Role::Admin,
        }]);
        let err = Auth::new(&unset)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("api.tokens[0].token_env"), "{err}");
    }
}
