//! Spec checks the schema cannot make (or that must hold even when the CRD
//! was installed without its CEL rules). A failing spec never deletes or
//! disrupts anything: the reconciler reports `Degraded` with the problem's
//! reason and message, emits a Warning event and stops there.
//!
//! A changed `replicas` (controller or groups) is accepted: it is carried
//! out by Raft membership changes (see [`crate::decide::membership`]).

use crate::crd::{PartitioningMode, ShardedClusterSpec, ShardedClusterStatus};

/// Longest ShardedCluster name: `<name>-g<gid>-<ordinal>` plus the
/// StatefulSet revision label must stay within 63 characters.
pub const MAX_NAME_LEN: usize = 40;

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// CamelCase reason, used as condition reason and Event reason.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl SpecProblem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

fn check_replicas(what: &str, replicas: i32) -> Result<(), SpecProblem> {
    if !matches!(replicas, 1 | 3 | 5) {
        let reason = if replicas > 0 && replicas % 2 == 0 {
            "EvenReplicas"
        } else {
            "InvalidReplicas"
        };
        return Err(SpecProblem::new(
            reason,
            format!("{what} replicas is {replicas}; a Raft group needs 1, 3 or 5 voters"),
        ));
    }
    Ok(())
}

/// Checks `spec` against itself and against what the cluster was created
/// with (recorded in `status`).
pub fn validate(
    name: &str,
    spec: &ShardedClusterSpec,
    status: Option<&ShardedClusterStatus>,
) -> Result<(), SpecProblem> {
    if name.len() > MAX_NAME_LEN {
        return Err(SpecProblem::new(
            "NameTooLong",
            format!(
                "name {name:?} has {} characters; at most {MAX_NAME_LEN} are allowed",
                name.len()
            ),
        ));
    }
    if spec.groups.count < 1 {
        return Err(SpecProblem::new(
            "NoGroups",
            format!(
                "groups.count is {}; a cluster needs at least one shard group",
                spec.groups.count
            ),
        ));
    }
    check_replicas("controller", spec.controller.replicas)?;
    check_replicas("groups", spec.groups.replicas)?;
    match (spec.partitioning.mode, spec.partitioning.initial_ranges) {
        (_, Some(n)) if n < 1 => {
            return Err(SpecProblem::new(
                "InvalidPartitioning",
                "partitioning.initialRanges must be at least 1",
            ));
        }
        (PartitioningMode::Range, Some(n)) if n != 1 => {
            return Err(SpecProblem::new(
                "InvalidPartitioning",
                format!("range partitioning starts from a single range; initialRanges is {n}"),
            ));
        }
        _ => {}
    }
    let Some(status) = status else { return Ok(()) };
    if let Some(recorded) = &status.partitioning {
        if recorded.mode != spec.partitioning.mode {
            return Err(SpecProblem::new(
                "PartitioningChanged",
                format!(
                    "partitioning.mode is fixed at creation ({}); the spec asks for {}",
                    recorded.mode.as_flag(),
                    spec.partitioning.mode.as_flag()
                ),
            ));
        }
        if recorded.initial_ranges != spec.partitioning.initial_ranges {
            return Err(SpecProblem::new(
                "PartitioningChanged",
                format!(
                    "partitioning.initialRanges is fixed at creation ({:?}); the spec asks for {:?}",
                    recorded.initial_ranges, spec.partitioning.initial_ranges
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ControllerStatus, GroupState, GroupStatus};

    fn spec(count: i32, replicas: i32) -> ShardedClusterSpec {
        serde_json::from_value(
            serde_json::json!({"groups": {"count": count, "replicas": replicas}}),
        )
        .unwrap()
    }

    fn created_with(s: &ShardedClusterSpec) -> ShardedClusterStatus {
        ShardedClusterStatus {
            partitioning: Some(s.partitioning.clone()),
            controller: Some(ControllerStatus {
                replicas: s.controller.replicas,
                ..Default::default()
            }),
            groups: vec![GroupStatus {
                gid: 1,
                state: GroupState::Serving,
                replicas: s.groups.replicas,
                voters: Some(s.groups.replicas),
                ready_replicas: s.groups.replicas,
                range_count: 4,
                leader_id: None,
                leader: None,
                key_count: None,
                ops_per_sec: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn accepts_defaults_and_odd_replicas() {
        for r in [1, 3, 5] {
            assert_eq!(validate("kv", &spec(2, r), None), Ok(()));
        }
        let s = spec(2, 3);
        assert_eq!(validate("kv", &s, Some(&created_with(&s))), Ok(()));
    }

    #[test]
    fn zero_groups() {
        assert_eq!(
            validate("kv", &spec(0, 3), None).unwrap_err().reason,
            "NoGroups"
        );
    }

    #[test]
    fn even_and_out_of_range_replicas() {
        assert_eq!(
            validate("kv", &spec(1, 4), None).unwrap_err().reason,
            "EvenReplicas"
        );
        assert_eq!(
            validate("kv", &spec(1, 7), None).unwrap_err().reason,
            "InvalidReplicas"
        );
        let mut s = spec(1, 3);
        s.controller.replicas = 2;
        let p = validate("kv", &s, None).unwrap_err();
        assert_eq!(p.reason, "EvenReplicas");
        assert!(p.message.contains("controller"));
    }

    #[test]
    fn partitioning_change_is_refused() {
        let s = spec(2, 3);
        let status = created_with(&s);
        let mut changed = s.clone();
        changed.partitioning.mode = PartitioningMode::Range;
        let p = validate("kv", &changed, Some(&status)).unwrap_err();
        assert_eq!(p.reason, "PartitioningChanged");
        assert!(p.message.contains("hash") && p.message.contains("range"));
        let mut changed = s;
        changed.partitioning.initial_ranges = Some(32);
        assert_eq!(
            validate("kv", &changed, Some(&status)).unwrap_err().reason,
            "PartitioningChanged"
        );
    }

    #[test]
    fn replica_change_is_accepted_between_odd_counts() {
        let s = spec(2, 3);
        let status = created_with(&s);
        assert_eq!(validate("kv", &spec(2, 5), Some(&status)), Ok(()));
        assert_eq!(validate("kv", &spec(2, 1), Some(&status)), Ok(()));
        let mut c = s.clone();
        c.controller.replicas = 1;
        assert_eq!(validate("kv", &c, Some(&status)), Ok(()));
        assert_eq!(
            validate("kv", &spec(2, 4), Some(&status))
                .unwrap_err()
                .reason,
            "EvenReplicas",
            "a change must still land on 1, 3 or 5"
        );
        assert_eq!(
            validate("kv", &spec(7, 3), Some(&status)),
            Ok(()),
            "group count may change"
        );
    }

    #[test]
    fn range_mode_starts_from_one_range() {
        let mut s = spec(1, 3);
        s.partitioning.mode = PartitioningMode::Range;
        assert_eq!(validate("kv", &s, None), Ok(()));
        s.partitioning.initial_ranges = Some(1);
        assert_eq!(validate("kv", &s, None), Ok(()));
        s.partitioning.initial_ranges = Some(8);
        assert_eq!(
            validate("kv", &s, None).unwrap_err().reason,
            "InvalidPartitioning"
        );
        s.partitioning.mode = PartitioningMode::Hash;
        assert_eq!(validate("kv", &s, None), Ok(()));
        s.partitioning.initial_ranges = Some(0);
        assert_eq!(
            validate("kv", &s, None).unwrap_err().reason,
            "InvalidPartitioning"
        );
    }

    #[test]
    fn long_names() {
        let name = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            validate(&name, &spec(1, 3), None).unwrap_err().reason,
            "NameTooLong"
        );
    }
}
