//! The HTTP API risk and collections teams query: debtors, the portfolio, KPIs, work queues, configuration reloads,
//! health and Prometheus metrics. Versioned under `/v1`, JSON, bearer tokens with roles (see [`ApiConfig`]).
//!
//! Any instance gives the whole picture. It answers for the partitions it owns from memory (all of them with one
//! instance, or in `mora demo`) and, when a state store is configured, for the others from the state store: a
//! debtor's stored row, and the summaries (portfolio, KPI populations, work queue heads) and KPI days each partition's
//! owner publishes there (see [`remote`]). Every answer states where each partition came from (`sources`, or
//! `source` for a debtor) and how old a stored summary is (`as_of`, the partition's clock).

mod auth;
mod backend;
mod config;
mod handlers;
mod queues;
mod reload;
mod remote;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

pub use backend::{Backend, DemoBackend, KafkaBackend};
pub use config::{ApiConfig, Role, TokenConfig};
pub use reload::Reloader;
pub use serve::Limits;

/// What handlers share.
pub(crate) struct ApiState {
    pub backend: Arc<dyn Backend>,
    /// The state store, for partitions another instance owns.
    pub store: Option<mora_connector_scylla::StateConfig>,
    pub store_session: tokio::sync::OnceCell<mora_connector_scylla::Store>,
    pub auth: Arc<std::sync::RwLock<auth::Auth>>,
    pub reloader: Reloader,
    pub metrics: Option<PrometheusHandle>,
}

/// The router (public for tests that drive it without a socket).
pub fn router(
    backend: Arc<dyn Backend>,
    cfg: &ApiConfig,
    reloader: Reloader,
    metrics: Option<PrometheusHandle>,
    store: Option<mora_connector_scylla::StateConfig>,
) -> anyhow::Result<Router> {
    let auth = auth::Auth::new(cfg)?;
    if auth.is_open() {
        tracing::warn!(listen = %cfg.listen, "The API has no tokens: open to anyone on this machine.");
    }
    let auth = Arc::new(std::sync::RwLock::new(auth));
    reloader.attach_auth(auth.clone());
    let state = Arc::new(ApiState {
        backend,
        store,
        store_session: tokio::sync::OnceCell::new(),
        auth,
        reloader,
        metrics,
    });
    let v1 = Router::new()
        .route("/v1/debtors/{id}", get(handlers::debtor))
        .route("/v1/portfolio", get(handlers::portfolio))
        .route("/v1/kpis", get(handlers::kpis))
        .route("/v1/queues/{name}", get(queues::queue))
        .route("/v1/admin/reload", post(handlers::reload))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Ok(Router::new()
        .merge(v1)
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .fallback(handlers::not_found)
        .with_state(state))
}

/// A running API server.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `router` on `listen` in a thread of its own (with its own small async runtime), with the
    /// default [`Limits`].
    pub fn start(listen: &str, router: Router) -> anyhow::Result<Self> {
        Self::start_with(listen, router, Limits::default())
    }

    /// Starts serving `router` on `listen` within `limits`.
    pub fn start_with(listen: &str, router: Router, limits: Limits) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mora-api")
            .enable_all()
            .build()
            .context("cannot start the API runtime")?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(listen))
            .with_context(|| format!("api.listen: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mora-api".into())
            .spawn(move || {
                rt.block_on(async move {
                    let shutdown = async move {
                        while !stop2.load(Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    };
                    serve::serve(listener, router, limits, shutdown).await;
                });
            })?;
        tracing::info!(%addr, "API listening (GET /openapi.json describes it).");
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops serving and waits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
