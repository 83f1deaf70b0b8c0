//! Prometheus metrics of a shard node: requests by method and result, request
//! latency, load report rounds by result, and the shared Raft gauges
//! (`shardline_raft::metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use shardline_raft::metrics::{
    self as raft_metrics, RaftGauges, ReplicationMetrics, RequestMetrics,
};

use crate::types::{Raft, TypeConfig};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

struct Inner {
    registry: Registry,
    requests: RequestMetrics,
    load_reports: Family<ResultLabels, Counter>,
    raft: RaftGauges,
    replication: ReplicationMetrics,
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
        let requests = RequestMetrics::register(&mut registry, "KV");
        let load_reports = Family::<ResultLabels, Counter>::default();
        registry.register(
            "load_reports",
            "Load report rounds of this member (as group leader) by result",
            load_reports.clone(),
        );
        let raft = RaftGauges::register(&mut registry);
        let replication = ReplicationMetrics::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                load_reports,
                raft,
                replication,
            }),
        }
    }

    pub fn observe_request(&self, method: &'static str, result: &'static str, took: Duration) {
        self.inner.requests.observe(method, result, took);
    }

    /// Counts one load report round: `ok`, or the error's kind.
    pub fn observe_load_report(&self, result: &'static str) {
        self.inner
            .load_reports
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The replication stream counters, for the Raft network factory.
    pub fn replication(&self) -> ReplicationMetrics {
        self.inner.replication.clone()
    }

    /// Text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        raft_metrics::render(&self.inner.registry)
    }

    /// Follows openraft's metrics until the Raft instance shuts down.
    pub fn spawn_raft_watcher(&self, raft: Raft) -> tokio::task::JoinHandle<()> {
        self.inner
            .raft
            .spawn_watcher::<TypeConfig>(raft.metrics(), raft.server_metrics())
    }
}
