//! The `ShardedCluster` resource as the plugin sees it: a Kubernetes client
//! built from the kubeconfig flags, one `GET` of the object as a
//! [`DynamicObject`], and the part of its `.status` that is shown.
//!
//! The client never depends on the operator crate, so the status types here
//! are a tolerant mirror of `operator/src/crd/status.rs` (same JSON field
//! names): every field is optional or defaulted, and enums (`phase`, a
//! group's `state`) are kept as strings, so a newer operator's status still
//! parses.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

use super::error::{source_text, KubectlError};

/// API group of the resource.
pub const GROUP: &str = "shardline.dev";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the resource.
pub const KIND: &str = "ShardedCluster";
/// Plural (the URL path segment) of the resource.
pub const PLURAL: &str = "shardedclusters";

/// Controller voters when neither the spec nor the status says (the CRD's
/// default).
pub const DEFAULT_CONTROLLER_REPLICAS: i32 = 3;

/// Where the Kubernetes API is, from kubectl-style flags.
#[derive(Debug, Clone, Default)]
pub struct KubeTarget {
    /// `--kubeconfig`: this file instead of `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: this context instead of the current one.
    pub context: Option<String>,
    /// `-n`: this namespace instead of the context's (or `default`).
    pub namespace: Option<String>,
}

/// A Kubernetes client and the namespace to look in.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// The namespace the resource is read from (and pods forwarded to).
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

/// Builds a client from the flags. Every request it makes is bounded by
/// `timeout` (connect, read and write).
pub async fn connect(target: &KubeTarget, timeout: Duration) -> Result<Connection, KubectlError> {
    let config_err = |reason: String| KubectlError::Config { reason };
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| config_err(format!("{}: {e}", path.display())))?
        }
        // A named context only exists in a kubeconfig file.
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| config_err(e.to_string()))?,
        // Kubeconfig, else the in-cluster service account.
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| config_err(e.to_string()))?,
    };
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| config_err(e.to_string()))?;
    Ok(Connection {
        client,
        namespace,
        server,
    })
}

/// The `ApiResource` of `ShardedCluster`, without discovery.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// Reads `ShardedCluster` `name`, within `timeout`.
pub async fn get(
    conn: &Connection,
    name: &str,
    timeout: Duration,
) -> Result<ShardedCluster, KubectlError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(conn.client.clone(), &conn.namespace, &api_resource());
    let namespace = conn.namespace.clone();
    let object = match tokio::time::timeout(timeout, api.get(name)).await {
        Err(_) => {
            return Err(KubectlError::Unreachable {
                server: conn.server.clone(),
                reason: format!("no answer within {timeout:?}"),
            })
        }
        Ok(Ok(object)) => object,
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
            // A missing object's Status names it; an unknown resource type's
            // (no CRD installed) does not.
            let crd_missing = status.details.as_ref().is_none_or(|d| d.name.is_empty());
            if crd_missing {
                return Err(KubectlError::Api {
                    namespace,
                    name: name.to_string(),
                    code: 404,
                    reason: status.reason.clone(),
                    message: format!("{} (is the ShardedCluster CRD installed?)", status.message),
                });
            }
            return Err(KubectlError::NotFound {
                namespace,
                name: name.to_string(),
            });
        }
        Ok(Err(kube::Error::Api(status))) => {
            return Err(KubectlError::Api {
                namespace,
                name: name.to_string(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            })
        }
        Ok(Err(kube::Error::SerdeError(e))) => {
            return Err(KubectlError::Malformed {
                namespace,
                name: name.to_string(),
                reason: e.to_string(),
            })
        }
        Ok(Err(e @ (kube::Error::HyperError(_) | kube::Error::Service(_)))) => {
            return Err(KubectlError::Unreachable {
                server: conn.server.clone(),
                reason: source_text(&e),
            })
        }
        Ok(Err(e)) => {
            return Err(KubectlError::Request {
                namespace,
                name: name.to_string(),
                reason: source_text(&e),
            })
        }
    };
    ShardedCluster::from_object(&object, &namespace)
}

/// One `ShardedCluster`: identity, the spec fields the plugin needs, and the
/// status. Serializes as the `resource` document of `-o json`: `name`,
/// `namespace`, `generation`, then the status fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardedCluster {
    pub name: String,
    pub namespace: String,
    /// `metadata.generation`: compare with `observedGeneration`.
    pub generation: Option<i64>,
    /// `spec.controller.replicas`: how many controller pods to try.
    #[serde(skip)]
    pub controller_replicas: Option<i32>,
    #[serde(flatten)]
    pub status: ResourceStatus,
}

impl ShardedCluster {
    /// Reads the parts shown from a dynamic object.
    pub fn from_object(object: &DynamicObject, namespace: &str) -> Result<Self, KubectlError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let status = match object.data.get("status") {
            None | Some(serde_json::Value::Null) => ResourceStatus::default(),
            Some(s) => ResourceStatus::deserialize(s).map_err(|e| KubectlError::Malformed {
                namespace: namespace.to_string(),
                name: name.clone(),
                reason: format!("status: {e}"),
            })?,
        };
        let controller_replicas = object
            .data
            .pointer("/spec/controller/replicas")
            .and_then(serde_json::Value::as_i64)
            .and_then(|r| i32::try_from(r).ok());
        Ok(ShardedCluster {
            name,
            namespace: object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string()),
            generation: object.metadata.generation,
            controller_replicas,
            status,
        })
    }

    /// Names of the controller pods (`<name>-ctrl-<ordinal>`, the operator's
    /// StatefulSet naming), in ordinal order.
    pub fn controller_pods(&self) -> Vec<String> {
        let replicas = self
            .controller_replicas
            .or(self.status.controller.as_ref().map(|c| c.replicas))
            .unwrap_or(DEFAULT_CONTROLLER_REPLICAS)
            .max(0);
        (0..replicas)
            .map(|o| format!("{}-ctrl-{o}", self.name))
            .collect()
    }
}

/// `ShardedCluster.status`, the fields `kubectl shardline status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceStatus {
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,
    /// Creating, Running, Scaling, Updating, Degraded or Terminating.
    pub phase: Option<String>,
    /// Ready, Progressing and Degraded.
    pub conditions: Vec<Condition>,
    /// The partitioning the cluster was created with.
    pub partitioning: Option<Partitioning>,
    /// The controller group as the operator saw it.
    pub controller: Option<ControllerHealth>,
    /// Every shard group, including groups being drained.
    pub groups: Vec<GroupHealth>,
    /// Number of the latest shard-map config.
    pub config_num: Option<i64>,
    /// Ranges in the latest config.
    pub range_count: Option<i32>,
    /// Ranges still owned by groups that are leaving.
    pub ranges_moving: Option<i32>,
    /// Ranges above the hot threshold, hottest first.
    pub hot_ranges: Vec<HotRange>,
    /// Groups joined with every replica ready.
    pub ready_groups: i32,
}

/// A standard condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Option<String>,
}

/// `status.partitioning`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Partitioning {
    /// `hash` or `range`.
    pub mode: Option<String>,
    pub initial_ranges: Option<i32>,
}

/// `status.controller`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ControllerHealth {
    pub replicas: i32,
    pub ready_replicas: i32,
    pub leader_id: Option<i64>,
    pub leader: Option<String>,
    pub term: Option<i64>,
    /// Whether the controller answered the operator's last ClusterStatus.
    pub reachable: bool,
}

/// One entry of `status.hotRanges`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HotRange {
    pub gid: i64,
    pub range_id: i64,
    /// Inclusive lower routing key, lower-case hex (`""`: unbounded).
    pub start: String,
    /// Exclusive upper routing key, lower-case hex (`""`: unbounded).
    pub end: String,
    pub ops_per_sec: f64,
}

/// One entry of `status.groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupHealth {
    pub gid: i64,
    /// Provisioning, Joining, Serving, Draining or Drained.
    pub state: String,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// Ranges the group owns in the latest config.
    pub range_count: i32,
    pub leader_id: Option<i64>,
    pub leader: Option<String>,
    pub key_count: Option<i64>,
    pub ops_per_sec: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn status_parses_tolerantly() {
        let o = object(json!({
            "apiVersion": "shardline.dev/v1alpha1", "kind": "ShardedCluster",
            "metadata": {"name": "kv", "namespace": "db", "generation": 4},
            "spec": {"controller": {"replicas": 5}, "groups": {"count": 2}},
            "status": {
                "observedGeneration": 3, "phase": "Scaling", "readyGroups": 1,
                "conditions": [{"type": "Ready", "status": "False", "reason": "GroupsNotReady",
                                "message": "1/2 groups ready", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
                "groups": [{"gid": 1, "state": "Serving", "replicas": 3, "readyReplicas": 3,
                            "rangeCount": 16, "leaderId": 2, "futureField": true},
                           {"gid": 2, "state": "SomeNewState"}],
                "configNum": 7, "rangeCount": 16,
                "hotRanges": [{"gid": 1, "rangeId": 4, "start": "4000000000000000",
                               "end": "5000000000000000", "opsPerSec": 950.5}],
            }
        }));
        let c = ShardedCluster::from_object(&o, "ignored").unwrap();
        assert_eq!(c.name, "kv");
        assert_eq!(c.namespace, "db");
        assert_eq!(c.generation, Some(4));
        assert_eq!(c.status.observed_generation, Some(3));
        assert_eq!(c.status.phase.as_deref(), Some("Scaling"));
        assert_eq!(c.status.conditions[0].type_, "Ready");
        assert_eq!(c.status.groups[0].leader_id, Some(2));
        assert_eq!(c.status.groups[1].state, "SomeNewState");
        assert_eq!(c.status.groups[1].replicas, 0);
        assert_eq!(c.status.ranges_moving, None);
        assert_eq!(c.status.hot_ranges[0].range_id, 4);
        assert_eq!(c.status.hot_ranges[0].ops_per_sec, 950.5);
        assert_eq!(c.controller_pods().len(), 5);
        assert_eq!(c.controller_pods()[0], "kv-ctrl-0");

        let doc = serde_json::to_value(&c).unwrap();
        assert_eq!(doc["name"], "kv");
        assert_eq!(doc["configNum"], 7);
        assert_eq!(doc["rangesMoving"], serde_json::Value::Null);
        assert_eq!(doc["conditions"][0]["type"], "Ready");
        assert!(doc.get("controllerReplicas").is_none());
    }

    #[test]
    fn missing_status_is_empty_and_bad_status_is_an_error() {
        let bare = object(json!({
            "apiVersion": "shardline.dev/v1alpha1", "kind": "ShardedCluster",
            "metadata": {"name": "kv"}, "spec": {},
        }));
        let c = ShardedCluster::from_object(&bare, "db").unwrap();
        assert_eq!(c.namespace, "db");
        assert_eq!(c.status, ResourceStatus::default());
        assert_eq!(
            c.controller_pods(),
            ["kv-ctrl-0", "kv-ctrl-1", "kv-ctrl-2"],
            "the CRD default of 3 voters"
        );

        let from_status = object(json!({
            "apiVersion": "shardline.dev/v1alpha1", "kind": "ShardedCluster",
            "metadata": {"name": "kv"}, "spec": {},
            "status": {"controller": {"replicas": 1, "readyReplicas": 1, "reachable": true}},
        }));
        let c = ShardedCluster::from_object(&from_status, "db").unwrap();
        assert_eq!(c.controller_pods(), ["kv-ctrl-0"]);

        let bad = object(json!({
            "apiVersion": "shardline.dev/v1alpha1", "kind": "ShardedCluster",
            "metadata": {"name": "kv"}, "status": {"groups": "not a list"},
        }));
        let e = ShardedCluster::from_object(&bad, "db").unwrap_err();
        assert!(matches!(e, KubectlError::Malformed { .. }), "{e}");
    }

    #[test]
    fn api_resource_points_at_the_crd() {
        let ar = api_resource();
        assert_eq!(ar.api_version, "shardline.dev/v1alpha1");
        assert_eq!(ar.plural, "shardedclusters");
        assert_eq!(ar.kind, "ShardedCluster");
    }
}
