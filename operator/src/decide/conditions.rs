//! Conditions (Ready, Progressing, Degraded) and the summary phase.
//!
//! Conditions are standard `metav1.Condition` objects kept as a list-map
//! keyed by `type`. A condition's `lastTransitionTime` changes only when its
//! status does; reason, message and observedGeneration are refreshed on
//! every write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::validation::SpecProblem;
use crate::crd::Phase;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// The new value of one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl ConditionUpdate {
    fn new(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: if status { "True" } else { "False" },
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Applies `updates` to `prev`: untouched conditions stay as they were,
/// updated ones keep their `lastTransitionTime` unless the status changed.
/// Ready, Progressing and Degraded come first, in that order.
pub fn merge(
    prev: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = prev
        .iter()
        .filter(|c| !updates.iter().any(|u| u.type_ == c.type_))
        .cloned()
        .collect();
    for u in updates {
        let last = prev
            .iter()
            .find(|c| c.type_ == u.type_ && c.status == u.status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        out.push(Condition {
            type_: u.type_.into(),
            status: u.status.into(),
            reason: u.reason.clone(),
            message: u.message.clone(),
            observed_generation: generation,
            last_transition_time: last,
        });
    }
    let rank = |t: &str| {
        [READY, PROGRESSING, DEGRADED]
            .iter()
            .position(|x| *x == t)
            .unwrap_or(3)
    };
    out.sort_by(|a, b| {
        rank(&a.type_)
            .cmp(&rank(&b.type_))
            .then_with(|| a.type_.cmp(&b.type_))
    });
    out
}

/// Whether condition `type_` is `True` in `conds`.
pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    conds.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// What the reconciler saw, summarized for the conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Every controller pod is ready.
    pub controller_ready: bool,
    /// The controller answered ClusterStatus.
    pub controller_reachable: bool,
    /// `spec.groups.count`.
    pub desired_groups: u32,
    /// Groups in the config with every pod ready.
    pub ready_groups: u32,
    /// Groups provisioning or joining.
    pub joining: u32,
    /// Groups leaving or drained but not yet removed.
    pub draining: u32,
    /// Serving groups missing ready members while no rollout explains it.
    pub under_replicated: Vec<u64>,
    /// Raft groups (by object name) with a rollout in progress.
    pub rolling: Vec<String>,
    /// Raft groups changing their number of voters, with what happens
    /// next (`kv-g1: 3 of 5 voters; adding node 4`).
    pub resizing: Vec<String>,
    /// Raft groups whose replica change cannot proceed now, and why.
    pub resize_blocked: Vec<String>,
    /// The cluster has served before (so missing pieces are a degradation,
    /// not creation in progress).
    pub has_served: bool,
}

/// Phase and condition updates for a valid spec.
pub fn evaluate(h: &Health) -> (Phase, Vec<ConditionUpdate>) {
    let degraded = if h.controller_ready && !h.controller_reachable {
        Some((
            "ControllerUnreachable",
            "controller pods are ready but ClusterStatus fails".to_string(),
        ))
    } else if h.has_served && !h.controller_ready {
        Some((
            "ControllerUnavailable",
            "not every controller pod is ready".to_string(),
        ))
    } else if !h.under_replicated.is_empty() {
        Some((
            "GroupUnderReplicated",
            format!("groups missing ready members: {:?}", h.under_replicated),
        ))
    } else {
        None
    };
    let progressing = if !h.has_served && h.ready_groups < h.desired_groups {
        Some((
            "Creating",
            format!("{} of {} groups ready", h.ready_groups, h.desired_groups),
        ))
    } else if h.joining > 0 {
        Some((
            "ScalingUp",
            format!("{} groups provisioning or joining", h.joining),
        ))
    } else if h.draining > 0 {
        Some((
            "Draining",
            format!("{} groups draining their ranges", h.draining),
        ))
    } else if !h.resize_blocked.is_empty() {
        Some(("ReplicaChangeBlocked", h.resize_blocked.join("; ")))
    } else if !h.resizing.is_empty() {
        Some(("ReplicasChanging", h.resizing.join("; ")))
    } else if !h.rolling.is_empty() {
        Some(("RollingUpdate", format!("rolling {}", h.rolling.join(", "))))
    } else {
        None
    };
    let ready = h.controller_ready && h.controller_reachable && h.ready_groups >= h.desired_groups;
    let phase = match (&degraded, &progressing) {
        (Some(_), _) => Phase::Degraded,
        (None, Some((r, _))) if *r == "Creating" => Phase::Creating,
        (None, Some((r, _))) if *r == "RollingUpdate" => Phase::Updating,
        (None, Some(_)) => Phase::Scaling,
        (None, None) => Phase::Running,
    };
    let updates = vec![
        ConditionUpdate::new(
            READY,
            ready,
            if ready {
                "AllGroupsServing"
            } else {
                "NotAllGroupsServing"
            },
            format!(
                "{} of {} groups serving; controller {}",
                h.ready_groups,
                h.desired_groups,
                if h.controller_ready && h.controller_reachable {
                    "ready"
                } else {
                    "not ready"
                }
            ),
        ),
        match progressing {
            Some((reason, msg)) => ConditionUpdate::new(PROGRESSING, true, reason, msg),
            None => ConditionUpdate::new(PROGRESSING, false, "Stable", "nothing in progress"),
        },
        match degraded {
            Some((reason, msg)) => ConditionUpdate::new(DEGRADED, true, reason, msg),
            None => ConditionUpdate::new(DEGRADED, false, "AsExpected", "no problems observed"),
        },
    ];
    (phase, updates)
}

/// Phase and condition updates for a refused spec. Ready is left as it was
/// (nothing was observed), or Unknown when it was never set.
pub fn invalid_spec(problem: &SpecProblem, prev: &[Condition]) -> (Phase, Vec<ConditionUpdate>) {
    let mut updates = vec![
        ConditionUpdate::new(DEGRADED, true, problem.reason, problem.message.clone()),
        ConditionUpdate::new(
            PROGRESSING,
            false,
            "SpecInvalid",
            "waiting for a valid spec; nothing was changed",
        ),
    ];
    if !prev.iter().any(|c| c.type_ == READY) {
        updates.push(ConditionUpdate {
            type_: READY,
            status: "Unknown",
            reason: "SpecInvalid".into(),
            message: "the spec was refused before anything was observed".into(),
        });
    }
    (Phase::Degraded, updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn healthy() -> Health {
        Health {
            controller_ready: true,
            controller_reachable: true,
            desired_groups: 2,
            ready_groups: 2,
            has_served: true,
            ..Default::default()
        }
    }

    fn find<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|x| x.type_ == t).unwrap()
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let (_, u) = evaluate(&healthy());
        let first = merge(&[], &u, Some(1), &at(100));
        assert_eq!(first.len(), 3);
        assert_eq!(
            first.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [READY, PROGRESSING, DEGRADED]
        );
        let second = merge(&first, &u, Some(2), &at(200));
        assert_eq!(find(&second, READY).last_transition_time, at(100));
        assert_eq!(find(&second, READY).observed_generation, Some(2));
        let mut h = healthy();
        h.ready_groups = 1;
        let (_, u) = evaluate(&h);
        let third = merge(&second, &u, Some(2), &at(300));
        assert_eq!(find(&third, READY).status, "False");
        assert_eq!(find(&third, READY).last_transition_time, at(300));
        assert_eq!(
            find(&third, DEGRADED).last_transition_time,
            at(100),
            "Degraded still False"
        );
    }

    #[test]
    fn merge_keeps_foreign_conditions_once() {
        let foreign = Condition {
            type_: "Custom".into(),
            status: "True".into(),
            reason: "X".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(1),
        };
        let (_, u) = evaluate(&healthy());
        let out = merge(std::slice::from_ref(&foreign), &u, None, &at(5));
        assert_eq!(out.len(), 4);
        assert_eq!(out[3], foreign);
        let again = merge(&out, &u, None, &at(6));
        assert_eq!(again.iter().filter(|c| c.type_ == READY).count(), 1);
    }

    #[test]
    fn healthy_cluster_is_running() {
        let (phase, u) = evaluate(&healthy());
        assert_eq!(phase, Phase::Running);
        let c = merge(&[], &u, None, &at(0));
        assert!(is_true(&c, READY) && !is_true(&c, PROGRESSING) && !is_true(&c, DEGRADED));
    }

    #[test]
    fn creation_progresses_without_degrading() {
        let h = Health {
            desired_groups: 2,
            ..Default::default()
        };
        let (phase, u) = evaluate(&h);
        assert_eq!(phase, Phase::Creating);
        let c = merge(&[], &u, None, &at(0));
        assert_eq!(find(&c, PROGRESSING).reason, "Creating");
        assert!(!is_true(&c, DEGRADED) && !is_true(&c, READY));
    }

    #[test]
    fn scaling_and_rolling_phases() {
        let mut h = healthy();
        h.draining = 1;
        let (phase, u) = evaluate(&h);
        assert_eq!(phase, Phase::Scaling);
        assert_eq!(u[1].reason, "Draining");
        assert_eq!(u[0].status, "True", "draining does not stop serving");
        let mut h = healthy();
        h.rolling = vec!["kv-g1".into()];
        assert_eq!(evaluate(&h).0, Phase::Updating);
    }

    #[test]
    fn replica_changes_progress_and_say_why_they_wait() {
        let mut h = healthy();
        h.resizing = vec!["kv-g1: 3 of 5 voters; adding node 4".into()];
        h.rolling = vec!["kv-g2".into()];
        let (phase, u) = evaluate(&h);
        assert_eq!(phase, Phase::Scaling);
        assert_eq!(
            (u[1].status, u[1].reason.as_str(), u[1].message.as_str()),
            (
                "True",
                "ReplicasChanging",
                "kv-g1: 3 of 5 voters; adding node 4"
            )
        );
        assert_eq!(u[0].status, "True", "the group keeps serving");
        h.resize_blocked = vec!["kv-ctrl: no member reported a leader".into()];
        let (phase, u) = evaluate(&h);
        assert_eq!(phase, Phase::Scaling);
        assert_eq!(u[1].reason, "ReplicaChangeBlocked");
        assert!(u[1].message.contains("kv-ctrl"));
        assert_eq!(
            u[2].status, "False",
            "a waiting change is not a degradation"
        );
    }

    #[test]
    fn degraded_reasons() {
        let mut h = healthy();
        h.controller_reachable = false;
        let (phase, u) = evaluate(&h);
        assert_eq!(phase, Phase::Degraded);
        assert_eq!(u[2].reason, "ControllerUnreachable");
        let mut h = healthy();
        h.under_replicated = vec![2];
        assert_eq!(evaluate(&h).1[2].reason, "GroupUnderReplicated");
    }

    #[test]
    fn invalid_spec_sets_degraded_with_reason() {
        let p = SpecProblem {
            reason: "EvenReplicas",
            message: "groups replicas is 4".into(),
        };
        let (phase, u) = invalid_spec(&p, &[]);
        assert_eq!(phase, Phase::Degraded);
        let c = merge(&[], &u, Some(3), &at(0));
        let d = find(&c, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "EvenReplicas")
        );
        assert_eq!(find(&c, READY).status, "Unknown");
        // With a previous Ready, it is left alone.
        let (_, ok) = evaluate(&healthy());
        let prev = merge(&[], &ok, Some(2), &at(0));
        let (_, u) = invalid_spec(&p, &prev);
        let c = merge(&prev, &u, Some(3), &at(10));
        assert_eq!(find(&c, READY).status, "True");
        assert_eq!(find(&c, READY).observed_generation, Some(2));
    }
}
