//! Replica changes of running Raft groups (the controller's and the shard
//! groups'): plans each group's StatefulSet size and next membership step
//! (the rules are in [`crate::decide::membership`]), takes the step through
//! the group's leader (`Admin.AddMember` / `Admin.RemoveMember`), deletes
//! the PVCs of removed members when `pvcRetention.onScaleDown` says so, and
//! publishes an Event for every decision and failure.
//!
//! A failed step does not fail the reconcile: everything keeps running, the
//! Progressing condition says what went wrong, and the next reconcile tries
//! again from what it then observes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use tracing::{info, warn};

use super::events;
use super::observe::{group_target, Observed};
use super::Context;
use crate::builders::BuildCtx;
use crate::cluster_api::{ClusterView, GroupReport, Target};
use crate::crd::{RetentionPolicy, ShardedClusterStatus};
use crate::decide::membership::{self, GroupObs, Plan, Step};
use crate::error::Result;
use crate::names::Member;

/// Where a group's replica change stands after this reconcile, for the
/// Progressing condition.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Progress {
    /// Changes under way (`kv-g1: 4 of 5 voters; added node 4`).
    pub resizing: Vec<String>,
    /// Changes that cannot proceed now, and why.
    pub blocked: Vec<String>,
}

/// Plans the controller and the shard groups in `gids` (those that stay;
/// draining groups keep their size).
pub fn plan_all(
    cx: &BuildCtx,
    observed: &Observed,
    view: Option<&ClusterView>,
    reports: &BTreeMap<u64, GroupReport>,
    gids: &[u64],
    prev: &ShardedClusterStatus,
) -> BTreeMap<Member, Plan> {
    let mut plans = BTreeMap::new();
    let controller_members = view
        .filter(|v| v.leader_id.is_some())
        .map(|v| v.members.as_slice());
    let last = prev.controller.as_ref().and_then(|c| c.voters);
    plans.insert(
        Member::Controller,
        plan_one(cx, observed, Member::Controller, controller_members, last),
    );
    for gid in gids {
        let members = reports
            .get(gid)
            .filter(|r| r.leader.is_some())
            .map(|r| r.members.as_slice());
        let last = prev
            .groups
            .iter()
            .find(|g| g.gid == *gid as i64)
            .and_then(|g| g.voters);
        let member = Member::Group(*gid);
        plans.insert(member, plan_one(cx, observed, member, members, last));
    }
    plans
}

fn plan_one(
    cx: &BuildCtx,
    observed: &Observed,
    member: Member,
    members: Option<&[crate::cluster_api::RaftMember]>,
    last_voters: Option<i32>,
) -> Plan {
    membership::plan(&GroupObs {
        desired: cx.desired_replicas(member),
        sts_replicas: observed.statefulsets.get(&member).map(|s| s.obs.replicas),
        last_voters,
        pods: observed.pods_of(member),
        members,
    })
}

/// After the StatefulSets were applied: an Event for every StatefulSet whose
/// size changed, and the PVCs of pods that went, deleted when the policy
/// says so.
pub async fn after_apply(
    ctx: &Context,
    cx: &BuildCtx,
    oref: &ObjectReference,
    observed: &Observed,
    plans: &BTreeMap<Member, Plan>,
) -> Result<()> {
    let delete_pvcs = cx.spec.pvc_retention.on_scale_down == RetentionPolicy::Delete;
    for (member, plan) in plans {
        let Some(before) = observed.statefulsets.get(member).map(|s| s.obs.replicas) else {
            continue;
        };
        let after = plan.sts_replicas;
        let object = member.object_name(&cx.name);
        if after > before {
            let note = format!(
                "scaled StatefulSet {object} from {before} to {after} pods; each new pod \
                 waits to be added to the Raft group"
            );
            events::normal(&ctx.recorder, oref, "ScaledUp", "Scale", note).await;
        } else if after < before {
            let claims: Vec<String> = (after..before)
                .map(|o| super::apply::pvc_name(cx, *member, o as u32))
                .collect();
            if delete_pvcs {
                for claim in &claims {
                    super::apply::delete_pvc(&ctx.client, &cx.namespace, claim).await?;
                }
            }
            let note = format!(
                "scaled StatefulSet {object} from {before} to {after} pods after their \
                 members left the Raft group; PVCs {} {}",
                claims.join(", "),
                if delete_pvcs { "deleted" } else { "retained" }
            );
            events::normal(&ctx.recorder, oref, "ScaledDown", "Scale", note).await;
        }
    }
    Ok(())
}

/// Takes the planned membership step of every group.
pub async fn step_all(
    ctx: &Context,
    cx: &BuildCtx,
    oref: &ObjectReference,
    controller: &Target,
    view: Option<&ClusterView>,
    reports: &BTreeMap<u64, GroupReport>,
    plans: &BTreeMap<Member, Plan>,
) -> Progress {
    let mut progress = Progress::default();
    for (member, plan) in plans {
        let object = member.object_name(&cx.name);
        let desired = cx.desired_replicas(*member);
        let voters = plan
            .voters
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        let (target, leader) = match member {
            Member::Controller => (
                controller.clone(),
                view.and_then(|v| v.leader_address().map(str::to_string)),
            ),
            Member::Group(g) => (
                group_target(
                    &controller.key,
                    &cx.name,
                    &cx.namespace,
                    *g,
                    plan.sts_replicas,
                ),
                reports
                    .get(g)
                    .and_then(|r| r.leader.as_ref())
                    .map(|l| l.address.clone()),
            ),
        };
        match &plan.step {
            Step::Steady => {}
            Step::Waiting { message } => progress
                .resizing
                .push(format!("{object}: {voters} of {desired} voters; {message}")),
            Step::Blocked { reason, message } => progress
                .blocked
                .push(format!("{object}: {reason}: {message}")),
            Step::Add { id } => {
                let ordinal = (*id - 1) as u32;
                let address = member.pod_address(&cx.name, &cx.namespace, ordinal);
                let pod = super::apply::pod_name(cx, *member, ordinal);
                info!(%object, id, %address, "adding Raft member");
                match ctx
                    .cluster_api
                    .add_member(&target, leader.as_deref(), *id, &address)
                    .await
                {
                    Ok(members) => {
                        let now = members.iter().filter(|m| m.is_voter()).count();
                        let note = format!(
                            "added node {id} ({pod}) to {object}'s Raft group as a voter \
                             ({now} of {desired} voters)"
                        );
                        events::normal(&ctx.recorder, oref, "MemberAdded", "AddMember", note).await;
                        progress.resizing.push(format!(
                            "{object}: {now} of {desired} voters; added node {id}"
                        ));
                    }
                    Err(e) => {
                        warn!(%object, id, error = %e, "adding Raft member failed");
                        let note = format!("adding node {id} ({pod}) to {object} failed: {e}");
                        events::warning(&ctx.recorder, oref, "MemberAddFailed", "AddMember", note)
                            .await;
                        progress.blocked.push(format!(
                            "{object}: adding node {id} failed (retried next reconcile): {e}"
                        ));
                    }
                }
            }
            Step::Remove { id } => {
                info!(%object, id, "removing Raft member");
                match ctx
                    .cluster_api
                    .remove_member(&target, leader.as_deref(), *id)
                    .await
                {
                    Ok(members) => {
                        let now = members.iter().filter(|m| m.is_voter()).count();
                        let note = format!(
                            "removed node {id} from {object}'s Raft group ({now} voters left, \
                             {desired} wanted); its pod goes next"
                        );
                        events::normal(&ctx.recorder, oref, "MemberRemoved", "RemoveMember", note)
                            .await;
                        progress.resizing.push(format!(
                            "{object}: {now} of {desired} voters; removed node {id}"
                        ));
                    }
                    Err(e) => {
                        warn!(%object, id, error = %e, "removing Raft member failed");
                        let note = format!("removing node {id} from {object} failed: {e}");
                        events::warning(
                            &ctx.recorder,
                            oref,
                            "MemberRemoveFailed",
                            "RemoveMember",
                            note,
                        )
                        .await;
                        progress.blocked.push(format!(
                            "{object}: removing node {id} failed (retried next reconcile): {e}"
                        ));
                    }
                }
            }
        }
    }
    progress
}
