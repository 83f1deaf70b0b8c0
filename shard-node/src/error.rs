//! Errors of a shard node and their mapping onto gRPC statuses.
//!
//! Handlers return [`NodeError`]; the conversion into `tonic::Status` is the
//! single place where an internal error becomes a wire error with a stable
//! code and a typed detail (see `shardline_proto::status`).

use shardline_proto::status;
use shardline_raft::ApiError;
use tonic::Status;

use crate::store::StoreError;
use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
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

    #[error("write seq {seq} was already applied and forgotten (client floor {floor})")]
    DuplicateExpired { seq: u64, floor: u64 },

    #[error("raft: {0}")]
    Raft(String),

    #[error("shutting down")]
    ShuttingDown,

    #[error("io: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("join via {addr} failed: {reason}")]
    Join { addr: String, reason: String },
}

impl NodeError {
    /// Short stable label for metrics (`result` label of request counters).
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::BadFlag { .. } => "bad_flag",
            NodeError::Store(_) => "storage",
            NodeError::NotLeader { .. } => "not_leader",
            NodeError::NoLeader { .. } => "no_leader",
            NodeError::InvalidArgument { .. } => "invalid_argument",
            NodeError::DuplicateExpired { .. } => "duplicate_expired",
            NodeError::Raft(_) => "raft",
            NodeError::ShuttingDown => "shutting_down",
            NodeError::Io { .. } => "io",
            NodeError::Join { .. } => "join",
        }
    }
}

impl From<ApiError> for NodeError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadFlag { flag, reason } => NodeError::BadFlag { flag, reason },
            ApiError::Store(e) => NodeError::Store(e),
            ApiError::NotLeader {
                leader_id,
                leader_addr,
            } => NodeError::NotLeader {
                leader_id,
                leader_addr,
            },
            ApiError::NoLeader { term } => NodeError::NoLeader { term },
            ApiError::InvalidArgument { field, reason } => {
                NodeError::InvalidArgument { field, reason }
            }
            ApiError::Raft(msg) => NodeError::Raft(msg),
            ApiError::ShuttingDown => NodeError::ShuttingDown,
            ApiError::Join { addr, reason } => NodeError::Join { addr, reason },
        }
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::NotLeader {
                leader_id,
                leader_addr,
            } => status::not_leader(leader_id, leader_addr),
            NodeError::NoLeader { term } => status::no_leader(term),
            NodeError::InvalidArgument { field, reason } => status::invalid_argument(field, reason),
            NodeError::DuplicateExpired { seq, floor } => status::with_detail(
                tonic::Code::FailedPrecondition,
                format!("write seq {seq} is below the session floor {floor}; its result is gone"),
                shardline_proto::pb::error_detail::Kind::DuplicateExpired(
                    shardline_proto::pb::DuplicateExpired { seq, floor },
                ),
            ),
            NodeError::ShuttingDown => Status::unavailable("member is shutting down"),
            other => Status::internal(other.to_string()),
        }
    }
}
