//! Writes: server-side apply of every owned object, the deletions of a
//! drained group (StatefulSet, Services, PDB, and PVCs when the retention
//! policy says so), and the PVC of a member removed by a replica change.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info};

use crate::builders::{config_map, pdb, service, statefulset, BuildCtx};
use crate::error::{Error, Result};
use crate::names::{self, Member};

/// Applies `obj` with the operator's field manager, taking ownership of
/// conflicting fields.
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name of an owned object"))?;
    debug!(kind = K::kind(&()).as_ref(), %name, "apply");
    api.patch(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(Error::kube("server-side apply"))
}

/// Applies the objects of one member group: headless Service, StatefulSet
/// and (for more than one replica) PDB.
pub async fn apply_member(client: &Client, cx: &BuildCtx, member: Member) -> Result<()> {
    apply(client, &cx.namespace, &service::headless(cx, member)).await?;
    apply(client, &cx.namespace, &statefulset::statefulset(cx, member)).await?;
    if let Some(p) = pdb::pdb(cx, member) {
        apply(client, &cx.namespace, &p).await?;
    }
    Ok(())
}

/// Applies every object the cluster needs: ConfigMap, controller group,
/// client Service, and the groups in `groups`.
pub async fn apply_all(client: &Client, cx: &BuildCtx, groups: &[u64]) -> Result<()> {
    apply(client, &cx.namespace, &config_map::config_map(cx)).await?;
    apply_member(client, cx, Member::Controller).await?;
    apply(client, &cx.namespace, &service::client(cx)).await?;
    for gid in groups {
        apply_member(client, cx, Member::Group(*gid)).await?;
    }
    Ok(())
}

async fn delete_if_present<K>(client: &Client, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete")(e)),
    }
}

/// Deletes a drained group's StatefulSet, headless Service and PDB; and its
/// PVCs when `delete_pvcs`.
pub async fn delete_group(
    client: &Client,
    cx: &BuildCtx,
    gid: u64,
    delete_pvcs: bool,
) -> Result<()> {
    let member = Member::Group(gid);
    let name = member.object_name(&cx.name);
    info!(cluster = %cx.name, %name, delete_pvcs, "deleting drained group");
    delete_if_present::<StatefulSet>(client, &cx.namespace, &name).await?;
    delete_if_present::<Service>(client, &cx.namespace, &name).await?;
    delete_if_present::<PodDisruptionBudget>(client, &cx.namespace, &name).await?;
    if delete_pvcs {
        let selector = member
            .selector_labels(&cx.name)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        delete_pvcs_matching(client, &cx.namespace, &selector).await?;
    }
    Ok(())
}

/// Deletes every PVC matching `selector`.
pub async fn delete_pvcs_matching(client: &Client, namespace: &str, selector: &str) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    api.delete_collection(
        &DeleteParams::background(),
        &ListParams::default().labels(selector),
    )
    .await
    .map_err(Error::kube("delete pvcs"))?;
    Ok(())
}

/// Deletes one pod so its StatefulSet recreates it at the new revision.
pub async fn restart_pod(client: &Client, namespace: &str, pod: &str) -> Result<()> {
    delete_if_present::<Pod>(client, namespace, pod).await
}

/// Deletes one PVC (absent is fine).
pub async fn delete_pvc(client: &Client, namespace: &str, name: &str) -> Result<()> {
    delete_if_present::<PersistentVolumeClaim>(client, namespace, name).await
}

/// Name of the data PVC of the pod at `ordinal` of a member group (the
/// StatefulSet names claims `<template>-<pod>`).
pub fn pvc_name(cx: &BuildCtx, member: Member, ordinal: u32) -> String {
    format!(
        "{}-{}",
        crate::builders::pod::DATA_VOLUME,
        pod_name(cx, member, ordinal)
    )
}

/// Name of the pod at `ordinal` of a member group.
pub fn pod_name(cx: &BuildCtx, member: Member, ordinal: u32) -> String {
    format!("{}-{ordinal}", member.object_name(&cx.name))
}
