//! Prometheus metrics of a controller member: requests by method and result
//! (the gRPC code, snake case), request latency, open config watches, the
//! latest applied config number, and the shared Raft gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shardline_raft::metrics::{
    self as raft_metrics, RaftGauges, ReplicationMetrics, RequestMetrics,
};
use tonic::{Code, Status};

use crate::store::ShardMap;
use crate::types::Raft;

struct Inner {
    registry: Registry,
    requests: RequestMetrics,
    watches: Gauge,
    latest_config: Gauge,
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

/// A stable snake-case label for a gRPC code.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shardline_controller");
        let requests = RequestMetrics::register(&mut registry, "Controller");
        let (watches, latest_config) = (Gauge::default(), Gauge::default());
        registry.register(
            "config_watches",
            "Open WatchConfig streams",
            watches.clone(),
        );
        registry.register(
            "latest_config",
            "Number of the latest applied config",
            latest_config.clone(),
        );
        let raft = RaftGauges::register(&mut registry);
        let replication = ReplicationMetrics::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                watches,
                latest_config,
                raft,
                replication,
            }),
        }
    }

    /// Records one finished request.
    pub fn observe(&self, method: &'static str, result: Result<(), &Status>, took: Duration) {
        let result = match result {
            Ok(()) => "ok",
            Err(s) => code_label(s.code()),
        };
        self.inner.requests.observe(method, result, took);
    }

    /// Counts an open watch until the returned guard is dropped.
    pub fn watch_opened(&self) -> WatchGuard {
        self.inner.watches.inc();
        WatchGuard {
            gauge: self.inner.watches.clone(),
        }
    }

    /// The replication stream counters, for the Raft network factory.
    pub fn replication(&self) -> ReplicationMetrics {
        self.inner.replication.clone()
    }

    /// Text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        raft_metrics::render(&self.inner.registry)
    }

    /// Follows openraft's metrics and the applied config number until the
    /// Raft instance shuts down.
    pub fn spawn_watchers(&self, raft: &Raft, map: &ShardMap) -> Vec<tokio::task::JoinHandle<()>> {
        let gauge = self.inner.latest_config.clone();
        let mut latest = map.subscribe();
        let config_watcher = tokio::spawn(async move {
            loop {
                gauge.set(*latest.borrow_and_update() as i64);
                if latest.changed().await.is_err() {
                    return;
                }
            }
        });
        vec![
            self.inner
                .raft
                .spawn_watcher::<crate::types::TypeConfig>(raft.metrics(), raft.server_metrics()),
            config_watcher,
        ]
    }
}

/// Decrements the open-watch gauge when dropped.
pub struct WatchGuard {
    gauge: Gauge,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Measures a request from creation to [`RequestTimer::finish`].
pub struct RequestTimer {
    started: Instant,
}

impl RequestTimer {
    pub fn start() -> Self {
        RequestTimer {
            started: Instant::now(),
        }
    }

    /// Records `result` of `method` and passes it through.
    pub fn finish<T>(
        self,
        metrics: &Metrics,
        method: &'static str,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        metrics.observe(method, result.as_ref().map(|_| ()), self.started.elapsed());
        result
    }
}
