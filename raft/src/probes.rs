//! HTTP endpoints for Kubernetes probes and Prometheus: `/metrics`,
//! `/healthz` (liveness: the Raft core is running) and `/readyz` (readiness:
//! a leader is known and this member is not shutting down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::raft_view::RaftView;
use crate::RaftMetrics;

/// Renders the member's metrics in the OpenMetrics text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct ProbeState {
    /// openraft's metrics watch (`raft.metrics()`).
    pub raft: watch::Receiver<RaftMetrics>,
    pub render: Render,
    /// Cleared when shutdown starts so load balancers stop sending traffic.
    pub serving: Arc<AtomicBool>,
}

pub fn router(state: ProbeState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(
    State(s): State<ProbeState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        (s.render)(),
    )
}

async fn healthz(State(s): State<ProbeState>) -> (StatusCode, String) {
    let view = RaftView::from_metrics(&s.raft.borrow());
    if view.healthy {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "raft core stopped\n".into(),
        )
    }
}

async fn readyz(State(s): State<ProbeState>) -> (StatusCode, String) {
    if !s.serving.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let view = RaftView::from_metrics(&s.raft.borrow());
    match view.leader_id {
        Some(l) if view.healthy => (StatusCode::OK, format!("ready; leader {l}\n")),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n".into()),
    }
}
