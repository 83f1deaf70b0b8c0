//! Rolling changes (image, resources, settings) through a Raft group.
//!
//! StatefulSets use `OnDelete`; the operator restarts one pod at a time per
//! Raft group, highest ordinal first, and only while the whole group is
//! healthy (every member ready, none terminating), so a group never loses
//! more than one voter to an update. The leader goes last, and before it
//! restarts its leadership is handed to an updated member
//! ([`RolloutStep::MoveLeader`]), so the group never waits out an election
//! timeout for a planned restart. A group of several members whose leader
//! the operator could not learn this pass (no member answered, or one was
//! being elected) waits: any pod restarted then might be the leader.

/// One pod of a Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObs {
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Ready condition true.
    pub ready: bool,
    /// `status.phase` is Running (its container started; a member that
    /// waits to be added to its Raft group runs but is not ready).
    pub running: bool,
    /// Has a deletion timestamp.
    pub terminating: bool,
}

/// What to do next for one Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStep {
    /// Every pod runs the current revision (or no revision is known yet).
    UpToDate,
    /// Pods need updating but the group is not healthy enough to lose one.
    Wait {
        /// Pods still on an old revision.
        outdated: usize,
    },
    /// The next pod to restart leads its group: first hand leadership to
    /// the member at ordinal `to` (updated already when one is), then
    /// restart `from` on a later step.
    MoveLeader {
        from: u32,
        to: u32,
        /// Pods still on an old revision, including `from`.
        outdated: usize,
    },
    /// Delete this pod so the StatefulSet recreates it at the new revision.
    Restart {
        ordinal: u32,
        /// Pods still on an old revision, including this one.
        outdated: usize,
    },
}

/// Decides the next rollout step of a group of `replicas` members led by
/// the pod at `leader_ordinal` (`None`: not known).
pub fn next_step(
    replicas: i32,
    update_revision: Option<&str>,
    pods: &[PodObs],
    leader_ordinal: Option<u32>,
) -> RolloutStep {
    let Some(want) = update_revision else {
        return RolloutStep::UpToDate;
    };
    let mut outdated: Vec<&PodObs> = pods
        .iter()
        .filter(|p| p.revision.as_deref() != Some(want))
        .collect();
    if outdated.is_empty() {
        return RolloutStep::UpToDate;
    }
    let n = outdated.len();
    let healthy =
        pods.len() == replicas.max(0) as usize && pods.iter().all(|p| p.ready && !p.terminating);
    if !healthy || (leader_ordinal.is_none() && pods.len() > 1) {
        return RolloutStep::Wait { outdated: n };
    }
    // Highest ordinal first, leader last.
    outdated.sort_by_key(|p| {
        (
            Some(p.ordinal) == leader_ordinal,
            std::cmp::Reverse(p.ordinal),
        )
    });
    let next = outdated[0].ordinal;
    if Some(next) == leader_ordinal {
        // Lowest ordinal among the others, updated ones first.
        let to = pods
            .iter()
            .filter(|p| p.ordinal != next)
            .min_by_key(|p| (p.revision.as_deref() != Some(want), p.ordinal))
            .map(|p| p.ordinal);
        if let Some(to) = to {
            return RolloutStep::MoveLeader {
                from: next,
                to,
                outdated: n,
            };
        }
    }
    RolloutStep::Restart {
        ordinal: next,
        outdated: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: u32, rev: &str) -> PodObs {
        PodObs {
            ordinal,
            revision: Some(rev.into()),
            ready: true,
            running: true,
            terminating: false,
        }
    }

    #[test]
    fn up_to_date_when_all_pods_match() {
        let pods = [pod(0, "b"), pod(1, "b"), pod(2, "b")];
        assert_eq!(next_step(3, Some("b"), &pods, None), RolloutStep::UpToDate);
        assert_eq!(next_step(3, None, &pods, None), RolloutStep::UpToDate);
    }

    #[test]
    fn highest_ordinal_first() {
        let pods = [pod(0, "a"), pod(1, "a"), pod(2, "a")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::Restart {
                ordinal: 2,
                outdated: 3
            }
        );
        let pods = [pod(0, "a"), pod(1, "a"), pod(2, "b")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::Restart {
                ordinal: 1,
                outdated: 2
            }
        );
    }

    #[test]
    fn an_unknown_leader_waits() {
        // Any of them might lead: restarting one could cost an election.
        let pods = [pod(0, "a"), pod(1, "a"), pod(2, "b")];
        assert_eq!(
            next_step(3, Some("b"), &pods, None),
            RolloutStep::Wait { outdated: 2 }
        );
        // Known again: the rollout goes on.
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(1)),
            RolloutStep::Restart {
                ordinal: 0,
                outdated: 2
            }
        );
    }

    #[test]
    fn one_at_a_time_and_only_when_healthy() {
        // Pod 2 was just restarted and is not ready yet: wait.
        let mut p2 = pod(2, "b");
        p2.ready = false;
        let pods = [pod(0, "a"), pod(1, "a"), p2];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::Wait { outdated: 2 }
        );
        // A member missing entirely: wait.
        assert_eq!(
            next_step(3, Some("b"), &[pod(0, "a"), pod(1, "a")], Some(0)),
            RolloutStep::Wait { outdated: 2 }
        );
        // A member terminating: wait.
        let mut p1 = pod(1, "a");
        p1.terminating = true;
        assert_eq!(
            next_step(3, Some("b"), &[pod(0, "a"), p1, pod(2, "b")], Some(0)),
            RolloutStep::Wait { outdated: 2 }
        );
    }

    #[test]
    fn leader_goes_last() {
        let pods = [pod(0, "a"), pod(1, "a"), pod(2, "a")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(2)),
            RolloutStep::Restart {
                ordinal: 1,
                outdated: 3
            }
        );
        // The leader is the last one outdated: leadership moves first, to
        // the lowest updated ordinal.
        let pods = [pod(0, "b"), pod(1, "b"), pod(2, "a")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(2)),
            RolloutStep::MoveLeader {
                from: 2,
                to: 0,
                outdated: 1
            }
        );
        // Once another member leads, the old leader restarts.
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::Restart {
                ordinal: 2,
                outdated: 1
            }
        );
    }

    #[test]
    fn leadership_moves_to_an_updated_member_when_there_is_one() {
        // Only the leader (pod 0) and pod 1 are outdated after pod 2 was
        // updated; pod 1 goes first, then leadership moves to pod 2.
        let pods = [pod(0, "a"), pod(1, "a"), pod(2, "b")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::Restart {
                ordinal: 1,
                outdated: 2
            }
        );
        let pods = [pod(0, "a"), pod(1, "b"), pod(2, "b")];
        assert_eq!(
            next_step(3, Some("b"), &pods, Some(0)),
            RolloutStep::MoveLeader {
                from: 0,
                to: 1,
                outdated: 1
            }
        );
    }

    #[test]
    fn single_replica_restarts_when_ready() {
        // Nobody to hand leadership to, and its one pod, ready, leads.
        assert_eq!(
            next_step(1, Some("b"), &[pod(0, "a")], Some(0)),
            RolloutStep::Restart {
                ordinal: 0,
                outdated: 1
            }
        );
        assert_eq!(
            next_step(1, Some("b"), &[pod(0, "a")], None),
            RolloutStep::Restart {
                ordinal: 0,
                outdated: 1
            }
        );
    }
}
