//! The one error type of the client library.
//!
//! Like etcd's client guide, it separates two kinds of failure: the cluster
//! *answered* and said no ([`ClientError::InvalidArgument`],
//! [`ClientError::WrongGroup`], [`ClientError::DuplicateExpired`],
//! [`ClientError::Rejected`]) — retrying the same request will not help — and
//! the cluster *could not be reached or could not decide in time*
//! ([`ClientError::Unavailable`], [`ClientError::DeadlineExceeded`]) — the
//! library already retried within its budget; a write's outcome is then
//! unknown, and retrying it with the same header is safe.

use std::time::Duration;

use shardline_proto::pb::error_detail::Kind;
use shardline_proto::status::detail_of;
use tonic::{Code, Status};

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint was configured.
    #[error("no endpoints given")]
    NoEndpoints,

    /// An endpoint could not be parsed as a gRPC address.
    #[error("invalid endpoint {address:?}: {reason}")]
    InvalidEndpoint { address: String, reason: String },

    /// The playground file could not be read.
    #[error("playground file {}: {reason}", path.display())]
    PlaygroundFile {
        path: std::path::PathBuf,
        reason: String,
    },

    /// The request is malformed (checked locally before sending, or reported
    /// by the server). Never retried.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// The key is not served by the group that was asked.
    #[error("{address}: key not served by this group (config {config_num})")]
    WrongGroup { address: String, config_num: u64 },

    /// A retried write whose result the server already forgot, because the
    /// session acknowledged `seq` (it was below the session's ack floor).
    #[error(
        "write seq {seq} was already acknowledged and forgotten by the server (ack floor {floor})"
    )]
    DuplicateExpired { seq: u64, floor: u64 },

    /// The server answered with a status the library does not retry.
    #[error("{address}: {code:?}: {message}")]
    Rejected {
        address: String,
        code: Code,
        message: String,
    },

    /// Every attempt failed with a retryable error and the retry budget
    /// (attempt count) ran out.
    #[error("{op} failed after {attempts} attempts in {elapsed:?}; last error from {last_address}: {last_error}")]
    Unavailable {
        op: &'static str,
        attempts: u32,
        elapsed: Duration,
        last_address: String,
        last_error: String,
    },

    /// The call's total deadline passed before any attempt succeeded.
    #[error("{op} timed out after {elapsed:?} ({attempts} attempts); last error from {last_address}: {last_error}")]
    DeadlineExceeded {
        op: &'static str,
        attempts: u32,
        elapsed: Duration,
        last_address: String,
        last_error: String,
    },
}

impl ClientError {
    /// Whether the cluster could not be reached or could not decide in time
    /// (as opposed to answering "no").
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Unavailable { .. } | ClientError::DeadlineExceeded { .. }
        )
    }

    /// Maps a non-retryable server status from `address` to an error,
    /// reading its typed detail.
    pub(crate) fn from_status(address: &str, status: &Status) -> Self {
        match detail_of(status) {
            Some(Kind::InvalidArgument(a)) => ClientError::InvalidArgument {
                field: a.field,
                reason: a.reason,
            },
            Some(Kind::WrongGroup(w)) => ClientError::WrongGroup {
                address: address.to_string(),
                config_num: w.config_num,
            },
            Some(Kind::DuplicateExpired(d)) => ClientError::DuplicateExpired {
                seq: d.seq,
                floor: d.floor,
            },
            _ if status.code() == Code::InvalidArgument => ClientError::InvalidArgument {
                field: "request".to_string(),
                reason: status.message().to_string(),
            },
            _ => ClientError::Rejected {
                address: address.to_string(),
                code: status.code(),
                message: status.message().to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::status as st;

    #[test]
    fn typed_details_become_structured_errors() {
        let e = ClientError::from_status("a:1", &st::invalid_argument("key", "empty"));
        assert!(matches!(e, ClientError::InvalidArgument { ref field, .. } if field == "key"));
        let e = ClientError::from_status("a:1", &Status::internal("boom"));
        assert!(matches!(
            e,
            ClientError::Rejected {
                code: Code::Internal,
                ..
            }
        ));
        assert!(!e.is_unavailable());
    }
}
