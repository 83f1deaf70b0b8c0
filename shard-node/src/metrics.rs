//! Prometheus metrics of a shard node: requests by method and result, request
//! latency, load report rounds by result, and the shared Raft gauges
//! (`shardline_raft::metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use shardline_raft::metrics::RaftGauges;

use crate::types::Raft;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
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
    load_reports: Family<ResultLabels, Counter>,
    raft: RaftGauges,
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
        let load_reports = Family::<ResultLabels, Counter>::default();
        registry.register(
            "load_reports",
            "Load report rounds of this member (as group leader) by result",
            load_reports.clone(),
        );
        let raft = RaftGauges::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                load_reports,
                raft,
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

    /// Counts one load report round: `ok`, or the error's kind.
    pub fn observe_load_report(&self, result: &'static str) {
        self.inner
            .load_reports
            .get_or_create(&ResultLabels { result })
            .inc();
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
        self.inner.raft.spawn_watcher(raft.metrics())
    }
}
