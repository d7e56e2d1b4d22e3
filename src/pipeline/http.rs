//! The services' two HTTP endpoints: `GET /health` (JSON with a `status` field) and
//! `GET /metrics` (Prometheus text), each on its own address, both answering from the
//! service's current state.
//!
//! `/health` answers 200 for "healthy" and "degraded" and 503 for "unhealthy", always with the
//! JSON body: a load balancer reads the code, a person or the deploy reads the body.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What `/health` says overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// A service's state as the endpoints show it.
pub trait Observed: Send + Sync + 'static {
    /// The `/health` document; its `status` field is `.0`.
    fn health(&self) -> (Status, serde_json::Value);
    /// The `/metrics` text.
    fn metrics(&self) -> String;
}

type Shared = Arc<dyn Observed>;

/// Binds both addresses now (so a taken port is an error at start, naming the address), then
/// serves until `shutdown` turns true. The same address for both serves both paths there.
pub async fn serve(
    health: SocketAddr,
    metrics: SocketAddr,
    state: Shared,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for {what}: {e}"))
    };
    let health_router = Router::new()
        .route("/health", get(health_handler))
        .route("/", get(health_handler));
    let metrics_router = Router::new().route("/metrics", get(metrics_handler));
    if health == metrics {
        let listener = bind(health, "/health and /metrics").await?;
        spawn(
            listener,
            health_router.merge(metrics_router),
            state,
            shutdown,
        );
    } else {
        let h = bind(health, "/health").await?;
        let m = bind(metrics, "/metrics").await?;
        spawn(h, health_router, state.clone(), shutdown.clone());
        spawn(m, metrics_router, state, shutdown);
    }
    Ok(())
}

fn spawn(
    listener: TcpListener,
    router: Router<Shared>,
    state: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router.with_state(state);
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("HTTP server stopped: {e}");
        }
    });
}

async fn health_handler(State(state): State<Shared>) -> Response {
    let (status, body) = state.health();
    let code = match status {
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics_handler(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics(),
    )
        .into_response()
}

/// Milliseconds since `then`, for `last_*_age_ms` fields.
pub fn age_ms(then: Option<std::time::Instant>, now: std::time::Instant) -> Option<u64> {
    then.map(|t| now.saturating_duration_since(t).as_millis() as u64)
}
