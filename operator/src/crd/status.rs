//! `ShardedCluster.status`: what the operator observed, written with
//! server-side apply to the `/status` subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::PartitioningSpec;

/// Observed state of a ShardedCluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardedClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// One-word summary: Creating, Running, Scaling, Updating, Degraded or
    /// Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Ready, Progressing and Degraded, as standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The partitioning the cluster was created with; a spec that differs is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<PartitioningSpec>,

    /// Health of the controller group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerStatus>,

    /// Health of every shard group, including groups being drained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["gid"]))]
    pub groups: Vec<GroupStatus>,

    /// Number of the latest shard-map config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_num: Option<i64>,

    /// Ranges in the latest config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_count: Option<i32>,

    /// Ranges still owned by groups that are leaving (moving away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges_moving: Option<i32>,

    /// Ranges whose load is above `spec.rebalancing.hotThresholdOpsPerSec`
    /// by their owners' recent reports, hottest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub hot_ranges: Vec<HotRangeStatus>,

    /// Shard groups that are joined and have every replica ready (the scale
    /// subresource's status replicas).
    #[serde(default)]
    pub ready_groups: i32,
}

/// Hot ranges listed in the status at most (the field's description says
/// so too).
pub const MAX_HOT_RANGES: usize = 10;

/// A range carrying more load than the hot threshold.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HotRangeStatus {
    /// Group owning the range.
    pub gid: i64,
    /// Range id in the shard map.
    pub range_id: i64,
    /// Inclusive lower routing key, lower-case hex ("" = start of the space).
    pub start: String,
    /// Exclusive upper routing key, lower-case hex ("" = end of the space).
    pub end: String,
    /// Operations per second the owning group's leader last reported.
    pub ops_per_sec: f64,
}

/// Summary phase.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Creating,
    Running,
    Scaling,
    Updating,
    Degraded,
    Terminating,
}

/// The controller group as the operator sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    /// Desired voters.
    pub replicas: i32,
    /// Voters in the Raft membership now (differs from `replicas` while a
    /// replica change is in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<i32>,
    /// Pods ready.
    pub ready_replicas: i32,
    /// Raft node id of the current leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<i64>,
    /// Address of the current leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Raft term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
    /// Whether the controller answered the last ClusterStatus call.
    pub reachable: bool,
}

/// One shard group as the operator sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Group id in the shard map (1-based; StatefulSet `<name>-g<gid>`).
    pub gid: i64,
    /// Lifecycle state.
    pub state: GroupState,
    /// Desired voters.
    pub replicas: i32,
    /// Voters in the group's Raft membership now (differs from `replicas`
    /// while a replica change is in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<i32>,
    /// Pods ready.
    pub ready_replicas: i32,
    /// Ranges the group owns in the latest config.
    pub range_count: i32,
    /// Raft node id of the group's leader (ordinal + 1), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<i64>,
    /// Address of the group's leader, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Keys the group reported storing (a leaving group is removed only once
    /// this reaches 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<i64>,
    /// Operations per second the group's leader last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_sec: Option<f64>,
}

/// Lifecycle of a shard group.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Pods starting; not yet in the shard map.
    Provisioning,
    /// Pods ready; Join sent, waiting for the shard map to list it.
    Joining,
    /// In the shard map.
    Serving,
    /// Leave sent; its ranges are moving away.
    Draining,
    /// Holds no ranges; its StatefulSet is being removed.
    Drained,
}
