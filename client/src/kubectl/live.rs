//! The controller's live view: its `ClusterStatus` answer (members, leader,
//! term, latest config, per-group load), fetched either from an address
//! given with `--controller` or through a port-forward to the cluster's
//! controller pods, tried in ordinal order until one answers.
//!
//! Failing to get the live view is not an error of the command: the caller
//! shows the resource's status with the [`LiveError`] next to it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::Serialize;
use shardline_proto::pb;

use super::error::LiveError;
use super::portforward;
use super::resource::{Connection, ShardedCluster};
use crate::controller::{controller_stub, ControllerClient};
use crate::kv::timed;
use crate::options::ClientOptions;

/// gRPC port of controller pods (`CONTROLLER_GRPC_PORT` in the operator's
/// `names.rs`).
pub const CONTROLLER_POD_PORT: u16 = 7400;

/// The controller's answer and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveView {
    /// Who answered: `controller ADDR` or `pod NAME (port-forward)`.
    pub source: String,
    /// Raft leader of the controller group, when known.
    pub leader: Option<LiveMember>,
    pub term: u64,
    pub members: Vec<LiveMember>,
    /// Number of the latest config; `None` if the controller sent none.
    pub config_num: Option<u64>,
    /// `hash` or `range`.
    pub partitioning: Option<String>,
    /// Ranges in the latest config.
    pub range_count: usize,
    /// Groups in the latest config or with reported load, by gid.
    pub groups: Vec<LiveGroup>,
    /// The controller's hot threshold (operations per second).
    pub hot_ops_per_sec: f64,
    /// Ranges above it by fresh reports, hottest first.
    pub hot_ranges: Vec<LiveHotRange>,
}

/// A range above the hot threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveHotRange {
    pub gid: u64,
    pub range_id: u64,
    /// Inclusive lower routing key, lower-case hex (`""`: unbounded).
    pub start: String,
    /// Exclusive upper routing key, lower-case hex (`""`: unbounded).
    pub end: String,
    pub ops_per_sec: f64,
    pub keys: u64,
}

/// Lower-case hex of a routing key.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One controller member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveMember {
    pub id: u64,
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
}

/// One shard group as the controller sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveGroup {
    pub gid: u64,
    /// Member addresses in the latest config (empty if not in it).
    pub addresses: Vec<String>,
    /// Ranges owned in the latest config.
    pub range_count: u32,
    /// Load the group's leader last reported.
    pub ops_per_sec: f64,
    pub bytes: u64,
    /// Seconds since that report; `None` if it never reported.
    pub report_age_secs: Option<f64>,
}

impl LiveView {
    /// Assembles the view from a `ClusterStatus` answer. Lenient: the config
    /// is taken as sent, not validated (this is a display).
    pub fn from_response(source: String, r: &pb::ClusterStatusResponse) -> Self {
        let members: Vec<LiveMember> = r
            .members
            .iter()
            .map(|m| LiveMember {
                id: m.id,
                address: m.address.clone(),
                role: m.role.clone(),
            })
            .collect();
        let leader = r
            .leader_id
            .and_then(|id| members.iter().find(|m| m.id == id).cloned());
        let mut groups: BTreeMap<u64, LiveGroup> = BTreeMap::new();
        let empty = |gid| LiveGroup {
            gid,
            addresses: Vec::new(),
            range_count: 0,
            ops_per_sec: 0.0,
            bytes: 0,
            report_age_secs: None,
        };
        if let Some(c) = &r.latest {
            for g in &c.groups {
                groups
                    .entry(g.gid)
                    .or_insert_with(|| empty(g.gid))
                    .addresses = g.addresses.clone();
            }
            for range in &c.ranges {
                groups
                    .entry(range.gid)
                    .or_insert_with(|| empty(range.gid))
                    .range_count += 1;
            }
        }
        for load in &r.groups {
            let g = groups.entry(load.gid).or_insert_with(|| empty(load.gid));
            g.ops_per_sec = load.ops_per_sec;
            g.bytes = load.bytes;
            g.report_age_secs = load.report_age_secs;
            if r.latest.is_none() {
                g.range_count = load.range_count;
            }
        }
        LiveView {
            source,
            leader,
            term: r.term,
            members,
            config_num: r.latest.as_ref().map(|c| c.num),
            partitioning: r
                .latest
                .as_ref()
                .map(|c| c.partitioning.clone())
                .filter(|p| !p.is_empty()),
            range_count: r.latest.as_ref().map_or(0, |c| c.ranges.len()),
            groups: groups.into_values().collect(),
            hot_ops_per_sec: r.hot_ops_per_sec,
            hot_ranges: r
                .hot_ranges
                .iter()
                .map(|h| LiveHotRange {
                    gid: h.gid,
                    range_id: h.range_id,
                    start: hex(&h.start),
                    end: hex(&h.end),
                    ops_per_sec: h.ops_per_sec,
                    keys: h.keys,
                })
                .collect(),
        }
    }
}

/// Asks the controller at `address` (`host:port` or a URL), within
/// `timeout`, retries included.
pub async fn direct(address: &str, timeout: Duration) -> Result<LiveView, LiveError> {
    let target = format!("controller {address}");
    let fail = |reason: String| LiveError::Call {
        target: target.clone(),
        reason,
    };
    let opts = ClientOptions::default().with_total_timeout(timeout);
    let client = ControllerClient::connect([address], opts)
        .await
        .map_err(|e| fail(e.to_string()))?;
    // The client's total deadline bounds the call; this is a second fence.
    let status = tokio::time::timeout(timeout + Duration::from_secs(1), client.status())
        .await
        .map_err(|_| LiveError::Timeout {
            what: format!("ClusterStatus from {address}"),
            timeout,
        })?
        .map_err(|e| fail(e.to_string()))?;
    Ok(LiveView::from_response(target, &status))
}

/// Asks the cluster's controller pods through port-forwards, in ordinal
/// order, until one answers. The whole attempt is bounded by `timeout`;
/// each pod gets an equal share of what is left.
pub async fn via_port_forward(
    conn: &Connection,
    cluster: &ShardedCluster,
    timeout: Duration,
) -> Result<LiveView, LiveError> {
    let pods = cluster.controller_pods();
    if pods.is_empty() {
        return Err(LiveError::NoPods);
    }
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &cluster.namespace);
    let deadline = Instant::now() + timeout;
    let mut failures = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            failures.push(LiveError::Timeout {
                what: format!("asking pods {}", pods[i..].join(", ")),
                timeout,
            });
            break;
        }
        let budget = left / (pods.len() - i) as u32;
        match ask_pod(api.clone(), pod, budget).await {
            Ok(view) => return Ok(view),
            Err(e) => {
                tracing::debug!(%pod, error = %e, "controller pod did not answer");
                failures.push(e);
            }
        }
    }
    Err(match failures.len() {
        1 => failures.remove(0),
        _ => LiveError::AllFailed(failures),
    })
}

/// `ClusterStatus` from one pod over a port-forward, within `budget`.
async fn ask_pod(api: Api<Pod>, pod: &str, budget: Duration) -> Result<LiveView, LiveError> {
    let started = Instant::now();
    let (channel, forward_errors) =
        portforward::channel(api, pod, CONTROLLER_POD_PORT, budget).await?;
    let left = budget.saturating_sub(started.elapsed());
    let target = format!("pod {pod} (port-forward)");
    let mut stub = controller_stub(channel);
    let call = stub.cluster_status(timed(pb::ClusterStatusRequest::default(), left));
    match tokio::time::timeout(left, call).await {
        Ok(Ok(response)) => Ok(LiveView::from_response(target, response.get_ref())),
        Ok(Err(status)) => {
            let mut reason = format!("{:?}: {}", status.code(), status.message());
            if let Some(pod_said) = forward_errors.text() {
                reason = format!("{reason} ({pod_said})");
            }
            Err(LiveError::Call { target, reason })
        }
        Err(_) => Err(LiveError::Timeout {
            what: format!("ClusterStatus from {target}"),
            timeout: budget,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> pb::ClusterStatusResponse {
        pb::ClusterStatusResponse {
            members: vec![
                pb::ControllerMember {
                    id: 1,
                    address: "kv-ctrl-0.kv-ctrl.db.svc:7400".into(),
                    role: "follower".into(),
                },
                pb::ControllerMember {
                    id: 2,
                    address: "kv-ctrl-1.kv-ctrl.db.svc:7400".into(),
                    role: "leader".into(),
                },
            ],
            leader_id: Some(2),
            term: 5,
            latest: Some(pb::ShardConfig {
                num: 9,
                groups: vec![pb::GroupMembers {
                    gid: 1,
                    addresses: vec!["a:1".into()],
                }],
                ranges: (1..=3)
                    .map(|id| pb::Range {
                        id,
                        start: vec![],
                        end: vec![],
                        epoch: 0,
                        gid: 1,
                    })
                    .collect(),
                partitioning: "hash".into(),
            }),
            groups: vec![
                pb::GroupLoad {
                    gid: 1,
                    range_count: 3,
                    ops_per_sec: 12.5,
                    bytes: 100,
                    report_age_secs: Some(1.0),
                },
                pb::GroupLoad {
                    gid: 4,
                    range_count: 0,
                    ops_per_sec: 0.0,
                    bytes: 0,
                    report_age_secs: None,
                },
            ],
            hot_ranges: vec![pb::RangeLoadStatus {
                gid: 1,
                range_id: 2,
                start: vec![0x40, 0],
                end: vec![],
                ops_per_sec: 900.0,
                keys: 12,
                ..Default::default()
            }],
            hot_ops_per_sec: 500.0,
            ..Default::default()
        }
    }

    #[test]
    fn view_merges_config_and_load() {
        let v = LiveView::from_response("controller x".into(), &response());
        assert_eq!(v.leader.as_ref().map(|l| l.id), Some(2));
        assert_eq!(v.term, 5);
        assert_eq!(v.config_num, Some(9));
        assert_eq!(v.partitioning.as_deref(), Some("hash"));
        assert_eq!(v.range_count, 3);
        assert_eq!(v.groups.len(), 2);
        assert_eq!(v.groups[0].gid, 1);
        assert_eq!(v.groups[0].addresses, ["a:1"]);
        assert_eq!(v.groups[0].range_count, 3);
        assert_eq!(v.groups[0].ops_per_sec, 12.5);
        assert_eq!(
            v.groups[1].gid, 4,
            "a group with load but not in the config"
        );
        assert!(v.groups[1].addresses.is_empty());
        assert_eq!(v.hot_ops_per_sec, 500.0);
        assert_eq!(
            v.hot_ranges,
            [LiveHotRange {
                gid: 1,
                range_id: 2,
                start: "4000".into(),
                end: String::new(),
                ops_per_sec: 900.0,
                keys: 12,
            }]
        );

        let mut no_config = response();
        no_config.latest = None;
        no_config.leader_id = Some(7);
        let v = LiveView::from_response("controller x".into(), &no_config);
        assert_eq!(v.config_num, None);
        assert_eq!(v.leader, None, "a leader id no member has");
        assert_eq!(v.groups[0].range_count, 3, "from the load report");
    }
}
