//! Whether replication to each peer is working, as this member's transport
//! sees it, and the log lines for its changes: one warning when streams to a
//! peer start failing, one line when a stream opens again. Each failed
//! attempt is counted in `raft_replication_stream_failures_total`, not
//! logged (a dead peer is retried ten or more times a second).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::NodeId;

/// Shared by every client of one group's transport; cheap to clone.
#[derive(Clone, Default)]
pub struct PeerHealth {
    failing: Arc<Mutex<HashMap<NodeId, Failing>>>,
}

struct Failing {
    since: Instant,
    failures: u64,
}

/// A change worth a log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The first failure after streams worked (or since start).
    StartedFailing,
    /// A stream opened after `failures` failed attempts.
    Recovered { failures: u64 },
}

impl PeerHealth {
    /// Records a failed stream to `peer`; logs only the first of a run.
    pub fn failed(&self, peer: NodeId, addr: &str, reason: &str, error: &dyn std::fmt::Display) {
        if self.record_failure(peer).is_some() {
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

    /// Records a stream opened to `peer`; logs if it had been failing.
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

    fn record_failure(&self, peer: NodeId) -> Option<Change> {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match failing.get_mut(&peer) {
            Some(f) => {
                f.failures += 1;
                None
            }
            None => {
                failing.insert(
                    peer,
                    Failing {
                        since: Instant::now(),
                        failures: 1,
                    },
                );
                Some(Change::StartedFailing)
            }
        }
    }

    fn record_success(&self, peer: NodeId) -> Option<(Change, Instant)> {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing.remove(&peer).map(|f| {
            (
                Change::Recovered {
                    failures: f.failures,
                },
                f.since,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_per_run_of_failures() {
        let h = PeerHealth::default();
        assert_eq!(h.record_success(2), None, "working from the start");
        assert_eq!(h.record_failure(2), Some(Change::StartedFailing));
        assert_eq!(h.record_failure(2), None);
        assert_eq!(h.record_failure(2), None);
        // Another peer has its own run.
        assert_eq!(h.record_failure(3), Some(Change::StartedFailing));
        assert_eq!(
            h.record_success(2).map(|(c, _)| c),
            Some(Change::Recovered { failures: 3 })
        );
        assert_eq!(h.record_success(2), None);
        assert_eq!(h.record_failure(2), Some(Change::StartedFailing));
        // Clones share the record.
        let clone = h.clone();
        assert_eq!(
            clone.record_success(3).map(|(c, _)| c),
            Some(Change::Recovered { failures: 1 })
        );
    }
}
