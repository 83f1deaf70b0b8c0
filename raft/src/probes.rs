//! HTTP endpoints for Kubernetes probes and Prometheus: `/metrics`,
//! `/healthz` (liveness: the Raft core is running) and `/readyz` (readiness:
//! a leader is known and this member is not shutting down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use openraft::async_runtime::watch::WatchReceiver;

use crate::raft_view::RaftView;
use crate::{MetricsWatch, RaftTypes};

/// Renders the member's metrics in the OpenMetrics text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

pub struct ProbeState<C: RaftTypes> {
    /// openraft's metrics watch (`raft.metrics()`).
    pub raft: MetricsWatch<C>,
    pub render: Render,
    /// Cleared when shutdown starts so load balancers stop sending traffic.
    pub serving: Arc<AtomicBool>,
}

impl<C: RaftTypes> Clone for ProbeState<C> {
    fn clone(&self) -> Self {
        ProbeState {
            raft: self.raft.clone(),
            render: self.render.clone(),
            serving: self.serving.clone(),
        }
    }
}

pub fn router<C: RaftTypes>(state: ProbeState<C>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<C>))
        .route("/healthz", get(healthz::<C>))
        .route("/readyz", get(readyz::<C>))
        .with_state(state)
}

async fn metrics<C: RaftTypes>(
    State(s): State<ProbeState<C>>,
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

async fn healthz<C: RaftTypes>(State(s): State<ProbeState<C>>) -> (StatusCode, String) {
    let view = RaftView::from_metrics(&s.raft.borrow_watched());
    if view.healthy {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "raft core stopped\n".into(),
        )
    }
}

async fn readyz<C: RaftTypes>(State(s): State<ProbeState<C>>) -> (StatusCode, String) {
    if !s.serving.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let view = RaftView::from_metrics(&s.raft.borrow_watched());
    match view.leader_id {
        Some(l) if view.healthy => (StatusCode::OK, format!("ready; leader {l}\n")),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n".into()),
    }
}
