//! Test fixtures (test builds only): ShardedCluster objects, a fake API
//! server behind a `tower_test::mock` client, and an in-process stand-in for
//! the controller's gRPC API.
//!
//! The fake API server follows kube-rs controller-rs's `ApiServerVerifier`
//! idea — the kube `Client` talks to a mock tower service whose handle
//! answers each request — but keeps state (applied objects, pods, statuses)
//! so a test can run several reconciles and then assert on the recorded
//! calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use serde_json::{json, Value};
use shardline_proto::pb;
use tokio::task::JoinHandle;

use crate::cluster_api::{ClusterApi, ClusterView, GroupLeader, GroupReport, Target};
use crate::crd::ShardedCluster;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names;
use crate::reconcile::{Context, Requeue};

pub const NS: &str = "ns";
pub const NAME: &str = "kv";
const CLUSTER_PATH: &str = "/apis/shardline.dev/v1alpha1/namespaces/ns/shardedclusters/kv";

/// A ShardedCluster as the API server would hand it out.
pub fn cluster(groups: i32, finalized: bool) -> ShardedCluster {
    let spec =
        serde_json::from_value(json!({"image": "shardline:test", "groups": {"count": groups}}))
            .unwrap();
    let mut c = ShardedCluster::new(NAME, spec);
    c.metadata.namespace = Some(NS.into());
    c.metadata.uid = Some("uid-1".into());
    c.metadata.generation = Some(1);
    c.metadata.resource_version = Some("1".into());
    if finalized {
        c.metadata.finalizers = Some(vec![names::FINALIZER.into()]);
    }
    c
}

/// One request the fake API server saw.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

impl Call {
    /// `METHOD path` for readable assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// A server-side apply of an owned object (not the status).
    pub fn is_apply(&self) -> bool {
        self.method == Method::PATCH
            && self.query.contains("fieldManager=shardline-operator")
            && !self.path.ends_with("/status")
    }

    /// Creates or deletes anything other than Events.
    pub fn is_write_to_workloads(&self) -> bool {
        let event = self.path.contains("/events");
        (self.is_apply() || self.method == Method::DELETE || self.method == Method::POST) && !event
    }
}

#[derive(Debug, Clone)]
struct FakePod {
    revision: String,
    ready: bool,
}

#[derive(Default)]
struct FakeState {
    cluster: Option<Value>,
    objects: BTreeMap<String, Value>,
    pods: BTreeMap<String, FakePod>,
    update_revision: BTreeMap<String, String>,
    events: BTreeMap<String, Value>,
    calls: Vec<Call>,
}

/// The fake API server.
pub struct FakeApiServer {
    state: Arc<Mutex<FakeState>>,
    _task: JoinHandle<()>,
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let v = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": if code < 300 {"Success"} else {"Failure"}, "code": code, "reason": reason, "message": reason});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&v).unwrap()))
        .unwrap()
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

impl FakeState {
    fn sts_with_status(&self, path: &str, mut sts: Value) -> Value {
        let name = sts["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let ready = (0..replicas)
            .filter(|o| {
                self.pods
                    .get(&format!("{name}-{o}"))
                    .is_some_and(|p| p.ready)
            })
            .count();
        let rev = self
            .update_revision
            .get(&name)
            .cloned()
            .unwrap_or_else(|| "rev1".into());
        let _ = path;
        sts["status"] =
            json!({"replicas": replicas, "readyReplicas": ready, "updateRevision": rev});
        sts
    }

    fn handle(&mut self, method: &Method, path: &str, body: Option<Value>) -> Response<Body> {
        let sts_prefix = "/apis/apps/v1/namespaces/ns/statefulsets";
        match (method.clone(), path) {
            (Method::PATCH, p) if p == format!("{CLUSTER_PATH}/status") => {
                let c = self.cluster.as_mut().expect("cluster set");
                c["status"] = body.unwrap()["status"].clone();
                ok(c)
            }
            (Method::PATCH, CLUSTER_PATH) => {
                // The finalizer helper sends a JSON patch on metadata.finalizers.
                let c = self.cluster.as_mut().expect("cluster set");
                for op in body.unwrap().as_array().unwrap() {
                    match op["op"].as_str() {
                        Some("add") | Some("replace") if op["path"] == "/metadata/finalizers" => {
                            c["metadata"]["finalizers"] = op["value"].clone();
                        }
                        Some("remove")
                            if op["path"]
                                .as_str()
                                .unwrap_or("")
                                .starts_with("/metadata/finalizers") =>
                        {
                            c["metadata"]["finalizers"] = json!([]);
                        }
                        _ => {}
                    }
                }
                ok(c)
            }
            (Method::GET, p) if p == sts_prefix => {
                let items = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&format!("{sts_prefix}/")))
                    .map(|(k, v)| self.sts_with_status(k, v.clone()))
                    .collect();
                ok(&list("StatefulSetList", items))
            }
            (Method::GET, "/api/v1/namespaces/ns/pods") => {
                let items = self
                    .pods
                    .iter()
                    .map(|(name, p)| {
                        let (sts, _) = name.rsplit_once('-').unwrap();
                        let labels = self.objects[&format!("{sts_prefix}/{sts}")]["spec"]["template"]["metadata"]["labels"].clone();
                        let mut labels = labels.as_object().cloned().unwrap_or_default();
                        labels.insert("controller-revision-hash".into(), json!(p.revision));
                        json!({
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": name, "namespace": NS, "labels": labels},
                            "status": {"conditions": [{"type": "Ready", "status": if p.ready {"True"} else {"False"}}]}
                        })
                    })
                    .collect();
                ok(&list("PodList", items))
            }
            (Method::PATCH, p) if p.contains("/events/") => {
                let name = p.rsplit('/').next().unwrap().to_string();
                let ev = self.events.get(&name).cloned().unwrap_or_else(|| json!({}));
                ok(&ev)
            }
            (Method::PATCH, p) => {
                let obj = body.unwrap();
                if p.starts_with(&format!("{sts_prefix}/")) {
                    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
                    let rev = self
                        .update_revision
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| "rev1".into());
                    for o in 0..replicas {
                        self.pods.entry(format!("{name}-{o}")).or_insert(FakePod {
                            revision: rev.clone(),
                            ready: false,
                        });
                    }
                    self.objects.insert(p.to_string(), obj.clone());
                    return ok(&self.sts_with_status(p, obj));
                }
                self.objects.insert(p.to_string(), obj.clone());
                ok(&obj)
            }
            (Method::POST, p) if p.ends_with("/events") => {
                let ev = body.unwrap();
                let name = ev["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.events.insert(name, ev.clone());
                ok(&ev)
            }
            (Method::DELETE, "/api/v1/namespaces/ns/persistentvolumeclaims") => {
                ok(&list("PersistentVolumeClaimList", vec![]))
            }
            (Method::DELETE, p) if p.starts_with("/api/v1/namespaces/ns/pods/") => {
                let name = p.rsplit('/').next().unwrap().to_string();
                let (sts, _) = name.rsplit_once('-').unwrap();
                let rev = self
                    .update_revision
                    .get(sts)
                    .cloned()
                    .unwrap_or_else(|| "rev1".into());
                match self.pods.get_mut(&name) {
                    Some(pod) => {
                        // The StatefulSet recreates it at the update revision, not ready yet.
                        *pod = FakePod {
                            revision: rev,
                            ready: false,
                        };
                        status(200, "Deleted")
                    }
                    None => status(404, "NotFound"),
                }
            }
            (Method::DELETE, p) => {
                if self.objects.remove(p).is_none() {
                    return status(404, "NotFound");
                }
                if let Some(name) = p.strip_prefix(&format!("{sts_prefix}/")) {
                    self.pods
                        .retain(|pod, _| pod.rsplit_once('-').map(|x| x.0) != Some(name));
                }
                status(200, "Deleted")
            }
            _ => status(404, "NotFound"),
        }
    }
}

impl FakeApiServer {
    /// A kube Client wired to a new fake API server holding `cluster`.
    pub fn start(cluster: &ShardedCluster) -> (Client, FakeApiServer) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(FakeState {
            cluster: Some(serde_json::to_value(cluster).unwrap()),
            ..Default::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body: Option<Value> =
                    (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
                let path = parts.uri.path().to_string();
                let query = parts.uri.query().unwrap_or_default().to_string();
                let resp = {
                    let mut s = st.lock().unwrap();
                    s.calls.push(Call {
                        method: parts.method.clone(),
                        path: path.clone(),
                        query,
                        body: body.clone(),
                    });
                    s.handle(&parts.method, &path, body)
                };
                send.send_response(resp);
            }
        });
        (Client::new(svc, NS), FakeApiServer { state, _task: task })
    }

    /// Calls recorded since the last [`Self::take_calls`].
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    /// The cluster as stored (with the status the operator wrote).
    pub fn cluster(&self) -> ShardedCluster {
        serde_json::from_value(self.state.lock().unwrap().cluster.clone().unwrap()).unwrap()
    }

    /// Replaces the stored cluster (e.g. a spec edit), keeping its status.
    pub fn edit(&self, f: impl FnOnce(&mut ShardedCluster)) {
        let mut c = self.cluster();
        f(&mut c);
        self.state.lock().unwrap().cluster = Some(serde_json::to_value(&c).unwrap());
    }

    /// Marks every pod of StatefulSet `sts` ready.
    pub fn set_ready(&self, sts: &str) {
        let mut s = self.state.lock().unwrap();
        for (name, pod) in s.pods.iter_mut() {
            if name.rsplit_once('-').map(|x| x.0) == Some(sts) {
                pod.ready = true;
            }
        }
    }

    /// Sets the revision StatefulSet `sts` wants its pods at.
    pub fn set_update_revision(&self, sts: &str, rev: &str) {
        self.state
            .lock()
            .unwrap()
            .update_revision
            .insert(sts.into(), rev.into());
    }

    /// Names of stored objects of a kind path segment (`statefulsets`, ...).
    pub fn object_names(&self, resource: &str) -> BTreeSet<String> {
        let s = self.state.lock().unwrap();
        s.objects
            .keys()
            .filter(|k| k.split('/').rev().nth(1) == Some(resource))
            .map(|k| k.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    /// Pods (name -> revision, ready).
    pub fn pods(&self) -> BTreeMap<String, (String, bool)> {
        let s = self.state.lock().unwrap();
        s.pods
            .iter()
            .map(|(k, p)| (k.clone(), (p.revision.clone(), p.ready)))
            .collect()
    }
}

/// An in-process stand-in for the controller: Join assigns ranges to new
/// groups, Leave removes a group from the config but leaves its ranges with
/// it until [`FakeController::finish_drains`] moves them (as live migration
/// would).
#[derive(Default)]
pub struct FakeController {
    state: Mutex<FakeControllerState>,
}

#[derive(Default)]
struct FakeControllerState {
    view: ClusterView,
    ranges: Vec<u64>,
    calls: Vec<String>,
    unreachable: bool,
    /// Leader node id per group (default 1).
    group_leaders: BTreeMap<u64, u64>,
    /// Keys each group stores: none before it joins, 100 once it has; a
    /// group that left keeps its keys until `finish_drains` (the hand-off).
    group_keys: BTreeMap<u64, u64>,
    /// Groups that left (and have not rejoined).
    left: BTreeSet<u64>,
}

impl FakeControllerState {
    fn recount(&mut self) {
        self.view.ranges_by_group.clear();
        for gid in &self.ranges {
            *self.view.ranges_by_group.entry(*gid).or_insert(0) += 1;
        }
        self.view.range_count = self.ranges.len() as u32;
        self.view.config_num += 1;
    }

    /// Moves ranges from the fullest group to the emptiest until balanced.
    fn rebalance(&mut self) {
        let groups: Vec<u64> = self.view.groups.keys().copied().collect();
        if groups.is_empty() {
            return;
        }
        loop {
            let count = |g: &u64| self.ranges.iter().filter(|r| *r == g).count();
            let min = *groups.iter().min_by_key(|g| count(g)).unwrap();
            let max = *groups.iter().max_by_key(|g| count(g)).unwrap();
            if count(&max) <= count(&min) + 1 {
                break;
            }
            let i = self.ranges.iter().position(|r| *r == max).unwrap();
            self.ranges[i] = min;
        }
    }
}

impl FakeController {
    /// A controller with a leader (node 1) and no groups yet.
    pub fn new() -> Arc<Self> {
        let c = FakeController::default();
        {
            let mut s = c.state.lock().unwrap();
            s.view.leader_id = Some(1);
            s.view.term = 1;
        }
        Arc::new(c)
    }

    /// Calls made, like `Join [1, 2]`.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Reassigns the ranges of departed groups in the config (as the real
    /// controller's Leave does at once); their data is still to be handed off.
    pub fn move_ranges(&self) {
        let mut s = self.state.lock().unwrap();
        Self::reassign(&mut s);
    }

    /// Finishes every pending drain: ranges of departed groups move and
    /// their data has been handed off (they store no keys).
    pub fn finish_drains(&self) {
        let mut s = self.state.lock().unwrap();
        Self::reassign(&mut s);
        let departed: Vec<u64> = s.left.iter().copied().collect();
        for g in departed {
            s.group_keys.insert(g, 0);
        }
    }

    fn reassign(s: &mut FakeControllerState) {
        let groups: Vec<u64> = s.view.groups.keys().copied().collect();
        for i in 0..s.ranges.len() {
            if !groups.contains(&s.ranges[i]) {
                s.ranges[i] = groups[i % groups.len()];
            }
        }
        s.rebalance();
        s.recount();
    }

    /// Sets the node id group `gid` reports as its leader.
    pub fn set_group_leader(&self, gid: u64, id: u64) {
        self.state.lock().unwrap().group_leaders.insert(gid, id);
    }

    /// Makes ClusterStatus fail.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state.lock().unwrap().unreachable = unreachable;
    }
}

impl ClusterApi for FakeController {
    fn cluster_status<'a>(&'a self, _target: &'a Target) -> BoxFuture<'a, Result<ClusterView>> {
        async move {
            let mut s = self.state.lock().unwrap();
            s.calls.push("ClusterStatus".into());
            if s.unreachable {
                return Err(Error::Controller {
                    call: "ClusterStatus",
                    source: Box::new(tonic::Status::unavailable("down")),
                });
            }
            Ok(s.view.clone())
        }
        .boxed()
    }

    fn join<'a>(
        &'a self,
        _target: &'a Target,
        groups: Vec<pb::GroupMembers>,
    ) -> BoxFuture<'a, Result<u64>> {
        async move {
            let mut s = self.state.lock().unwrap();
            let gids: Vec<u64> = groups.iter().map(|g| g.gid).collect();
            s.calls.push(format!("Join {gids:?}"));
            for g in groups {
                assert_eq!(g.addresses.len(), 3, "every member address is sent");
                s.left.remove(&g.gid);
                s.group_keys.entry(g.gid).or_insert(100);
                s.view.groups.insert(g.gid, g.addresses);
            }
            if s.ranges.is_empty() {
                s.ranges = vec![gids[0]; 16];
            }
            s.rebalance();
            s.recount();
            Ok(s.view.config_num)
        }
        .boxed()
    }

    fn leave<'a>(&'a self, _target: &'a Target, gids: Vec<u64>) -> BoxFuture<'a, Result<u64>> {
        async move {
            let mut s = self.state.lock().unwrap();
            s.calls.push(format!("Leave {gids:?}"));
            for g in &gids {
                s.view.groups.remove(g);
                s.left.insert(*g);
            }
            s.recount();
            Ok(s.view.config_num)
        }
        .boxed()
    }

    fn group_status<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<GroupReport>> {
        async move {
            let gid: u64 = target.key.rsplit_once("/g").unwrap().1.parse().unwrap();
            let s = self.state.lock().unwrap();
            let id = s.group_leaders.get(&gid).copied().unwrap_or(1);
            let address = target.endpoints[(id - 1) as usize]
                .trim_start_matches("http://")
                .to_string();
            Ok(GroupReport {
                leader: Some(GroupLeader { id, address }),
                key_count: s.group_keys.get(&gid).copied().unwrap_or(0),
            })
        }
        .boxed()
    }

    fn forget(&self, _target: &Target) {
        self.state.lock().unwrap().calls.push("Forget".into());
    }
}

/// A reconcile Context over the fake API server and fake controller.
pub fn context(client: Client, controller: Arc<FakeController>) -> Arc<Context> {
    let reporter = Reporter {
        controller: "shardline-operator".into(),
        instance: Some("test".into()),
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        cluster_api: controller,
        metrics: Metrics::default(),
        requeue: Requeue::default(),
    })
}
