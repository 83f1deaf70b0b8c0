//! The Raft gauges every member exports (term, commit index, applied index,
//! apply lag, leadership, leader changes), registered into the member's own
//! Prometheus registry and refreshed from openraft's metrics watch.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::raft_view::RaftView;
use crate::RaftMetrics;

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

    /// Follows openraft's metrics (`raft.metrics()`) until the Raft instance
    /// shuts down.
    pub fn spawn_watcher(
        &self,
        mut rx: watch::Receiver<RaftMetrics>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut leader = None;
            loop {
                let view = RaftView::from_metrics(&rx.borrow_and_update());
                if view.leader_id != leader {
                    if view.leader_id.is_some() {
                        me.leader_changes.inc();
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
