//! Pure functions from a ShardedCluster to the Kubernetes objects it owns.
//!
//! Nothing here talks to the API server; the reconciler applies what these
//! return with server-side apply. Every object carries the cluster's labels
//! and a controller owner reference, so Kubernetes garbage-collects them with
//! the ShardedCluster.

pub mod config_map;
pub mod pdb;
pub mod pod;
pub mod service;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::{ShardedCluster, ShardedClusterSpec};
use crate::error::{Error, Result};
use crate::names::Member;

/// What every builder needs to know about the cluster.
#[derive(Debug, Clone)]
pub struct BuildCtx {
    /// ShardedCluster name (prefix of every object name).
    pub name: String,
    /// Namespace of the cluster and everything it owns.
    pub namespace: String,
    /// Controller owner reference to the ShardedCluster.
    pub owner: OwnerReference,
    /// The spec being realized.
    pub spec: ShardedClusterSpec,
    /// Hash of the ConfigMap's data, stamped on pod templates so a settings
    /// change rolls the pods.
    pub config_hash: String,
    /// Voters each Raft group was created with (its `--peers`), from its
    /// StatefulSet; a group missing here is new and starts with the spec's
    /// replicas. Kept so the pod template never changes with `replicas`.
    pub initial_replicas: BTreeMap<Member, i32>,
    /// StatefulSet sizes decided for this reconcile (see
    /// [`crate::decide::membership`]); a group missing here gets the spec's
    /// replicas.
    pub sts_replicas: BTreeMap<Member, i32>,
}

impl BuildCtx {
    /// Context for `cluster`, which must come from the API server (it needs
    /// a namespace and a uid for the owner reference).
    pub fn new(cluster: &ShardedCluster) -> Result<Self> {
        let namespace = cluster
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let owner = cluster
            .controller_owner_ref(&())
            .ok_or(Error::MissingField("metadata.uid"))?;
        let spec = cluster.spec.clone();
        let name = cluster.name_any();
        let config_hash = config_map::data_hash(&config_map::data(&name, &spec));
        Ok(Self {
            name,
            namespace,
            owner,
            spec,
            config_hash,
            initial_replicas: BTreeMap::new(),
            sts_replicas: BTreeMap::new(),
        })
    }

    /// Voters wanted by the spec.
    pub fn desired_replicas(&self, member: Member) -> i32 {
        match member {
            Member::Controller => self.spec.controller.replicas,
            Member::Group(_) => self.spec.groups.replicas,
        }
    }

    /// Voters the group was created with.
    pub fn initial_replicas(&self, member: Member) -> i32 {
        self.initial_replicas
            .get(&member)
            .copied()
            .unwrap_or_else(|| self.desired_replicas(member))
    }

    /// The StatefulSet size to apply.
    pub fn sts_replicas(&self, member: Member) -> i32 {
        self.sts_replicas
            .get(&member)
            .copied()
            .unwrap_or_else(|| self.desired_replicas(member))
    }

    /// Metadata for an owned object.
    pub fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A BuildCtx for builder unit tests.
    use super::*;

    pub fn cluster(groups: i32, replicas: i32) -> ShardedCluster {
        let spec: ShardedClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "shardline:test",
            "groups": {"count": groups, "replicas": replicas},
        }))
        .expect("spec");
        let mut c = ShardedCluster::new("kv", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c.metadata.generation = Some(1);
        c
    }

    pub fn ctx(groups: i32, replicas: i32) -> BuildCtx {
        BuildCtx::new(&cluster(groups, replicas)).expect("ctx")
    }
}

/// Every object a freshly created cluster gets, in apply order: ConfigMap,
/// controller group, client Service, then groups `1..=count` (headless
/// Service, StatefulSet, PDB each). Used by `shardline-operator render`.
pub fn initial_objects(cx: &BuildCtx) -> Result<Vec<serde_json::Value>> {
    let mut out = vec![serde_json::to_value(config_map::config_map(cx))?];
    let member = |out: &mut Vec<serde_json::Value>, m: Member| -> Result<()> {
        out.push(serde_json::to_value(service::headless(cx, m))?);
        out.push(serde_json::to_value(statefulset::statefulset(cx, m))?);
        if let Some(p) = pdb::pdb(cx, m) {
            out.push(serde_json::to_value(p)?);
        }
        Ok(())
    };
    member(&mut out, Member::Controller)?;
    out.push(serde_json::to_value(service::client(cx))?);
    for g in 1..=cx.spec.groups.count.max(0) as u64 {
        member(&mut out, Member::Group(g))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::test_support::ctx;
    use super::*;

    #[test]
    fn initial_objects_in_apply_order() {
        let objs = initial_objects(&ctx(2, 3)).unwrap();
        let names: Vec<String> = objs
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "ConfigMap/kv-config",
                "Service/kv-ctrl",
                "StatefulSet/kv-ctrl",
                "PodDisruptionBudget/kv-ctrl",
                "Service/kv",
                "Service/kv-g1",
                "StatefulSet/kv-g1",
                "PodDisruptionBudget/kv-g1",
                "Service/kv-g2",
                "StatefulSet/kv-g2",
                "PodDisruptionBudget/kv-g2",
            ]
        );
        assert!(objs.iter().all(|o| o["apiVersion"].is_string()));
    }
}
