//! The `Admin` gRPC service of any replicated member: status, membership
//! changes (add as learner, catch up, promote; remove) and on-demand log
//! compaction. What the status reports beyond Raft state (group id,
//! partitioning, a count of stored items) comes from the service's
//! [`StatusSource`].

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use shardline_proto::pb;
use shardline_proto::pb::admin_server::Admin;
use tonic::{Request, Response, Status};
use tracing::{info, instrument};

use crate::error::ApiError;
use crate::raft_view::{RaftView, Role};
use crate::store::StoreError;
use crate::{Raft, RaftTypes};

/// How long Compact waits for the snapshot to be built.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Compact waits for the purge that follows the snapshot. A leader
/// purges only between replication rounds of every follower (with one down,
/// after its next failed attempt), so this is short and the answer says how
/// far the purge got; `Status` shows the rest.
const PURGE_WAIT: Duration = Duration::from_secs(1);
/// How long TransferLeader waits for the target to take over. The target
/// first flushes the leader's log, then wins one election round.
const TRANSFER_WAIT: Duration = Duration::from_secs(5);

/// The service-specific fields of `Admin.Status`.
pub trait StatusSource: Send + Sync + 'static {
    /// `"hash"` or `"range"`.
    fn partitioning(&self) -> String;
    /// Items held by the state machine (keys of a shard group, configs of
    /// the controller's history).
    fn item_count(&self) -> Result<u64, StoreError>;
}

pub struct AdminService<C: RaftTypes, S> {
    pub raft: Raft<C>,
    pub source: S,
    pub group_id: u64,
    /// This member's advertised address.
    pub address: String,
}

/// The members of `view` in wire form.
pub fn members_of(view: &RaftView) -> Vec<pb::Member> {
    view.members
        .iter()
        .map(|m| pb::Member {
            id: m.id,
            address: m.address.clone(),
            role: m.role.as_str().to_string(),
            matched_index: m.matched_index,
        })
        .collect()
}

impl<C: RaftTypes, S> AdminService<C, S> {
    fn view(&self) -> RaftView {
        RaftView::from_metrics(&self.raft.metrics().borrow_watched())
    }

    fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }
}

#[tonic::async_trait]
impl<C: RaftTypes, S: StatusSource> Admin for AdminService<C, S> {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let v = self.view();
        let key_count = self.source.item_count().map_err(ApiError::from)?;
        Ok(Response::new(pb::StatusResponse {
            node_id: v.id,
            group_id: self.group_id,
            address: self.address.clone(),
            state: v.state_str().to_string(),
            term: v.term,
            leader_id: v.leader_id,
            leader_addr: v.leader_addr.clone().unwrap_or_default(),
            commit_index: v.commit_index,
            last_applied: v.last_applied,
            last_log_index: v.last_log_index,
            snapshot_index: v.snapshot_index,
            purged_index: v.purged_index,
            members: members_of(&v),
            partitioning: self.source.partitioning(),
            key_count,
        }))
    }

    #[instrument(skip_all, fields(node_id = request.get_ref().node_id, address = %request.get_ref().address))]
    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = request.into_inner();
        if req.node_id == 0 || req.address.is_empty() {
            return Err(ApiError::InvalidArgument {
                field: "node_id/address",
                reason: "both are required".into(),
            }
            .into());
        }
        let v = self.view();
        if let Some(existing) = v.members.iter().find(|m| m.id == req.node_id) {
            if existing.address != req.address {
                return Err(ApiError::InvalidArgument {
                    field: "node_id",
                    reason: format!(
                        "node {} is already a member at {}",
                        req.node_id, existing.address
                    ),
                }
                .into());
            }
        }
        // Learner first (blocking: returns once it has caught up), then voter.
        self.raft
            .add_learner(
                req.node_id,
                BasicNode {
                    addr: req.address.clone(),
                },
                true,
            )
            .await
            .map_err(|e| ApiError::from_write(e, self.term()))?;
        let voters: BTreeSet<u64> = [req.node_id].into();
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(|e| ApiError::from_write(e, self.term()))?;
        info!("member added as voter");
        Ok(Response::new(pb::MembershipResponse {
            members: members_of(&self.view()),
        }))
    }

    #[instrument(skip_all, fields(node_id = request.get_ref().node_id))]
    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let id = request.into_inner().node_id;
        let v = self.view();
        let Some(member) = v.members.iter().find(|m| m.id == id) else {
            return Err(ApiError::InvalidArgument {
                field: "node_id",
                reason: format!("node {id} is not a member"),
            }
            .into());
        };
        let ids: BTreeSet<u64> = [id].into();
        let change = if member.role == Role::Learner {
            ChangeMembers::RemoveNodes(ids)
        } else {
            ChangeMembers::RemoveVoters(ids)
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| ApiError::from_write(e, self.term()))?;
        info!("member removed");
        Ok(Response::new(pb::MembershipResponse {
            members: members_of(&self.view()),
        }))
    }

    #[instrument(skip_all)]
    async fn compact(
        &self,
        _: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let target = self.view().last_applied;
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ApiError::Raft(e.to_string()))?;
        let m = self
            .raft
            .wait(Some(COMPACT_TIMEOUT))
            .metrics(
                |m| m.snapshot.map(|s| s.index).unwrap_or(0) >= target,
                "snapshot covers applied index",
            )
            .await
            .map_err(|e| ApiError::Raft(format!("waiting for snapshot: {e}")))?;
        let snapshot_index = m.snapshot.map(|s| s.index).unwrap_or(0);
        self.raft
            .trigger()
            .purge_log(snapshot_index)
            .await
            .map_err(|e| ApiError::Raft(e.to_string()))?;
        // A leader purges once no replication task reads those entries; wait
        // for that a bounded time and report how far the purge got.
        let purged = |m: &crate::RaftMetrics<C>| m.purged.map(|p| p.index).unwrap_or(0);
        let purged_index = match self
            .raft
            .wait(Some(PURGE_WAIT))
            .metrics(
                |m| purged(m) >= snapshot_index,
                "log purged up to the snapshot",
            )
            .await
        {
            Ok(m) => purged(&m),
            Err(_) => purged(&self.raft.metrics().borrow_watched()),
        };
        info!(snapshot_index, purged_index, "compacted");
        Ok(Response::new(pb::CompactResponse {
            snapshot_index,
            purged_index,
        }))
    }

    #[instrument(skip_all, fields(target = request.get_ref().node_id))]
    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let target = request.into_inner().node_id;
        let v = self.view();
        if !v.is_leader() {
            return Err(ApiError::forward(v.leader_id, v.leader_addr.clone(), v.term).into());
        }
        if target == v.id {
            return Ok(Response::new(pb::TransferLeaderResponse {
                leader_id: v.id,
                term: v.term,
            }));
        }
        if !v
            .members
            .iter()
            .any(|m| m.id == target && m.role != Role::Learner)
        {
            return Err(ApiError::InvalidArgument {
                field: "node_id",
                reason: format!("node {target} is not a voter of this group"),
            }
            .into());
        }
        self.raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| ApiError::Raft(e.to_string()))?;
        let m = self
            .raft
            .wait(Some(TRANSFER_WAIT))
            .metrics(|m| m.current_leader == Some(target), "the target leads")
            .await
            .map_err(|e| {
                ApiError::TimedOut(format!(
                    "leadership did not move to node {target} within {TRANSFER_WAIT:?}: {e}"
                ))
            })?;
        info!(term = m.current_term, "leadership transferred");
        Ok(Response::new(pb::TransferLeaderResponse {
            leader_id: target,
            term: m.current_term,
        }))
    }
}
