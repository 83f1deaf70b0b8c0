//! Prometheus metrics of a shard node: requests by method and result, request
//! latency, and the Raft gauges (term, commit index, applied index, apply
//! lag, leader changes), refreshed from openraft's metrics watch.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::raft_view::RaftView;
use crate::types::Raft;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    term: Gauge,
    commit_index: Gauge,
    last_applied: Gauge,
    apply_lag: Gauge,
    is_leader: Gauge,
    leader_changes: Counter,
}

/// Cheap to clone; all clones update the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shardline");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let (term, commit_index, last_applied, apply_lag, is_leader) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        let leader_changes = Counter::default();
        registry.register(
            "requests",
            "KV requests by method and result",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "KV request latency",
            latency.clone(),
        );
        registry.register("raft_term", "Current Raft term", term.clone());
        registry.register(
            "raft_commit_index",
            "Highest committed log index known here",
            commit_index.clone(),
        );
        registry.register(
            "raft_last_applied",
            "Last log index applied to the state machine",
            last_applied.clone(),
        );
        registry.register(
            "raft_apply_lag",
            "Log entries received but not yet applied",
            apply_lag.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 if this member is the leader",
            is_leader.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Times the known leader changed",
            leader_changes.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                term,
                commit_index,
                last_applied,
                apply_lag,
                is_leader,
                leader_changes,
            }),
        }
    }

    pub fn observe_request(&self, method: &'static str, result: &'static str, took: Duration) {
        self.inner
            .requests
            .get_or_create(&RequestLabels { method, result })
            .inc();
        self.inner
            .latency
            .get_or_create(&MethodLabels { method })
            .observe(took.as_secs_f64());
    }

    fn update(&self, view: &RaftView) {
        let i = &self.inner;
        i.term.set(view.term as i64);
        i.commit_index.set(view.commit_index as i64);
        i.last_applied.set(view.last_applied as i64);
        i.apply_lag
            .set(view.last_log_index.saturating_sub(view.last_applied) as i64);
        i.is_leader.set(i64::from(view.is_leader()));
    }

    /// Text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// Follows openraft's metrics until the Raft instance shuts down.
    pub fn spawn_raft_watcher(&self, raft: Raft) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut rx = raft.metrics();
        tokio::spawn(async move {
            let mut leader = None;
            loop {
                let view = RaftView::from_metrics(&rx.borrow_and_update());
                if view.leader_id != leader {
                    if view.leader_id.is_some() {
                        me.inner.leader_changes.inc();
                    }
                    leader = view.leader_id;
                }
                me.update(&view);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}
