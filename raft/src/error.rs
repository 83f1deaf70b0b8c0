//! [`ApiError`]: what the shared Raft services (read index, admin, join and
//! bootstrap) fail with, and its mapping onto gRPC statuses with typed
//! details. Services built on this crate convert it into their own error
//! type or straight into a `tonic::Status`.

use openraft::errors::{ClientWriteError, RaftError};
use shardline_proto::status;
use tonic::Status;

use crate::store::StoreError;
use crate::{NodeId, RaftTypes};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad flag {flag}: {reason}")]
    BadFlag { flag: &'static str, reason: String },

    #[error("storage: {0}")]
    Store(#[from] StoreError),

    #[error("not leader (leader {leader_id:?} at {leader_addr:?})")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },

    #[error("no leader known (term {term})")]
    NoLeader { term: u64 },

    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    #[error("raft: {0}")]
    Raft(String),

    #[error("shutting down")]
    ShuttingDown,

    #[error("timed out: {0}")]
    TimedOut(String),

    #[error("join via {addr} failed: {reason}")]
    Join { addr: String, reason: String },
}

impl ApiError {
    /// Short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadFlag { .. } => "bad_flag",
            ApiError::Store(_) => "storage",
            ApiError::NotLeader { .. } => "not_leader",
            ApiError::NoLeader { .. } => "no_leader",
            ApiError::InvalidArgument { .. } => "invalid_argument",
            ApiError::Raft(_) => "raft",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::TimedOut(_) => "timed_out",
            ApiError::Join { .. } => "join",
        }
    }

    /// `NotLeader` when the leader is known, else `NoLeader` in `term`.
    pub fn forward(leader_id: Option<NodeId>, leader_addr: Option<String>, term: u64) -> Self {
        Refusal::forward(leader_id, leader_addr, term).into()
    }

    /// Maps a failed membership change or client write: "forward to leader"
    /// becomes `NotLeader`/`NoLeader`, anything else `Raft`.
    pub fn from_write<C: RaftTypes>(e: RaftError<C, ClientWriteError<C>>, term: u64) -> Self {
        Refusal::from_write(e, term).into()
    }
}

/// Why Raft turned a write or a read barrier down, in a form cheap to clone
/// for every waiter of a batch (proposal batching, batched read index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotLeader {
        leader_id: NodeId,
        leader_addr: Option<String>,
    },
    NoLeader {
        term: u64,
    },
    Failed(String),
}

impl Refusal {
    /// `NotLeader` when the leader is known, else `NoLeader` in `term`.
    pub fn forward(leader_id: Option<NodeId>, leader_addr: Option<String>, term: u64) -> Self {
        match leader_id {
            Some(leader_id) => Refusal::NotLeader {
                leader_id,
                leader_addr,
            },
            None => Refusal::NoLeader { term },
        }
    }

    /// A failed client write or membership change: "forward to leader"
    /// becomes `NotLeader`/`NoLeader`, anything else `Failed`.
    ///
    /// openraft 0.10's `LogEntryDiscarded` is mapped like "forward to
    /// leader", as openraft 0.9 answered the same event: this member's
    /// proposed entry was truncated by a new leader (that entry can no longer
    /// commit) or purged under an installed snapshot (its outcome is
    /// unknown). Writes carrying a client session are applied at most once,
    /// so retrying them at the leader is safe either way.
    pub fn from_write<C: RaftTypes>(e: RaftError<C, ClientWriteError<C>>, term: u64) -> Self {
        match e {
            RaftError::APIError(
                ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f),
            ) => Refusal::forward(f.leader_id, f.leader_node.map(|n| n.addr), term),
            other => Refusal::Failed(other.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotLeader {
                leader_id,
                leader_addr,
            } => ApiError::NotLeader {
                leader_id: Some(leader_id),
                leader_addr,
            },
            Refusal::NoLeader { term } => ApiError::NoLeader { term },
            Refusal::Failed(msg) => ApiError::Raft(msg),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::NotLeader {
                leader_id,
                leader_addr,
            } => status::not_leader(leader_id, leader_addr),
            ApiError::NoLeader { term } => status::no_leader(term),
            ApiError::InvalidArgument { field, reason } => status::invalid_argument(field, reason),
            ApiError::ShuttingDown => Status::unavailable("member is shutting down"),
            ApiError::TimedOut(what) => Status::deadline_exceeded(what),
            other => Status::internal(other.to_string()),
        }
    }
}
