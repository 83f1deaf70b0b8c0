//! The metrics every member exports, registered into the member's own
//! Prometheus registry:
//! - [`RaftGauges`]: term, commit index, applied index, apply lag,
//!   leadership and leader changes: leadership as openraft's server metrics
//!   change, the indexes every [`INDEX_REFRESH`];
//! - [`RequestMetrics`]: requests by method and result, and their latency;
//! - [`ReplicationMetrics`]: replication streams opened to each peer and
//!   how they failed (a stream that keeps restarting shows here);
//! - [`render`]: the text exposition of a registry for `/metrics`.

use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::raft_view::RaftView;
use crate::{MetricsWatch, RaftTypes, ServerMetricsWatch};

/// How often the index gauges (commit index, last applied, apply lag) are
/// refreshed. Following every change of openraft's metrics woke a task
/// several times per write on every member; Prometheus scrapes every 15 s
/// or so.
pub const INDEX_REFRESH: Duration = Duration::from_secs(1);

/// Cheap to clone; clones update the same registered metrics.
#[derive(Clone, Default)]
pub struct RaftGauges {
    term: Gauge,
    commit_index: Gauge,
    last_applied: Gauge,
    apply_lag: Gauge,
    is_leader: Gauge,
    leader_changes: Counter,
}

impl RaftGauges {
    /// Creates the gauges and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = RaftGauges::default();
        registry.register("raft_term", "Current Raft term", g.term.clone());
        registry.register(
            "raft_commit_index",
            "Highest committed log index known here",
            g.commit_index.clone(),
        );
        registry.register(
            "raft_last_applied",
            "Last log index applied to the state machine",
            g.last_applied.clone(),
        );
        registry.register(
            "raft_apply_lag",
            "Log entries received but not yet applied",
            g.apply_lag.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 if this member is the leader",
            g.is_leader.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Times the known leader changed",
            g.leader_changes.clone(),
        );
        g
    }

    fn update(&self, view: &RaftView) {
        self.term.set(view.term as i64);
        self.commit_index.set(view.commit_index as i64);
        self.last_applied.set(view.last_applied as i64);
        self.apply_lag
            .set(view.last_log_index.saturating_sub(view.last_applied) as i64);
        self.is_leader.set(i64::from(view.is_leader()));
    }

    /// Follows openraft until the Raft instance shuts down: role, term and
    /// leader changes as `server` (`raft.server_metrics()`) changes, which
    /// happens only with them; the indexes from `metrics` (`raft.metrics()`)
    /// at those moments and every [`INDEX_REFRESH`].
    pub fn spawn_watcher<C: RaftTypes>(
        &self,
        metrics: MetricsWatch<C>,
        mut server: ServerMetricsWatch<C>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut leader = None;
            let mut refresh = tokio::time::interval(INDEX_REFRESH);
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let current = server.borrow_and_update().current_leader;
                if current != leader {
                    if current.is_some() {
                        me.leader_changes.inc();
                    }
                    leader = current;
                }
                me.update(&RaftView::from_metrics(&metrics.borrow_watched()));
                tokio::select! {
                    changed = server.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = refresh.tick() => {}
                }
            }
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// `requests{method,result}` and `request_duration_seconds{method}`. Cheap
/// to clone; clones update the same registered metrics.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
}

impl RequestMetrics {
    /// Creates both families and registers them in `registry`; `service`
    /// names the requests in the help texts ("KV", "Controller").
    pub fn register(registry: &mut Registry, service: &str) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "requests",
            format!("{service} requests by method and result"),
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            format!("{service} request latency"),
            latency.clone(),
        );
        RequestMetrics { requests, latency }
    }

    /// Records one finished request.
    pub fn observe(&self, method: &'static str, result: &'static str, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { method, result })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(took.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamFailureLabels {
    peer: u64,
    reason: &'static str,
}

/// `raft_replication_streams_opened{peer}` and
/// `raft_replication_stream_failures{peer,reason}`: the leader's
/// `StreamAppend` streams. Every heartbeat is a stream of one request (about
/// ten per second per peer at the default interval), and openraft opens a
/// new replication stream after each failure, so the failures are the
/// signal: a climbing `timeout` count is a follower answering slower than
/// the progress timeout (a slow disk), `connect`/`status` a link or peer
/// going away. Cheap to clone; the default is unregistered (tests, tools).
#[derive(Clone, Default)]
pub struct ReplicationMetrics {
    opened: Family<PeerLabels, Counter>,
    failures: Family<StreamFailureLabels, Counter>,
}

impl ReplicationMetrics {
    /// Creates both families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ReplicationMetrics::default();
        registry.register(
            "raft_replication_streams_opened",
            "Replication and heartbeat streams (StreamAppend) opened to each peer",
            m.opened.clone(),
        );
        registry.register(
            "raft_replication_stream_failures",
            "Replication streams that failed, by peer and reason",
            m.failures.clone(),
        );
        m
    }

    pub(crate) fn opened(&self, peer: u64) {
        self.opened.get_or_create(&PeerLabels { peer }).inc();
    }

    pub(crate) fn failed(&self, peer: u64, reason: &'static str) {
        self.failures
            .get_or_create(&StreamFailureLabels { peer, reason })
            .inc();
    }
}

/// Text exposition format of `registry`, for `/metrics`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

#[cfg(test)]
mod request_metrics_tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_method_and_result_and_timed_by_method() {
        let mut registry = Registry::with_prefix("shardline");
        let m = RequestMetrics::register(&mut registry, "KV");
        m.observe("put", "ok", Duration::from_millis(2));
        m.observe("put", "ok", Duration::from_millis(4));
        m.observe("put", "not_leader", Duration::from_millis(1));
        let text = render(&registry);
        assert!(text.contains("# HELP shardline_requests KV requests by method and result"));
        assert!(text.contains(r#"shardline_requests_total{method="put",result="ok"} 2"#));
        assert!(text.contains(r#"shardline_requests_total{method="put",result="not_leader"} 1"#));
        assert!(text.contains(r#"shardline_request_duration_seconds_count{method="put"} 3"#));
        assert!(text.contains(r#"shardline_request_duration_seconds_sum{method="put"} 0.007"#));
    }
}
