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

#[cfg(test)]
mod tests {
    //! Two operator replicas against one fake Lease API: only one works at
    //! a time, and a replica whose lease is taken stops.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{json, Value};

    use super::*;

    #[derive(Default)]
    struct LeaseStore {
        lease: Option<Value>,
        /// Field manager owning `spec.holderIdentity` (server-side apply).
        holder_manager: Option<String>,
    }

    fn reply(code: u16, v: &Value) -> Response<Body> {
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(v).unwrap()))
            .unwrap()
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code, "reason": reason, "message": reason})
    }

    impl LeaseStore {
        fn handle(&mut self, method: &Method, query: &str, body: Option<Value>) -> Response<Body> {
            let manager = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldManager="))
                .map(str::to_string);
            match *method {
                Method::GET => match &self.lease {
                    Some(l) => reply(200, l),
                    None => reply(404, &status(404, "NotFound")),
                },
                Method::POST => {
                    if self.lease.is_some() {
                        return reply(409, &status(409, "AlreadyExists"));
                    }
                    let mut l = body.unwrap();
                    l["metadata"]["resourceVersion"] = json!("1");
                    self.lease = Some(l.clone());
                    reply(201, &l)
                }
                Method::PATCH => {
                    let patch = body.unwrap();
                    let Some(lease) = self.lease.as_mut() else {
                        return reply(404, &status(404, "NotFound"));
                    };
                    let sets_holder = patch["spec"]
                        .get("holderIdentity")
                        .is_some_and(|h| !h.is_null());
                    let is_apply = patch.get("apiVersion").is_some()
                        && patch["spec"].get("acquireTime").is_some()
                        && patch["spec"].get("leaseTransitions").is_none();
                    if is_apply
                        && sets_holder
                        && self.holder_manager.is_some()
                        && self.holder_manager != manager
                    {
                        return reply(409, &status(409, "Conflict"));
                    }
                    if patch["spec"].get("holderIdentity").is_some() {
                        self.holder_manager = if sets_holder { manager } else { None };
                    }
                    if !lease["spec"].is_object() {
                        lease["spec"] = json!({});
                    }
                    for (k, v) in patch["spec"].as_object().unwrap() {
                        if v.is_null() {
                            lease["spec"].as_object_mut().unwrap().remove(k);
                        } else {
                            lease["spec"][k] = v.clone();
                        }
                    }
                    reply(200, lease)
                }
                _ => reply(405, &status(405, "MethodNotAllowed")),
            }
        }
    }

    fn fake_client(store: Arc<Mutex<LeaseStore>>) -> Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
                let query = parts.uri.query().unwrap_or_default().to_string();
                let resp = store.lock().unwrap().handle(&parts.method, &query, body);
                send.send_response(resp);
            }
        });
        Client::new(svc, "ops")
    }

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: "shardline-operator".into(),
            namespace: "ops".into(),
            identity: identity.into(),
            duration_secs: 2,
            grace_secs: 1,
        }
    }

    #[tokio::test]
    async fn two_replicas_never_work_at_once() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let active = Arc::new(AtomicUsize::new(0));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let worked = Arc::new(AtomicUsize::new(0));
        let replica = |id: &'static str| {
            let client = fake_client(store.clone());
            let (active, overlaps, worked) = (active.clone(), overlaps.clone(), worked.clone());
            tokio::spawn(async move {
                run_as_leader(client, config(id), Metrics::default(), || async move {
                    if active.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    worked.fetch_add(1, Ordering::SeqCst);
                })
                .await
            })
        };
        let a = replica("replica-a");
        let b = replica("replica-b");
        let (ra, rb) = tokio::time::timeout(Duration::from_secs(30), async { (a.await, b.await) })
            .await
            .unwrap();
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
        assert_eq!(
            worked.load(Ordering::SeqCst),
            2,
            "both got the lease in turn"
        );
        assert_eq!(overlaps.load(Ordering::SeqCst), 0, "never both leaders");
    }

    #[tokio::test]
    async fn losing_the_lease_stops_the_work() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let client = fake_client(store.clone());
        let started = Arc::new(tokio::sync::Notify::new());
        let s = started.clone();
        let task = tokio::spawn(async move {
            run_as_leader(
                client,
                config("replica-a"),
                Metrics::default(),
                || async move {
                    s.notify_one();
                    std::future::pending::<()>().await;
                },
            )
            .await
        });
        tokio::time::timeout(Duration::from_secs(10), started.notified())
            .await
            .unwrap();
        {
            // Another replica takes over (e.g. after a network partition).
            let mut st = store.lock().unwrap();
            st.lease.as_mut().unwrap()["spec"]["holderIdentity"] = json!("replica-b");
            st.holder_manager = Some("other".into());
        }
        let res = tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("work stopped")
            .unwrap();
        assert!(matches!(res, Err(Error::Lease(_))), "{res:?}");
    }
}
