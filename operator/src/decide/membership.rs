//! Raft membership changes when `replicas` of a running Raft group (the
//! controller's or a shard group's) changes.
//!
//! Members are named by StatefulSet ordinal (node id = ordinal + 1), so a
//! group of `n` voters is ids `1..=n`. Pods bootstrap from `--peers` only
//! when their id is among the group's *initial* members (see
//! [`crate::builders::pod`]); any later pod starts empty and waits to be
//! added, so the pod template never changes with `replicas` and no pod is
//! restarted for a replica change.
//!
//! - Growing: the StatefulSet is raised at once; the operator then adds the
//!   lowest missing id, one per reconcile, once its pod runs
//!   (`Admin.AddMember`: learner, catch-up, voter).
//! - Shrinking: the highest extra id is removed first (`Admin.RemoveMember`),
//!   one per reconcile; the StatefulSet keeps every pod whose id is still a
//!   member, so it only shrinks past members that are gone.
//! - A change that could leave the group (old or new configuration, since
//!   openraft changes membership through a joint configuration) without a
//!   majority of ready voters waits; so does everything while no member can
//!   say who leads.

use std::collections::BTreeSet;

use super::rollout::PodObs;
use crate::cluster_api::RaftMember;

/// What one Raft group looks like right now.
#[derive(Debug, Clone, Copy)]
pub struct GroupObs<'a> {
    /// `replicas` in the spec: the voters wanted.
    pub desired: i32,
    /// The StatefulSet's `spec.replicas`, None before it exists.
    pub sts_replicas: Option<i32>,
    /// Voters recorded in the previous status (None when never known).
    pub last_voters: Option<i32>,
    /// The group's pods, by ordinal.
    pub pods: &'a [PodObs],
    /// Members as a member that knows the leader reported them; None when
    /// no member could be asked or none knew a leader.
    pub members: Option<&'a [RaftMember]>,
}

/// The next membership action for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The voters are the desired ones (or nothing is known to be pending).
    Steady,
    /// Add this node (its pod runs): learner, catch-up, then voter.
    Add { id: u64 },
    /// Remove this node from the membership.
    Remove { id: u64 },
    /// Waiting on something that happens by itself (a new pod starting).
    Waiting { message: String },
    /// A change is pending but must not or cannot be made now.
    Blocked {
        /// CamelCase reason for the condition.
        reason: &'static str,
        message: String,
    },
}

/// The plan for one group in one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `spec.replicas` to apply to the StatefulSet.
    pub sts_replicas: i32,
    /// The membership action.
    pub step: Step,
    /// Voters in the observed membership, when it is known.
    pub voters: Option<i32>,
}

impl Plan {
    /// Whether a replica change is under way (or stuck).
    pub fn in_progress(&self) -> bool {
        self.step != Step::Steady
    }
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Whether changing the voters from `before` to `after` keeps a majority of
/// `healthy` members in both (the joint configuration needs both).
pub fn quorum_safe(before: &BTreeSet<u64>, after: &BTreeSet<u64>, healthy: &BTreeSet<u64>) -> bool {
    let up = |set: &BTreeSet<u64>| set.intersection(healthy).count();
    !after.is_empty() && up(before) >= majority(before.len()) && up(after) >= majority(after.len())
}

/// Plans the StatefulSet size and the next membership step of one group.
pub fn plan(obs: &GroupObs<'_>) -> Plan {
    let desired = obs.desired.max(1);
    let want = desired as u64;
    let members = match obs.members {
        Some(m) if !m.is_empty() => m,
        _ => return unknown(obs, desired),
    };
    let all: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
    let voters: BTreeSet<u64> = members
        .iter()
        .filter(|m| m.is_voter())
        .map(|m| m.id)
        .collect();
    let healthy: BTreeSet<u64> = obs
        .pods
        .iter()
        .filter(|p| p.ready && !p.terminating)
        .map(|p| u64::from(p.ordinal) + 1)
        .collect();
    // Keep the pod of every member still in the membership.
    let top = all.iter().next_back().copied().unwrap_or(0);
    let sts_replicas = desired.max(i32::try_from(top).unwrap_or(i32::MAX));
    let voter_count = Some(voters.len() as i32);
    let step = if let Some(&id) = all.iter().rev().find(|id| **id > want) {
        let mut after = voters.clone();
        after.remove(&id);
        if !voters.contains(&id) || quorum_safe(&voters, &after, &healthy) {
            Step::Remove { id }
        } else {
            Step::Blocked {
                reason: "QuorumAtRisk",
                message: format!(
                    "removing node {id} would leave fewer than a majority of ready voters \
                     ({} of {} ready); waiting for the members to be ready",
                    voters.intersection(&healthy).count(),
                    voters.len()
                ),
            }
        }
    } else if let Some(id) = (1..=want).find(|id| !voters.contains(id)) {
        let ordinal = id - 1;
        let pod = obs.pods.iter().find(|p| u64::from(p.ordinal) == ordinal);
        match pod {
            Some(p) if p.running && !p.terminating => {
                let mut after = voters.clone();
                after.insert(id);
                // AddMember promotes only a caught-up learner: count it up.
                let mut up = healthy.clone();
                up.insert(id);
                if quorum_safe(&voters, &after, &up) {
                    Step::Add { id }
                } else {
                    Step::Blocked {
                        reason: "QuorumAtRisk",
                        message: format!(
                            "adding node {id} needs a majority of ready voters first \
                             ({} of {} ready)",
                            voters.intersection(&healthy).count(),
                            voters.len()
                        ),
                    }
                }
            }
            _ => Step::Waiting {
                message: format!("waiting for the pod of node {id} (ordinal {ordinal}) to run"),
            },
        }
    } else {
        Step::Steady
    };
    Plan {
        sts_replicas,
        step,
        voters: voter_count,
    }
}

/// The membership is unknown: grow the StatefulSet (new pods only wait to be
/// added), never shrink it, and say why a pending change cannot proceed.
fn unknown(obs: &GroupObs<'_>, desired: i32) -> Plan {
    let sts_replicas = match obs.sts_replicas {
        Some(r) if r > desired => r,
        _ => desired,
    };
    let pending = obs.sts_replicas.is_some_and(|r| r != desired)
        || obs.last_voters.is_some_and(|v| v != desired);
    let step = if pending {
        Step::Blocked {
            reason: "MembershipUnknown",
            message: format!(
                "no member reported a leader, so the change to {desired} voters waits \
                 (nothing is removed meanwhile)"
            ),
        }
    } else {
        Step::Steady
    };
    Plan {
        sts_replicas,
        step,
        voters: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(n: u32, ready: &[u32]) -> Vec<PodObs> {
        (0..n)
            .map(|ordinal| PodObs {
                ordinal,
                revision: Some("r".into()),
                ready: ready.contains(&ordinal),
                running: true,
                terminating: false,
            })
            .collect()
    }

    fn voters(ids: &[u64]) -> Vec<RaftMember> {
        ids.iter()
            .map(|id| RaftMember {
                id: *id,
                address: format!("m{id}"),
                role: if *id == 1 { "leader" } else { "follower" }.into(),
            })
            .collect()
    }

    fn obs<'a>(
        desired: i32,
        sts: i32,
        pods: &'a [PodObs],
        members: Option<&'a [RaftMember]>,
    ) -> GroupObs<'a> {
        GroupObs {
            desired,
            sts_replicas: Some(sts),
            last_voters: None,
            pods,
            members,
        }
    }

    #[test]
    fn steady_group_does_nothing() {
        let p = pods(3, &[0, 1, 2]);
        let m = voters(&[1, 2, 3]);
        let plan = plan(&obs(3, 3, &p, Some(&m)));
        assert_eq!(plan.step, Step::Steady);
        assert_eq!((plan.sts_replicas, plan.voters), (3, Some(3)));
        assert!(!plan.in_progress());
    }

    #[test]
    fn growing_raises_the_statefulset_then_adds_lowest_first_once_running() {
        let m = voters(&[1, 2, 3]);
        // The StatefulSet still has 3 pods: raise it, wait for pod 3.
        let p = pods(3, &[0, 1, 2]);
        let plan = plan(&obs(5, 3, &p, Some(&m)));
        assert_eq!(plan.sts_replicas, 5);
        assert!(matches!(plan.step, Step::Waiting { .. }), "{:?}", plan.step);
        // Pods 3 and 4 exist; pod 3 is not running yet.
        let mut p = pods(5, &[0, 1, 2]);
        p[3].running = false;
        assert!(matches!(
            super::plan(&obs(5, 5, &p, Some(&m))).step,
            Step::Waiting { .. }
        ));
        p[3].running = true;
        assert_eq!(
            super::plan(&obs(5, 5, &p, Some(&m))).step,
            Step::Add { id: 4 }
        );
        // Node 4 added: node 5 next.
        let m = voters(&[1, 2, 3, 4]);
        let p = pods(5, &[0, 1, 2, 3]);
        let plan = super::plan(&obs(5, 5, &p, Some(&m)));
        assert_eq!((plan.step, plan.voters), (Step::Add { id: 5 }, Some(4)));
    }

    #[test]
    fn a_learner_left_by_a_timed_out_add_is_added_again() {
        let mut m = voters(&[1, 2, 3]);
        m.push(RaftMember {
            id: 4,
            address: "m4".into(),
            role: "learner".into(),
        });
        let p = pods(5, &[0, 1, 2, 3]);
        let plan = plan(&obs(5, 5, &p, Some(&m)));
        assert_eq!((plan.step, plan.voters), (Step::Add { id: 4 }, Some(3)));
    }

    #[test]
    fn shrinking_removes_highest_first_and_keeps_their_pods_until_gone() {
        let p = pods(5, &[0, 1, 2, 3, 4]);
        let m = voters(&[1, 2, 3, 4, 5]);
        let plan = plan(&obs(3, 5, &p, Some(&m)));
        assert_eq!(plan.step, Step::Remove { id: 5 });
        assert_eq!(plan.sts_replicas, 5, "no pod goes before its member");
        let m = voters(&[1, 2, 3, 4]);
        let plan = super::plan(&obs(3, 5, &p, Some(&m)));
        assert_eq!(plan.step, Step::Remove { id: 4 });
        assert_eq!(plan.sts_replicas, 4, "node 5 is gone: its pod may go");
        let m = voters(&[1, 2, 3]);
        let plan = super::plan(&obs(3, 4, &p[..4], Some(&m)));
        assert_eq!((plan.step, plan.sts_replicas), (Step::Steady, 3));
    }

    #[test]
    fn shrinking_never_costs_the_quorum() {
        // 5 voters, two not ready: removing node 5 (ready) leaves 2 of 4 ready.
        let p = pods(5, &[0, 1, 4]);
        let m = voters(&[1, 2, 3, 4, 5]);
        let plan = plan(&obs(3, 5, &p, Some(&m)));
        assert!(
            matches!(
                plan.step,
                Step::Blocked {
                    reason: "QuorumAtRisk",
                    ..
                }
            ),
            "{:?}",
            plan.step
        );
        assert_eq!(plan.sts_replicas, 5);
        // Node 5 itself is down but the other four are ready: removing it is safe.
        let p = pods(5, &[0, 1, 2, 3]);
        assert_eq!(
            super::plan(&obs(3, 5, &p, Some(&m))).step,
            Step::Remove { id: 5 }
        );
        // 3 -> 1 with one of three ready: blocked.
        let p = pods(3, &[0]);
        let m = voters(&[1, 2, 3]);
        assert!(matches!(
            super::plan(&obs(1, 3, &p, Some(&m))).step,
            Step::Blocked { .. }
        ));
    }

    #[test]
    fn growing_waits_for_a_ready_majority() {
        // 3 voters, only one ready: promoting a 4th would need 3 of 4.
        let p = pods(5, &[0]);
        let m = voters(&[1, 2, 3]);
        assert!(matches!(
            plan(&obs(5, 5, &p, Some(&m))).step,
            Step::Blocked {
                reason: "QuorumAtRisk",
                ..
            }
        ));
        // 1 -> 3: the single voter is ready, the new one counts once caught up.
        let p = pods(3, &[0]);
        let m = voters(&[1]);
        assert_eq!(plan(&obs(3, 3, &p, Some(&m))).step, Step::Add { id: 2 });
    }

    #[test]
    fn learners_and_aborted_grows_are_removed_without_quorum_checks() {
        // Grow 3 -> 5 reverted to 3 before node 4 became a voter.
        let mut m = voters(&[1, 2, 3]);
        m.push(RaftMember {
            id: 4,
            address: "m4".into(),
            role: "learner".into(),
        });
        let p = pods(5, &[]);
        let plan = plan(&obs(3, 5, &p, Some(&m)));
        assert_eq!((plan.step, plan.sts_replicas), (Step::Remove { id: 4 }, 4));
        // No member beyond 3 at all: the extra pods go at once.
        let m = voters(&[1, 2, 3]);
        let plan = super::plan(&obs(3, 5, &p, Some(&m)));
        assert_eq!((plan.step, plan.sts_replicas), (Step::Steady, 3));
    }

    #[test]
    fn unknown_membership_grows_but_never_shrinks() {
        let p = pods(5, &[0, 1, 2, 3, 4]);
        // New StatefulSet: created at the desired size.
        let new = GroupObs {
            sts_replicas: None,
            ..obs(3, 0, &[], None)
        };
        assert_eq!(plan(&new).step, Step::Steady);
        assert_eq!(plan(&new).sts_replicas, 3);
        // A shrink pending: keep every pod, say why.
        let stuck = plan(&obs(3, 5, &p, None));
        assert_eq!(stuck.sts_replicas, 5);
        assert!(matches!(
            stuck.step,
            Step::Blocked {
                reason: "MembershipUnknown",
                ..
            }
        ));
        // A grow: the new pods may start (they only wait to be added).
        let grow = plan(&obs(5, 3, &p[..3], None));
        assert_eq!(grow.sts_replicas, 5);
        assert!(grow.in_progress());
        // The StatefulSet already grown, voters recorded before: still pending.
        let grown = GroupObs {
            last_voters: Some(3),
            ..obs(5, 5, &p, None)
        };
        assert!(plan(&grown).in_progress());
        // Nothing pending as far as anyone can tell.
        let quiet = GroupObs {
            last_voters: Some(3),
            ..obs(3, 3, &p[..3], Some(&[]))
        };
        assert_eq!(plan(&quiet).step, Step::Steady);
    }

    #[test]
    fn quorum_safe_checks_old_and_new_configurations() {
        let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
        assert!(quorum_safe(&set(&[1, 2, 3]), &set(&[1, 2]), &set(&[1, 2])));
        assert!(!quorum_safe(&set(&[1, 2, 3]), &set(&[1, 2]), &set(&[1, 3])));
        assert!(!quorum_safe(&set(&[1]), &set(&[]), &set(&[1])));
        assert!(quorum_safe(&set(&[1]), &set(&[1, 2]), &set(&[1, 2])));
    }
}
