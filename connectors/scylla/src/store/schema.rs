//! The keyspace and tables (`cql/`), and the session every statement goes through.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::config::StateConfig;
use crate::error::StateError;

/// The schema, with `{keyspace}` and `{replication}` placeholders.
pub const SCHEMA: &str = include_str!("../../cql/001_state.cql");

pub(super) async fn session(cfg: &StateConfig) -> Result<Session, StateError> {
    let profile = ExecutionProfile::builder()
        .consistency(cfg.consistency.driver())
        .request_timeout(Some(Duration::from_secs(10)))
        .build()
        .into_handle();
    let mut b = SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .default_execution_profile_handle(profile)
        .connection_timeout(Duration::from_secs(5));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        b = b.user(u, p);
    }
    b.build().await.map_err(|e| StateError::Connect {
        nodes: cfg.nodes.clone(),
        source: Box::new(e),
    })
}

/// The schema's statements for `cfg`, comments removed.
pub fn schema_statements(cfg: &StateConfig) -> Vec<String> {
    let text: String = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", &cfg.keyspace)
                .replace("{replication}", &cfg.replication.cql())
        })
        .collect()
}

/// Creates the keyspace and tables if missing and records the shard count (kept if already recorded). Returns
/// the shard count in force.
pub async fn migrate(cfg: &StateConfig) -> Result<u16, StateError> {
    cfg.validate().map_err(StateError::Config)?;
    let s = session(cfg).await?;
    for stmt in schema_statements(cfg) {
        s.query_unpaged(stmt.clone(), &[])
            .await
            .map_err(|e| StateError::statement(&stmt, e))?;
    }
    s.await_schema_agreement().await.map_err(StateError::db)?;
    let ks = &cfg.keyspace;
    match stored_shards(&s, ks).await? {
        Some(n) => Ok(n),
        None => {
            s.query_unpaged(
                format!("INSERT INTO {ks}.meta (name, value) VALUES ('shards', ?) IF NOT EXISTS"),
                (cfg.shards.to_string(),),
            )
            .await
            .map_err(StateError::db)?;
            stored_shards(&s, ks)
                .await?
                .ok_or_else(|| StateError::NotMigrated(ks.clone()))
        }
    }
}

pub(super) async fn stored_shards(s: &Session, ks: &str) -> Result<Option<u16>, StateError> {
    let res = s
        .query_unpaged(
            format!("SELECT value FROM {ks}.meta WHERE name = 'shards'"),
            &[],
        )
        .await
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("does not exist") || msg.contains("unconfigured table") {
                StateError::NotMigrated(ks.to_string())
            } else {
                StateError::db(e)
            }
        })?;
    let rows = res.into_rows_result().map_err(StateError::db)?;
    let value = rows
        .maybe_first_row::<(Option<String>,)>()
        .map_err(StateError::db)?
        .and_then(|(v,)| v);
    value
        .map(|v| {
            v.parse::<u16>().map_err(|e| {
                StateError::Config(format!("{ks}.meta holds shards = `{v}`, not a count: {e}"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_templated_and_split_into_statements() {
        let mut cfg = StateConfig::new(vec!["n:9042".into()]);
        cfg.keyspace = "bank_a".into();
        let stmts = schema_statements(&cfg);
        assert!(stmts[0].starts_with(
            "CREATE KEYSPACE IF NOT EXISTS bank_a WITH replication = {'class': 'SimpleStrategy'"
        ));
        assert!(
            stmts
                .iter()
                .skip(1)
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS bank_a."))
        );
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.starts_with("CREATE KEYSPACE"))
        );
        assert_eq!(stmts.len(), 10);
    }
}
