//! Errors of a shard node and their mapping onto gRPC statuses.
//!
//! Handlers return [`NodeError`]; the conversion into `tonic::Status` is the
//! single place where an internal error becomes a wire error with a stable
//! code and a typed detail (see `shardline_proto::status`).

use shardline_proto::status;
use shardline_raft::{ApiError, Refusal};
use tonic::Status;

use crate::store::StoreError;

/// A shard node's errors: the shared Raft services' [`ApiError`] (not
/// leader, no leader, invalid argument, storage, ...) plus what only a shard
/// node fails with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Api(#[from] ApiError),

    #[error("write seq {seq} was already applied and forgotten (client floor {floor})")]
    DuplicateExpired { seq: u64, floor: u64 },

    #[error("io: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl NodeError {
    /// Short stable label for metrics (`result` label of request counters).
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::Api(e) => e.kind(),
            NodeError::DuplicateExpired { .. } => "duplicate_expired",
            NodeError::Io { .. } => "io",
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        NodeError::Api(ApiError::Store(e))
    }
}

impl From<Refusal> for NodeError {
    fn from(r: Refusal) -> Self {
        NodeError::Api(r.into())
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::Api(e) => e.into(),
            NodeError::DuplicateExpired { seq, floor } => status::with_detail(
                tonic::Code::FailedPrecondition,
                format!("write seq {seq} is below the session floor {floor}; its result is gone"),
                shardline_proto::pb::error_detail::Kind::DuplicateExpired(
                    shardline_proto::pb::DuplicateExpired { seq, floor },
                ),
            ),
            other => Status::internal(other.to_string()),
        }
    }
}
