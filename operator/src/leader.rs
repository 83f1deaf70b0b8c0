//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one reconciles. The work runs only while the
//! lease is held; losing it stops the work and returns an error, and the
//! process exits (Kubernetes restarts it as a standby).

use std::future::Future;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease object name.
    pub name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Seconds a lease stays valid without renewal.
    pub duration_secs: u64,
    /// Renew this many seconds before expiry.
    pub grace_secs: u64,
}

/// Waits for the lease, then runs `work` while holding it. Returns when the
/// work ends (then the lease is released) or with an error when the lease is
/// lost.
pub async fn run_as_leader<F, Fut>(
    client: Client,
    cfg: LeaseConfig,
    metrics: Metrics,
    work: F,
) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &cfg.name)
        .with_namespace(&cfg.namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.duration_secs)
        .with_grace(cfg.grace_secs)
        .build()
        .await
        .map_err(|e| Error::Lease(e.to_string()))?;
    let (mut leader, task) = manager.watch().await;
    info!(lease = %cfg.name, identity = %cfg.identity, "waiting for the leader lease");
    while !*leader.borrow_and_update() {
        leader
            .changed()
            .await
            .map_err(|_| Error::Lease("lease watcher stopped".into()))?;
    }
    info!(identity = %cfg.identity, "acquired the leader lease");
    metrics.leader.set(1);
    let lost = async {
        loop {
            if leader.changed().await.is_err() || !*leader.borrow_and_update() {
                return;
            }
        }
    };
    let result = tokio::select! {
        () = work() => Ok(()),
        () = lost => {
            warn!(identity = %cfg.identity, "lost the leader lease; stopping");
            Err(Error::Lease("lost the leader lease".into()))
        }
    };
    metrics.leader.set(0);
    drop(leader);
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "releasing the lease failed"),
        Err(e) => warn!(error = %e, "lease task panicked"),
    }
    result
}
