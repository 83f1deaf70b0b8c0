//! Building `.status` from observations and writing it with server-side
//! apply to the `/status` subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use std::collections::BTreeMap;

use crate::cluster_api::{ClusterView, GroupReport};
use crate::crd::{
    ControllerStatus, GroupState, GroupStatus, HotRangeStatus, Phase, ShardedCluster,
    ShardedClusterStatus, MAX_HOT_RANGES,
};
use crate::decide::conditions::{self, ConditionUpdate, Health};
use crate::decide::membership::Plan as ResizePlan;
use crate::decide::scale::ScalePlan;
use crate::error::{Error, Result};
use crate::names;

use super::members::Progress;
use super::observe::Observed;

/// Everything a status is made of.
pub struct StatusInput<'a> {
    pub cluster: &'a ShardedCluster,
    pub observed: &'a Observed,
    pub view: Option<&'a ClusterView>,
    pub plan: &'a ScalePlan,
    /// What the shard groups reported about themselves.
    pub group_reports: &'a BTreeMap<u64, GroupReport>,
    /// Raft groups with a rollout in progress, by object name.
    pub rolling: Vec<String>,
    /// Each Raft group's replica-change plan.
    pub resize: &'a BTreeMap<names::Member, ResizePlan>,
    /// Where the replica changes stand.
    pub progress: &'a Progress,
}

/// Ready pods a group needs to count as fully up: the voters it has while
/// its size is changing (pods waiting to be added are not ready yet, and
/// removed members' pods may still run), else the spec's.
fn expected_ready(plan: Option<&ResizePlan>, desired: i32) -> i32 {
    match plan {
        Some(p) if p.in_progress() => p.voters.unwrap_or(desired),
        _ => desired,
    }
}

/// Writes `status` to the `/status` subresource.
pub async fn patch(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &ShardedClusterStatus,
) -> Result<()> {
    let api: Api<ShardedCluster> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "shardline.dev/v1alpha1",
        "kind": "ShardedCluster",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("patch status"))?;
    Ok(())
}

/// Applies phase and condition updates to `prev`.
pub fn with_conditions(
    mut status: ShardedClusterStatus,
    phase: Phase,
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: &Time,
) -> ShardedClusterStatus {
    status.conditions = conditions::merge(&status.conditions, updates, generation, now);
    status.phase = Some(phase);
    status.observed_generation = generation;
    status
}

/// Lower-case hex of a routing key.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hottest [`MAX_HOT_RANGES`] of the controller's hot ranges (which it
/// sends hottest first).
fn hot_ranges(view: &ClusterView) -> Vec<HotRangeStatus> {
    view.hot_ranges
        .iter()
        .take(MAX_HOT_RANGES)
        .map(|r| HotRangeStatus {
            gid: r.gid as i64,
            range_id: r.range_id as i64,
            start: hex(&r.start),
            end: hex(&r.end),
            ops_per_sec: r.ops_per_sec,
        })
        .collect()
}

/// The status of a cluster whose spec was accepted.
pub fn build(input: &StatusInput<'_>) -> (ShardedClusterStatus, Health) {
    let spec = &input.cluster.spec;
    let prev = input.cluster.status.clone().unwrap_or_default();
    let name = input.cluster.metadata.name.as_deref().unwrap_or_default();
    let groups = input.observed.groups();
    let mut group_statuses = Vec::new();
    let mut ready_groups = 0u32;
    let mut under_replicated = Vec::new();
    for (gid, state) in &input.plan.states {
        let obs = groups.get(gid).copied().unwrap_or_default();
        let resize = input.resize.get(&names::Member::Group(*gid));
        let all_ready =
            obs.ready_replicas >= expected_ready(resize, spec.groups.replicas) && obs.replicas > 0;
        if *state == GroupState::Serving {
            if all_ready {
                ready_groups += 1;
            } else if !input
                .rolling
                .contains(&names::Member::Group(*gid).object_name(name))
            {
                under_replicated.push(*gid);
            }
        }
        let report = input.group_reports.get(gid);
        group_statuses.push(GroupStatus {
            gid: *gid as i64,
            state: *state,
            replicas: spec.groups.replicas,
            voters: resize.and_then(|p| p.voters).or_else(|| {
                report
                    .filter(|r| r.leader.is_some())
                    .map(|r| r.members.iter().filter(|m| m.is_voter()).count() as i32)
            }),
            ready_replicas: obs.ready_replicas,
            range_count: input.view.map(|v| v.ranges_of(*gid) as i32).unwrap_or(0),
            leader_id: report.and_then(|r| r.leader.as_ref()).map(|l| l.id as i64),
            leader: report
                .and_then(|r| r.leader.as_ref())
                .map(|l| l.address.clone()),
            key_count: report.map(|r| r.key_count as i64),
            ops_per_sec: input.view.and_then(|v| v.ops_by_group.get(gid).copied()),
        });
    }
    let ctrl = input
        .observed
        .statefulsets
        .get(&names::Member::Controller)
        .map(|s| s.obs)
        .unwrap_or_default();
    let ctrl_plan = input.resize.get(&names::Member::Controller);
    let controller_ready = ctrl.replicas > 0
        && ctrl.ready_replicas >= expected_ready(ctrl_plan, spec.controller.replicas);
    let count = |f: &dyn Fn(GroupState) -> bool| {
        input.plan.states.values().filter(|s| f(**s)).count() as u32
    };
    let has_served = prev
        .phase
        .is_some_and(|p| matches!(p, Phase::Running | Phase::Scaling | Phase::Updating))
        || conditions::is_true(&prev.conditions, conditions::READY);
    let health = Health {
        controller_ready,
        controller_reachable: input.view.is_some(),
        desired_groups: spec.groups.count.max(0) as u32,
        ready_groups,
        joining: count(&|s| matches!(s, GroupState::Provisioning | GroupState::Joining)),
        draining: count(&|s| matches!(s, GroupState::Draining | GroupState::Drained)),
        under_replicated,
        rolling: input.rolling.clone(),
        resizing: input.progress.resizing.clone(),
        resize_blocked: input.progress.blocked.clone(),
        has_served,
    };
    let status = ShardedClusterStatus {
        partitioning: prev
            .partitioning
            .clone()
            .or_else(|| Some(spec.partitioning.clone())),
        controller: Some(ControllerStatus {
            replicas: spec.controller.replicas,
            voters: ctrl_plan.and_then(|p| p.voters),
            ready_replicas: ctrl.ready_replicas,
            leader_id: input.view.and_then(|v| v.leader_id).map(|id| id as i64),
            leader: input
                .view
                .and_then(|v| v.leader_address().map(str::to_string)),
            term: input.view.map(|v| v.term as i64),
            reachable: input.view.is_some(),
        }),
        groups: group_statuses,
        config_num: input.view.map(|v| v.config_num as i64).or(prev.config_num),
        range_count: input
            .view
            .map(|v| v.range_count as i32)
            .or(prev.range_count),
        ranges_moving: input
            .view
            .map(|v| v.ranges_moving() as i32)
            .or(prev.ranges_moving),
        // Kept from the previous status while the controller is unreachable,
        // like the config figures (`controller.reachable` says so).
        hot_ranges: input
            .view
            .map(hot_ranges)
            .unwrap_or_else(|| prev.hot_ranges.clone()),
        ready_groups: ready_groups as i32,
        ..prev
    };
    (status, health)
}
