//! A plain snapshot of one member's Raft state, derived from openraft's
//! metrics, shared by status RPCs, metrics and readiness.

use openraft::ServerState;

use crate::{NodeId, RaftMetrics, RaftTypes};

/// Role of a member in the group's membership, as reported by `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Learner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberView {
    pub id: NodeId,
    pub address: String,
    pub role: Role,
    /// Replicated index on that member (known only on the leader).
    pub matched_index: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RaftView {
    pub id: NodeId,
    pub state: ServerState,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub leader_addr: Option<String>,
    pub last_log_index: u64,
    pub last_applied: u64,
    /// On the leader: the highest index matched by a quorum of voters. On
    /// others: the applied index (a lower bound of the commit index).
    pub commit_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub members: Vec<MemberView>,
    pub healthy: bool,
}

impl RaftView {
    pub fn is_leader(&self) -> bool {
        self.state == ServerState::Leader
    }

    pub fn from_metrics<C: RaftTypes>(m: &RaftMetrics<C>) -> Self {
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let leader = m.current_leader;
        let matched = |id: NodeId| -> Option<u64> {
            let repl = m.replication.as_ref()?;
            if Some(id) == leader && m.state == ServerState::Leader {
                return m.last_log_index;
            }
            repl.get(&id).map(|l| l.map(|l| l.index).unwrap_or(0))
        };
        let members: Vec<MemberView> = membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                address: node.addr.clone(),
                role: if Some(*id) == leader {
                    Role::Leader
                } else if voters.contains(id) {
                    Role::Follower
                } else {
                    Role::Learner
                },
                matched_index: matched(*id),
            })
            .collect();
        let last_applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        let commit_index = if m.state == ServerState::Leader {
            // Highest index that a majority of voters has matched.
            let mut idx: Vec<u64> = voters.iter().map(|id| matched(*id).unwrap_or(0)).collect();
            idx.sort_unstable_by(|a, b| b.cmp(a));
            idx.get(voters.len() / 2)
                .copied()
                .unwrap_or(last_applied)
                .max(last_applied)
        } else {
            last_applied
        };
        let leader_addr = leader.and_then(|l| membership.get_node(&l).map(|n| n.addr.clone()));
        RaftView {
            id: m.id,
            state: m.state,
            term: m.current_term,
            leader_id: leader,
            leader_addr,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied,
            commit_index,
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            members,
            healthy: m.running_state.is_ok(),
        }
    }

    pub fn state_str(&self) -> &'static str {
        match self.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
    }
}
