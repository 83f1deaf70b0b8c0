//! The serving lifecycle both server binaries share: one stop signal that
//! fans out to every server and stream, the probe/metrics HTTP server, and
//! the ordered drain on shutdown (readiness off, stop accepting, let
//! in-flight gRPC requests finish within a grace period, stop HTTP).
//!
//! Stopping the Raft instance itself stays with the caller, which owns its
//! concrete Raft type and any tasks of its own.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::probes::{router, ProbeState, Render};
use crate::{MetricsWatch, RaftTypes};

pub struct Lifecycle {
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    /// Cleared when shutdown starts, so `/readyz` fails first.
    serving: Arc<AtomicBool>,
    http: Option<JoinHandle<std::io::Result<()>>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        let (stop_tx, stop_rx) = watch::channel(false);
        Lifecycle {
            stop_tx,
            stop_rx,
            serving: Arc::new(AtomicBool::new(true)),
            http: None,
        }
    }

    /// A receiver that turns `true` when shutdown starts (for long-lived
    /// streams such as config watches).
    pub fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop_rx.clone()
    }

    /// A future that resolves when shutdown starts.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until
    /// shutdown.
    pub fn spawn_probes<C: RaftTypes>(
        &mut self,
        listener: TcpListener,
        raft: MetricsWatch<C>,
        render: Render,
    ) {
        let app = router::<C>(ProbeState {
            raft,
            render,
            serving: self.serving.clone(),
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(self.stopped());
        self.http = Some(tokio::spawn(async move { server.await }));
    }

    /// Starts shutdown and waits, at most `grace` each, for the gRPC server
    /// (in-flight requests) and the HTTP server to finish.
    pub async fn drain(
        self,
        grpc: JoinHandle<Result<(), tonic::transport::Error>>,
        grace: Duration,
    ) {
        self.serving.store(false, Ordering::SeqCst);
        let _ = self.stop_tx.send(true);
        match tokio::time::timeout(grace, grpc).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "gRPC server ended with an error"),
            Ok(Err(e)) => warn!(error = %e, "gRPC server task failed"),
            Err(_) => warn!(?grace, "in-flight requests did not finish in time"),
        }
        if let Some(http) = self.http {
            let _ = tokio::time::timeout(grace, http).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_stops_waiters_and_a_server_that_honours_the_signal() {
        let life = Lifecycle::new();
        let mut rx = life.stop_receiver();
        let stopped = life.stopped();
        let grpc = tokio::spawn(async move {
            stopped.await;
            Ok::<(), tonic::transport::Error>(())
        });
        life.drain(grpc, Duration::from_secs(5)).await;
        assert!(*rx.borrow_and_update(), "stop receivers see shutdown");
    }
}
