//! Handing leadership to another voter when a leader stops on purpose
//! (SIGTERM: a rolling restart, `kubectl delete pod`, a node drain), so the
//! group gets a new leader at once instead of after an election timeout.

use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tracing::{info, warn};

use crate::{NodeId, Raft, RaftTypes};

/// How long a stopping leader waits for its successor: it first flushes the
/// leader's log, then wins one election round.
pub const WAIT: Duration = Duration::from_secs(3);

/// The voter (other than the leader itself) whose log the leader knows to
/// match furthest, ties to the lowest id; `None` when this member does not
/// lead or leads alone.
pub fn successor<C: RaftTypes>(m: &openraft::RaftMetrics<C>) -> Option<NodeId> {
    if m.current_leader != Some(m.id) {
        return None;
    }
    let replication = m.replication.as_ref()?;
    m.membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != m.id)
        .max_by_key(|id| {
            let matched = replication
                .get(id)
                .and_then(|l| l.as_ref())
                .map(|l| l.index);
            (matched, std::cmp::Reverse(*id))
        })
}

/// If this member leads a group with other voters, asks the most caught-up
/// one to take over and waits at most `wait` until another member leads.
/// Returns the new leader, if one took over in time.
pub async fn hand_over<C: RaftTypes>(raft: &Raft<C>, wait: Duration) -> Option<NodeId> {
    let metrics = raft.metrics().borrow_watched().clone();
    let me = metrics.id;
    let target = successor(&metrics)?;
    if let Err(e) = raft.trigger().transfer_leader(target).await {
        warn!(target, error = %e, "could not start the leadership hand-over");
        return None;
    }
    match raft
        .wait(Some(wait))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != me),
            "another member leads",
        )
        .await
    {
        Ok(m) => {
            info!(leader = ?m.current_leader, term = m.current_term, "leadership handed over before stopping");
            m.current_leader
        }
        Err(e) => {
            warn!(target, ?wait, error = %e, "leadership not handed over in time; stopping anyway");
            None
        }
    }
}
