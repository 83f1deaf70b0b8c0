//! The operator's view of a cluster's controller and Raft groups: the calls
//! it makes (`Join`, `Leave`, `ClusterStatus` on the controller; `Status`,
//! `AddMember`, `RemoveMember` on any group's Admin service, the
//! controller's included) behind a small trait, so the reconciler can be
//! driven by the real gRPC client ([`grpc::GrpcClusterApi`]) or by a test
//! double.

pub mod grpc;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use shardline_proto::pb;

use crate::error::Result;

/// Which cluster a call is for: a stable key (for channel reuse) and the
/// controller pods' gRPC endpoints (`http://host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `namespace/name` of the ShardedCluster.
    pub key: String,
    /// Controller endpoints; any member answers.
    pub endpoints: Vec<String>,
}

/// One member of a Raft group (the controller's or a shard group's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    /// Raft node id (StatefulSet ordinal + 1).
    pub id: u64,
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
}

impl RaftMember {
    /// Leaders and followers vote; learners do not.
    pub fn is_voter(&self) -> bool {
        self.role != "learner"
    }
}

impl From<pb::Member> for RaftMember {
    fn from(m: pb::Member) -> Self {
        Self {
            id: m.id,
            address: m.address,
            role: m.role,
        }
    }
}

/// The leader of a Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLeader {
    /// Raft node id (StatefulSet ordinal + 1).
    pub id: u64,
    /// Its address, as the group knows it.
    pub address: String,
}

/// What a shard group says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// Its leader, None while it has none.
    pub leader: Option<GroupLeader>,
    /// Keys the answering member stores.
    pub key_count: u64,
    /// The group's members as the answering member knows them.
    pub members: Vec<RaftMember>,
}

/// One hot range as `ClusterStatus` reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct HotRange {
    pub gid: u64,
    pub range_id: u64,
    /// Inclusive lower routing key.
    pub start: Vec<u8>,
    /// Exclusive upper routing key; empty means unbounded.
    pub end: Vec<u8>,
    pub ops_per_sec: f64,
}

/// What `ClusterStatus` said, reduced to what the operator decides on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// Controller members and their roles.
    pub members: Vec<RaftMember>,
    /// Controller leader's node id.
    pub leader_id: Option<u64>,
    /// Controller Raft term.
    pub term: u64,
    /// Number of the latest shard-map config.
    pub config_num: u64,
    /// Groups in the latest config and their member addresses.
    pub groups: BTreeMap<u64, Vec<String>>,
    /// Ranges per owning group in the latest config (groups that left but
    /// still own ranges appear here, not in `groups`).
    pub ranges_by_group: BTreeMap<u64, u32>,
    /// Ranges in the latest config.
    pub range_count: u32,
    /// Operations per second each group's leader last reported.
    pub ops_by_group: BTreeMap<u64, f64>,
    /// Ranges above the requested hot threshold, hottest first.
    pub hot_ranges: Vec<HotRange>,
}

impl ClusterView {
    /// Reduces a `ClusterStatus` answer.
    pub fn from_pb(resp: pb::ClusterStatusResponse) -> Self {
        let latest = resp.latest.unwrap_or_default();
        let mut ranges_by_group = BTreeMap::new();
        for r in &latest.ranges {
            *ranges_by_group.entry(r.gid).or_insert(0) += 1;
        }
        Self {
            members: resp
                .members
                .into_iter()
                .map(|m| RaftMember {
                    id: m.id,
                    address: m.address,
                    role: m.role,
                })
                .collect(),
            leader_id: resp.leader_id,
            term: resp.term,
            config_num: latest.num,
            groups: latest
                .groups
                .into_iter()
                .map(|g| (g.gid, g.addresses))
                .collect(),
            range_count: latest.ranges.len() as u32,
            ranges_by_group,
            ops_by_group: resp
                .groups
                .into_iter()
                .map(|g| (g.gid, g.ops_per_sec))
                .collect(),
            hot_ranges: resp
                .hot_ranges
                .into_iter()
                .map(|r| HotRange {
                    gid: r.gid,
                    range_id: r.range_id,
                    start: r.start,
                    end: r.end,
                    ops_per_sec: r.ops_per_sec,
                })
                .collect(),
        }
    }

    /// Ranges `gid` owns.
    pub fn ranges_of(&self, gid: u64) -> u32 {
        self.ranges_by_group.get(&gid).copied().unwrap_or(0)
    }

    /// Whether `gid` is a member of the latest config.
    pub fn has_group(&self, gid: u64) -> bool {
        self.groups.contains_key(&gid)
    }

    /// Address of the controller leader.
    pub fn leader_address(&self) -> Option<&str> {
        let id = self.leader_id?;
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.address.as_str())
    }

    /// Ranges owned by groups that are not in the latest config (moving away).
    pub fn ranges_moving(&self) -> u32 {
        self.ranges_by_group
            .iter()
            .filter(|(g, _)| !self.has_group(**g))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The controller calls the operator makes. Every call is bounded by a
/// timeout in the real implementation.
pub trait ClusterApi: Send + Sync + 'static {
    /// The controller's membership, the latest config and the ranges whose
    /// load is above `hot_ops_per_sec`.
    fn cluster_status<'a>(
        &'a self,
        target: &'a Target,
        hot_ops_per_sec: f64,
    ) -> BoxFuture<'a, Result<ClusterView>>;

    /// Adds groups (with their member addresses); returns the new config num.
    fn join<'a>(
        &'a self,
        target: &'a Target,
        groups: Vec<pb::GroupMembers>,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Removes groups; their ranges move to the rest. Returns the config num.
    fn leave<'a>(&'a self, target: &'a Target, gids: Vec<u64>) -> BoxFuture<'a, Result<u64>>;

    /// One shard group's own report, asked of its members through the
    /// Admin service (`Status`): its leader and how many keys it still
    /// stores (a leaving group has handed off its data when this is 0).
    fn group_status<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<GroupReport>>;

    /// Asks the group at `target` (through its leader; `leader` is the
    /// leader's address when known) to add node `id` at `address`: as a
    /// learner, then, once caught up, as a voter. Returns the membership.
    fn add_member<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RaftMember>>>;

    /// Asks the group at `target` (through its leader) to remove node `id`.
    /// Returns the membership once the change is committed.
    fn remove_member<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
    ) -> BoxFuture<'a, Result<Vec<RaftMember>>>;

    /// Asks the group at `target` (through its leader) to hand leadership
    /// to voter `id`. Returns the term `id` leads in, once it does.
    fn transfer_leader<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Drops anything cached for the cluster (it is being deleted).
    fn forget(&self, target: &Target);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_counts_ranges_per_group() {
        let range = |id, gid| pb::Range {
            id,
            gid,
            ..Default::default()
        };
        let resp = pb::ClusterStatusResponse {
            members: vec![pb::ControllerMember {
                id: 2,
                address: "c2:7400".into(),
                role: "leader".into(),
            }],
            leader_id: Some(2),
            term: 7,
            latest: Some(pb::ShardConfig {
                num: 9,
                groups: vec![pb::GroupMembers {
                    gid: 1,
                    addresses: vec!["a".into()],
                }],
                ranges: vec![range(1, 1), range(2, 1), range(3, 2)],
                partitioning: "hash".into(),
            }),
            groups: vec![pb::GroupLoad {
                gid: 1,
                ops_per_sec: 12.5,
                ..Default::default()
            }],
            hot_ranges: vec![pb::RangeLoadStatus {
                gid: 1,
                range_id: 2,
                end: vec![0x80],
                ops_per_sec: 9000.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = ClusterView::from_pb(resp);
        assert_eq!((v.config_num, v.range_count, v.term), (9, 3, 7));
        assert_eq!((v.ranges_of(1), v.ranges_of(2), v.ranges_of(3)), (2, 1, 0));
        assert!(v.has_group(1) && !v.has_group(2));
        assert_eq!(v.ranges_moving(), 1);
        assert_eq!(v.leader_address(), Some("c2:7400"));
        assert_eq!(v.ops_by_group[&1], 12.5);
        assert_eq!(
            v.hot_ranges,
            [HotRange {
                gid: 1,
                range_id: 2,
                start: vec![],
                end: vec![0x80],
                ops_per_sec: 9000.0
            }]
        );
    }
}
