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
        })
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
