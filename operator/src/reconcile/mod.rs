//! The reconcile loop: one `ShardedCluster` at a time, idempotent.
//!
//! [`reconcile`] wraps the work in kube-runtime's finalizer so deletion runs
//! [`cleanup`] before the object goes. [`apply_cluster`] validates the spec
//! (a bad spec stops there: Degraded, a Warning Event, nothing touched),
//! observes the StatefulSets, pods, the controller's view and each group's
//! own report (leader, members, keys), applies every owned object with
//! server-side apply, carries out the scale plan (Join, Leave, delete after
//! the drain), one membership step per Raft group whose `replicas` changed
//! ([`members`]) and one rollout step per Raft group not changing size, then
//! writes the status and requeues explicitly.

pub mod apply;
pub mod events;
pub mod members;
pub mod observe;
pub mod status;
pub mod trigger;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_real;
#[cfg(test)]
mod tests_real_replicas;
#[cfg(test)]
mod tests_replicas;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use shardline_proto::pb;
use tracing::{info, instrument, warn};

use crate::builders::BuildCtx;
use crate::cluster_api::{ClusterApi, ClusterView, GroupLeader, Target};
use crate::crd::{GroupState, RetentionPolicy, ShardedCluster};
use crate::decide::rollout::{self, RolloutStep};
use crate::decide::{conditions, scale, validation};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::{self, Member};

/// How soon to look again.
#[derive(Debug, Clone, Copy)]
pub struct Requeue {
    /// While something is in motion (creating, joining, draining, rolling).
    pub busy: Duration,
    /// When everything is as desired (or the spec is refused).
    pub steady: Duration,
    /// After a failed reconcile.
    pub error: Duration,
}

impl Default for Requeue {
    fn default() -> Self {
        Self {
            busy: Duration::from_secs(10),
            steady: Duration::from_secs(300),
            error: Duration::from_secs(15),
        }
    }
}

/// Shared state of the reconcile loop.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The controller calls (real gRPC, or a test double).
    pub cluster_api: Arc<dyn ClusterApi>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Requeue intervals.
    pub requeue: Requeue,
    /// Leadership moves that failed in a row, per Raft group.
    pub move_failures: MoveFailures,
}

/// Failed leadership moves in a row before a rollout restarts the leader
/// anyway (each is retried on the next pass).
pub const MAX_LEADER_MOVE_ATTEMPTS: u32 = 3;

/// Counts consecutive failed leadership moves per Raft group (keyed
/// `namespace/object`). In memory: an operator restart starts the count
/// again, which only delays the restart it bounds.
#[derive(Default)]
pub struct MoveFailures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl MoveFailures {
    /// Records a failure; returns how many in a row.
    fn failed(&self, key: &str) -> u32 {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }

    fn clear(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The controller target (endpoints of every controller pod) of a cluster.
pub fn target_of(cluster: &ShardedCluster) -> Target {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    Target {
        key: format!("{ns}/{name}"),
        endpoints: names::controller_endpoints(&name, &ns, cluster.spec.controller.replicas),
    }
}

/// Entry point for kube-runtime's Controller.
#[instrument(skip_all, fields(cluster = %cluster.name_any(), namespace = cluster.namespace().unwrap_or_default()))]
pub async fn reconcile(cluster: Arc<ShardedCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    let ns = cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<ShardedCluster> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, names::FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(c) => apply_cluster(c, ctx.clone()).await,
            Finalizer::Cleanup(c) => cleanup(c, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Called by the Controller when [`reconcile`] fails.
pub fn error_policy(cluster: Arc<ShardedCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    ctx.metrics.reconcile_failed(error.metric_label());
    Action::requeue(ctx.requeue.error)
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Brings the cluster's objects and the controller's membership towards the
/// spec, one safe step at a time.
pub async fn apply_cluster(cluster: Arc<ShardedCluster>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = cluster.name_any();
    let oref = cluster.object_ref(&());
    let generation = cluster.metadata.generation;
    let prev = cluster.status.clone().unwrap_or_default();

    if let Err(problem) = validation::validate(&name, &cluster.spec, cluster.status.as_ref()) {
        warn!(reason = problem.reason, message = %problem.message, "spec refused");
        events::warning(
            &ctx.recorder,
            &oref,
            problem.reason,
            "Validate",
            problem.message.clone(),
        )
        .await;
        let (phase, updates) = conditions::invalid_spec(&problem, &prev.conditions);
        let st = status::with_conditions(prev, phase, &updates, generation, &now());
        status::patch(&ctx.client, &ns, &name, &st).await?;
        return Ok(Action::requeue(ctx.requeue.steady));
    }

    let mut cx = BuildCtx::new(&cluster)?;
    let observed = observe::observe(&ctx.client, &ns, &name).await?;
    cx.initial_replicas = observed
        .statefulsets
        .iter()
        .map(|(m, s)| (*m, s.initial_replicas))
        .collect();
    let target = target_of(&cluster);
    let ctrl = observed
        .statefulsets
        .get(&Member::Controller)
        .map(|s| s.obs)
        .unwrap_or_default();
    // A ready controller pod knows its leader, so the controller can answer
    // (a quorum of the spec's size is not required: while the controller
    // grows, the new pods are not ready until they have been added).
    let view = if ctrl.ready_replicas >= 1 {
        let hot = f64::from(cx.spec.rebalancing.hot_threshold_ops_per_sec);
        match ctx.cluster_api.cluster_status(&target, hot).await {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(error = %e, "controller did not answer ClusterStatus");
                None
            }
        }
    } else {
        None
    };
    // Every group with a ready pod reports on itself: its leader (status,
    // rollouts), its members (replica changes) and the keys it still stores
    // (drain decisions). Every pod it has is asked, new ones included.
    let answering: BTreeMap<u64, i32> = observed
        .groups()
        .iter()
        .filter(|(_, s)| s.ready_replicas > 0)
        .map(|(g, s)| (*g, s.replicas.max(cx.spec.groups.replicas)))
        .collect();
    let reports = observe::group_reports(
        ctx.cluster_api.as_ref(),
        &target.key,
        &name,
        &ns,
        &answering,
    )
    .await;
    let key_counts: BTreeMap<u64, u64> = reports.iter().map(|(g, r)| (*g, r.key_count)).collect();
    let leaders: BTreeMap<u64, GroupLeader> = reports
        .iter()
        .filter_map(|(g, r)| r.leader.clone().map(|l| (*g, l)))
        .collect();
    let plan = scale::plan(
        cx.spec.groups.count,
        cx.spec.groups.replicas,
        &observed.groups(),
        view.as_ref(),
        &key_counts,
    );
    let serving: Vec<u64> = plan
        .states
        .iter()
        .filter(|(_, s)| **s == GroupState::Serving)
        .map(|(g, _)| *g)
        .collect();
    // Replica changes: groups that stay are resized; draining groups keep
    // the size they have.
    let staying: Vec<u64> = plan
        .keep
        .iter()
        .copied()
        .filter(|g| {
            !matches!(
                plan.states.get(g),
                Some(GroupState::Draining | GroupState::Drained)
            )
        })
        .collect();
    let resize = members::plan_all(&cx, &observed, view.as_ref(), &reports, &staying, &prev);
    for (member, state) in &observed.statefulsets {
        cx.sts_replicas.insert(*member, state.obs.replicas);
    }
    for (member, p) in &resize {
        cx.sts_replicas.insert(*member, p.sts_replicas);
    }

    apply::apply_all(&ctx.client, &cx, &plan.keep).await?;
    members::after_apply(&ctx, &cx, &oref, &observed, &resize).await?;
    let new_members = std::iter::once(Member::Controller)
        .chain(plan.keep.iter().map(|g| Member::Group(*g)))
        .filter(|m| !observed.statefulsets.contains_key(m))
        .map(|m| m.object_name(&name))
        .collect::<Vec<_>>();
    if !new_members.is_empty() {
        let note = format!("created StatefulSets {}", new_members.join(", "));
        events::normal(&ctx.recorder, &oref, "Created", "Create", note).await;
    }

    if !plan.join.is_empty() {
        let groups = plan
            .join
            .iter()
            .map(|g| pb::GroupMembers {
                gid: *g,
                addresses: Member::Group(*g)
                    .peers(&name, &ns, cx.spec.groups.replicas)
                    .into_iter()
                    .map(|p| p.1)
                    .collect(),
            })
            .collect();
        match ctx.cluster_api.join(&target, groups).await {
            Ok(num) => {
                if !plan.reverted.is_empty() {
                    let note = format!(
                        "groups {:?} rejoined while draining (config {num})",
                        plan.reverted
                    );
                    events::normal(&ctx.recorder, &oref, "ScaleDownReverted", "Join", note).await;
                }
                let note = format!("groups {:?} joined the shard map (config {num})", plan.join);
                events::normal(&ctx.recorder, &oref, "Joined", "Join", note).await;
            }
            Err(e) => {
                let note = format!("joining groups {:?} failed: {e}", plan.join);
                events::warning(&ctx.recorder, &oref, "JoinFailed", "Join", note).await;
                return Err(e);
            }
        }
    }
    if !plan.leave.is_empty() {
        match ctx.cluster_api.leave(&target, plan.leave.clone()).await {
            Ok(num) => {
                let note = format!(
                    "groups {:?} left the shard map (config {num}); their ranges are moving",
                    plan.leave
                );
                events::normal(&ctx.recorder, &oref, "Draining", "Leave", note).await;
            }
            Err(e) => {
                let note = format!("leaving groups {:?} failed: {e}", plan.leave);
                events::warning(&ctx.recorder, &oref, "LeaveFailed", "Leave", note).await;
                return Err(e);
            }
        }
    }
    let delete_pvcs = cx.spec.pvc_retention.on_scale_down == RetentionPolicy::Delete;
    for gid in &plan.delete {
        apply::delete_group(&ctx.client, &cx, *gid, delete_pvcs).await?;
        let pvcs = if delete_pvcs { "deleted" } else { "retained" };
        let note = format!(
            "group {gid} holds no ranges and no keys; removed its StatefulSet (PVCs {pvcs})"
        );
        events::normal(&ctx.recorder, &oref, "Drained", "Delete", note).await;
    }

    let progress =
        members::step_all(&ctx, &cx, &oref, &target, view.as_ref(), &reports, &resize).await;

    // A group changing size is not rolled at the same time.
    let stable: Vec<u64> = serving
        .iter()
        .copied()
        .filter(|g| {
            !resize
                .get(&Member::Group(*g))
                .is_some_and(|p| p.in_progress())
        })
        .collect();
    let controller_stable = !resize
        .get(&Member::Controller)
        .is_some_and(|p| p.in_progress());
    let rolling = roll(
        &ctx,
        &cx,
        &oref,
        &target,
        &observed,
        (controller_stable, stable.as_slice()),
        view.as_ref(),
        &leaders,
    )
    .await?;

    let (st, health) = status::build(&status::StatusInput {
        cluster: &cluster,
        observed: &observed,
        view: view.as_ref(),
        plan: &plan,
        group_reports: &reports,
        rolling,
        resize: &resize,
        progress: &progress,
    });
    let (phase, updates) = conditions::evaluate(&health);
    let st = status::with_conditions(st, phase, &updates, generation, &now());
    if conditions::is_true(&st.conditions, conditions::READY)
        && !conditions::is_true(&prev.conditions, conditions::READY)
    {
        events::normal(
            &ctx.recorder,
            &oref,
            "Ready",
            "Reconcile",
            "every group is serving".into(),
        )
        .await;
    }
    if let Some(d) = st
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::DEGRADED && c.status == "True")
    {
        if !conditions::is_true(&prev.conditions, conditions::DEGRADED) {
            events::warning(
                &ctx.recorder,
                &oref,
                &d.reason,
                "Reconcile",
                d.message.clone(),
            )
            .await;
        }
    }
    status::patch(&ctx.client, &ns, &name, &st).await?;
    let busy = plan.in_motion()
        || !health.rolling.is_empty()
        || !health.resizing.is_empty()
        || !health.resize_blocked.is_empty()
        || !conditions::is_true(&st.conditions, conditions::READY);
    Ok(Action::requeue(if busy {
        ctx.requeue.busy
    } else {
        ctx.requeue.steady
    }))
}

/// Takes at most one rollout step per Raft group (the controller when
/// `with_controller`, and `serving` groups); returns the groups still
/// rolling.
#[allow(clippy::too_many_arguments)]
async fn roll(
    ctx: &Context,
    cx: &BuildCtx,
    oref: &k8s_openapi::api::core::v1::ObjectReference,
    controller_target: &Target,
    observed: &observe::Observed,
    (with_controller, serving): (bool, &[u64]),
    view: Option<&ClusterView>,
    leaders: &BTreeMap<u64, GroupLeader>,
) -> Result<Vec<String>> {
    let ordinal = |id: u64| u32::try_from(id).ok()?.checked_sub(1);
    let mut rolling = Vec::new();
    let groups = serving.iter().map(|g| Member::Group(*g));
    let controller = with_controller.then_some(Member::Controller);
    for member in controller.into_iter().chain(groups) {
        let Some(sts) = observed.statefulsets.get(&member) else {
            continue;
        };
        let replicas = cx.sts_replicas(member);
        let leader = match member {
            Member::Controller => view.and_then(|v| v.leader_id).and_then(ordinal),
            Member::Group(g) => leaders.get(&g).and_then(|l| ordinal(l.id)),
        };
        let object = member.object_name(&cx.name);
        let move_key = format!("{}/{object}", cx.namespace);
        match rollout::next_step(
            replicas,
            sts.update_revision.as_deref(),
            observed.pods_of(member),
            leader,
        ) {
            RolloutStep::UpToDate => {}
            RolloutStep::Wait { .. } => rolling.push(object),
            RolloutStep::MoveLeader { from, to, outdated } => {
                let (target, leader_addr) = match member {
                    Member::Controller => (
                        controller_target.clone(),
                        view.and_then(|v| v.leader_address().map(str::to_string)),
                    ),
                    Member::Group(g) => (
                        observe::group_target(
                            &controller_target.key,
                            &cx.name,
                            &cx.namespace,
                            g,
                            replicas,
                        ),
                        leaders.get(&g).map(|l| l.address.clone()),
                    ),
                };
                let (old, new) = (
                    apply::pod_name(cx, member, from),
                    apply::pod_name(cx, member, to),
                );
                info!(%object, %old, %new, "moving leadership before a restart");
                match ctx
                    .cluster_api
                    .transfer_leader(&target, leader_addr.as_deref(), u64::from(to) + 1)
                    .await
                {
                    Ok(term) => {
                        ctx.move_failures.clear(&move_key);
                        let note = format!(
                            "moved {object}'s leadership from {old} to {new} (term {term}) \
                             before restarting {old}"
                        );
                        events::normal(&ctx.recorder, oref, "LeaderMoved", "Roll", note).await;
                    }
                    Err(e) => {
                        // Retried on the next passes; after that, restart
                        // anyway: the group elects a new leader as it would
                        // after any failure of the leader.
                        let n = ctx.move_failures.failed(&move_key);
                        warn!(%object, %old, error = %e, attempt = n, "moving leadership failed");
                        let give_up = n >= MAX_LEADER_MOVE_ATTEMPTS;
                        let then = if give_up {
                            "restarting it anyway, the group elects a new leader".to_string()
                        } else {
                            format!(
                                "attempt {n} of {MAX_LEADER_MOVE_ATTEMPTS}, retried on the next pass"
                            )
                        };
                        let note =
                            format!("moving {object}'s leadership off {old} failed ({e}); {then}");
                        events::warning(&ctx.recorder, oref, "LeaderMoveFailed", "Roll", note)
                            .await;
                        if give_up {
                            ctx.move_failures.clear(&move_key);
                            restart(ctx, cx, oref, member, from, outdated, replicas).await?;
                        }
                    }
                }
                rolling.push(object);
            }
            RolloutStep::Restart { ordinal, outdated } => {
                ctx.move_failures.clear(&move_key);
                restart(ctx, cx, oref, member, ordinal, outdated, replicas).await?;
                rolling.push(object);
            }
        }
    }
    Ok(rolling)
}

/// Deletes pod `ordinal` of `member` so its StatefulSet recreates it at the
/// new revision, and records it.
async fn restart(
    ctx: &Context,
    cx: &BuildCtx,
    oref: &k8s_openapi::api::core::v1::ObjectReference,
    member: Member,
    ordinal: u32,
    outdated: usize,
    replicas: i32,
) -> Result<()> {
    let pod = apply::pod_name(cx, member, ordinal);
    info!(%pod, outdated, "rolling restart");
    apply::restart_pod(&ctx.client, &cx.namespace, &pod).await?;
    let note = format!("restarted {pod} to update it ({outdated} of {replicas} pods outdated)");
    events::normal(&ctx.recorder, oref, "RollingRestart", "Roll", note).await;
    Ok(())
}

/// Runs before the ShardedCluster goes: owned objects are garbage-collected
/// through their owner references; PVCs (which the StatefulSets retain) are
/// deleted only when `pvcRetention.onDelete` is `Delete`.
pub async fn cleanup(cluster: Arc<ShardedCluster>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = cluster.name_any();
    let delete_pvcs = cluster.spec.pvc_retention.on_delete == RetentionPolicy::Delete;
    if delete_pvcs {
        apply::delete_pvcs_matching(&ctx.client, &ns, &names::instance_selector(&name)).await?;
    }
    ctx.cluster_api.forget(&target_of(&cluster));
    let note = format!(
        "cluster deleted; PVCs {}",
        if delete_pvcs { "deleted" } else { "retained" }
    );
    events::normal(
        &ctx.recorder,
        &cluster.object_ref(&()),
        "Deleted",
        "Cleanup",
        note,
    )
    .await;
    info!(cluster = %name, delete_pvcs, "cleanup done");
    Ok(Action::await_change())
}

/// Runs the Controller over every namespace until `shutdown` resolves.
pub async fn run_controller(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let clusters = Api::<ShardedCluster>::all(ctx.client.clone());
    let owned = Api::<StatefulSet>::all(ctx.client.clone());
    let managed = format!("{}={}", names::LABEL_MANAGED_BY, names::FIELD_MANAGER);
    // Every pass patches the status (key counts, ops/s change with traffic):
    // unfiltered, each patch would trigger the next pass at once.
    let (reader, writer) = kube::runtime::reflector::store();
    let triggers = watcher(clusters, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger::not_status, Default::default());
    Controller::for_stream(triggers, reader)
        .owns(owned, watcher::Config::default().labels(&managed))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}
