//! Scale decisions for shard groups.
//!
//! Groups are numbered `1..=count`. Scaling up provisions the new groups'
//! StatefulSets and joins each group to the controller only once all its pods
//! are ready. Scaling down drains the highest-numbered groups: `Leave` first,
//! then wait until the group owns no ranges in the latest config *and*
//! reports that it stores no keys (its data has been handed off to the new
//! owners), and only then delete its objects. A group that is still draining when the count goes back up is
//! joined again (the scale-down is reverted) instead of being deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster_api::ClusterView;
use crate::crd::GroupState;

/// What the operator saw of one group's StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StsObs {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
}

impl StsObs {
    /// All `want` replicas are ready.
    pub fn all_ready(&self, want: i32) -> bool {
        self.replicas >= want && self.ready_replicas >= want
    }
}

/// The plan for one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalePlan {
    /// Groups whose objects must exist (applied this reconcile).
    pub keep: Vec<u64>,
    /// Groups to `Join` now (pods ready, not in the config).
    pub join: Vec<u64>,
    /// Of `join`, groups that were draining: the scale-down is reverted.
    pub reverted: Vec<u64>,
    /// Groups to `Leave` now.
    pub leave: Vec<u64>,
    /// Groups drained (no ranges, not in the config): delete their objects.
    pub delete: Vec<u64>,
    /// Lifecycle state of every group in `keep` or `delete`.
    pub states: BTreeMap<u64, GroupState>,
}

impl ScalePlan {
    /// Whether any group is on its way in or out.
    pub fn in_motion(&self) -> bool {
        self.states.values().any(|s| *s != GroupState::Serving)
    }
}

/// Plans group changes. `existing` maps group ids that have a StatefulSet to
/// what was observed; `view` is the controller's answer (None when it could
/// not be asked, in which case nothing is joined, left or deleted);
/// `key_counts` holds the keys each group that answered says it stores (a
/// group missing there is never deleted).
pub fn plan(
    desired: i32,
    replicas: i32,
    existing: &BTreeMap<u64, StsObs>,
    view: Option<&ClusterView>,
    key_counts: &BTreeMap<u64, u64>,
) -> ScalePlan {
    let desired = desired.max(0) as u64;
    let mut out = ScalePlan::default();
    let mut all: BTreeSet<u64> = (1..=desired).collect();
    all.extend(existing.keys().copied());
    for gid in all {
        let ready = existing.get(&gid).is_some_and(|s| s.all_ready(replicas));
        let keys = key_counts.get(&gid).copied();
        if gid <= desired {
            out.keep.push(gid);
            let state = match view {
                Some(v) if v.has_group(gid) => GroupState::Serving,
                Some(v) if ready => {
                    out.join.push(gid);
                    if v.ranges_of(gid) > 0 || keys.is_some_and(|k| k > 0) {
                        out.reverted.push(gid);
                    }
                    GroupState::Joining
                }
                None if ready => GroupState::Joining,
                _ => GroupState::Provisioning,
            };
            out.states.insert(gid, state);
            continue;
        }
        let state = match view {
            Some(v) if v.has_group(gid) => {
                out.leave.push(gid);
                GroupState::Draining
            }
            Some(v) if v.ranges_of(gid) == 0 && keys == Some(0) => {
                out.delete.push(gid);
                GroupState::Drained
            }
            _ => GroupState::Draining,
        };
        if state != GroupState::Drained {
            out.keep.push(gid);
        }
        out.states.insert(gid, state);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(gids: &[u64]) -> BTreeMap<u64, StsObs> {
        gids.iter()
            .map(|g| {
                (
                    *g,
                    StsObs {
                        replicas: 3,
                        ready_replicas: 3,
                    },
                )
            })
            .collect()
    }

    fn none() -> BTreeMap<u64, u64> {
        BTreeMap::new()
    }

    fn keys(k: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        k.iter().copied().collect()
    }

    fn view(groups: &[u64], ranges: &[(u64, u32)]) -> ClusterView {
        ClusterView {
            groups: groups.iter().map(|g| (*g, vec![])).collect(),
            ranges_by_group: ranges.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn new_cluster_provisions_and_waits_for_pods() {
        let p = plan(2, 3, &BTreeMap::new(), Some(&view(&[], &[])), &none());
        assert_eq!(p.keep, vec![1, 2]);
        assert!(p.join.is_empty() && p.leave.is_empty() && p.delete.is_empty());
        assert_eq!(p.states[&1], GroupState::Provisioning);
    }

    #[test]
    fn joins_only_groups_whose_pods_are_all_ready() {
        let mut existing = ready(&[1]);
        existing.insert(
            2,
            StsObs {
                replicas: 3,
                ready_replicas: 2,
            },
        );
        let p = plan(2, 3, &existing, Some(&view(&[], &[])), &none());
        assert_eq!(p.join, vec![1]);
        assert_eq!(p.states[&2], GroupState::Provisioning);
        assert!(p.reverted.is_empty());
    }

    #[test]
    fn nothing_happens_without_the_controller() {
        let p = plan(1, 3, &ready(&[1, 2]), None, &none());
        assert_eq!(p.keep, vec![1, 2]);
        assert!(p.join.is_empty() && p.leave.is_empty() && p.delete.is_empty());
        assert_eq!(p.states[&2], GroupState::Draining);
    }

    #[test]
    fn steady_state_does_nothing() {
        let p = plan(
            2,
            3,
            &ready(&[1, 2]),
            Some(&view(&[1, 2], &[(1, 8), (2, 8)])),
            &none(),
        );
        assert_eq!(p.keep, vec![1, 2]);
        assert!(p.join.is_empty() && p.leave.is_empty() && p.delete.is_empty());
        assert!(!p.in_motion());
    }

    #[test]
    fn scale_down_leaves_then_waits_then_deletes() {
        let existing = ready(&[1, 2, 3]);
        let all = view(&[1, 2, 3], &[(1, 5), (2, 5), (3, 6)]);
        let p = plan(2, 3, &existing, Some(&all), &keys(&[(3, 500)]));
        assert_eq!(p.leave, vec![3]);
        assert!(p.delete.is_empty());
        assert_eq!(p.keep, vec![1, 2, 3], "draining group's objects stay");
        // Ranges still owned by the leaving group: wait.
        let moving = view(&[1, 2], &[(1, 8), (2, 6), (3, 2)]);
        let p = plan(2, 3, &existing, Some(&moving), &keys(&[(3, 120)]));
        assert!(p.leave.is_empty() && p.delete.is_empty());
        assert_eq!(p.states[&3], GroupState::Draining);
        // Ownership moved but the group still stores keys (hand-off running): wait.
        let moved = view(&[1, 2], &[(1, 8), (2, 8)]);
        let p = plan(2, 3, &existing, Some(&moved), &keys(&[(3, 40)]));
        assert!(p.delete.is_empty());
        assert_eq!(p.states[&3], GroupState::Draining);
        // The group did not answer: never delete blind.
        let p = plan(2, 3, &existing, Some(&moved), &none());
        assert!(p.delete.is_empty());
        // No ranges, no keys: delete.
        let p = plan(2, 3, &existing, Some(&moved), &keys(&[(3, 0)]));
        assert_eq!(p.delete, vec![3]);
        assert_eq!(p.keep, vec![1, 2]);
        assert_eq!(p.states[&3], GroupState::Drained);
    }

    #[test]
    fn scale_down_reverted_while_draining() {
        let existing = ready(&[1, 2, 3]);
        let moving = view(&[1, 2], &[(1, 7), (2, 7), (3, 2)]);
        let p = plan(3, 3, &existing, Some(&moving), &keys(&[(3, 90)]));
        assert_eq!(p.join, vec![3]);
        assert_eq!(p.reverted, vec![3]);
        assert!(p.delete.is_empty());
        // Ranges already reassigned, data still there: also a revert.
        let moved = view(&[1, 2], &[(1, 8), (2, 8)]);
        let p = plan(3, 3, &existing, Some(&moved), &keys(&[(3, 90)]));
        assert_eq!((p.join.clone(), p.reverted), (vec![3], vec![3]));
    }

    #[test]
    fn scale_up_joins_after_ready() {
        let mut existing = ready(&[1, 2]);
        let v = view(&[1, 2], &[(1, 8), (2, 8)]);
        let p = plan(3, 3, &existing, Some(&v), &none());
        assert_eq!(p.keep, vec![1, 2, 3]);
        assert!(p.join.is_empty());
        existing.insert(
            3,
            StsObs {
                replicas: 3,
                ready_replicas: 3,
            },
        );
        assert_eq!(plan(3, 3, &existing, Some(&v), &none()).join, vec![3]);
    }
}
