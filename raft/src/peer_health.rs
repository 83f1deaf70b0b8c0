//! Whether replication to each peer is working, as this member's transport
//! sees it, and the log lines for its changes: one warning when streams to a
//! peer start failing, one line when it answers again (a peer flapping
//! within [`QUIET`] is not logged again). Each failed attempt is counted in
//! `raft_replication_stream_failures_total`, not logged (a dead peer is
//! retried ten or more times a second).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::NodeId;

/// A peer that recovers and fails again within this long (a slow follower
/// timing out now and then) is not logged again: its failures still count.
pub const QUIET: Duration = Duration::from_secs(30);

/// Shared by every client of one group's transport; cheap to clone.
#[derive(Clone, Default)]
pub struct PeerHealth {
    peers: Arc<Mutex<HashMap<NodeId, PeerState>>>,
}

#[derive(Default)]
struct PeerState {
    failing: Option<Failing>,
    /// When a run of failures of this peer was last logged.
    warned: Option<Instant>,
}

struct Failing {
    since: Instant,
    failures: u64,
    /// Whether its start was logged (so its end is too).
    logged: bool,
}

/// A change worth a log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The first failure after streams worked (or since start).
    StartedFailing,
    /// An answer came after `failures` failed attempts.
    Recovered { failures: u64 },
}

impl PeerHealth {
    /// Records a failed stream to `peer`; logs the first of a run.
    pub fn failed(&self, peer: NodeId, addr: &str, reason: &str, error: &dyn std::fmt::Display) {
        if self.record_failure(peer, Instant::now()).is_some() {
            tracing::warn!(
                peer,
                %addr,
                reason,
                %error,
                "replication to a peer is failing; retrying with backoff \
                 (further failures are counted in raft_replication_stream_failures_total)"
            );
        }
    }

    /// Records an answer from `peer`; logs if it had been failing.
    pub fn reached(&self, peer: NodeId, addr: &str) {
        if let Some((Change::Recovered { failures }, since)) = self.record_success(peer) {
            tracing::info!(
                peer,
                %addr,
                failures,
                failing_for = ?since.elapsed(),
                "replication to a peer works again"
            );
        }
    }

    fn record_failure(&self, peer: NodeId, now: Instant) -> Option<Change> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let state = peers.entry(peer).or_default();
        if let Some(f) = &mut state.failing {
            f.failures += 1;
            return None;
        }
        let logged = state
            .warned
            .is_none_or(|t| now.saturating_duration_since(t) >= QUIET);
        if logged {
            state.warned = Some(now);
        }
        state.failing = Some(Failing {
            since: now,
            failures: 1,
            logged,
        });
        logged.then_some(Change::StartedFailing)
    }

    fn record_success(&self, peer: NodeId) -> Option<(Change, Instant)> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let f = peers.get_mut(&peer)?.failing.take()?;
        f.logged.then_some((
            Change::Recovered {
                failures: f.failures,
            },
            f.since,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_per_run_of_failures() {
        let h = PeerHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.record_success(2), None, "working from the start");
        assert_eq!(h.record_failure(2, t0), Some(Change::StartedFailing));
        assert_eq!(h.record_failure(2, t0), None);
        assert_eq!(h.record_failure(2, t0), None);
        // Another peer has its own run.
        assert_eq!(h.record_failure(3, t0), Some(Change::StartedFailing));
        assert_eq!(
            h.record_success(2).map(|(c, _)| c),
            Some(Change::Recovered { failures: 3 })
        );
        assert_eq!(h.record_success(2), None);
        // Clones share the record.
        let clone = h.clone();
        assert_eq!(
            clone.record_success(3).map(|(c, _)| c),
            Some(Change::Recovered { failures: 1 })
        );
    }

    #[test]
    fn a_peer_flapping_within_the_quiet_time_is_logged_once() {
        let h = PeerHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.record_failure(2, t0), Some(Change::StartedFailing));
        assert!(h.record_success(2).is_some());
        // Fails again soon: counted, not logged, and neither is its end.
        assert_eq!(h.record_failure(2, t0 + QUIET / 2), None);
        assert_eq!(h.record_success(2), None);
        // After the quiet time a new run is logged again.
        assert_eq!(
            h.record_failure(2, t0 + QUIET),
            Some(Change::StartedFailing)
        );
        assert!(h.record_success(2).is_some());
    }
}
