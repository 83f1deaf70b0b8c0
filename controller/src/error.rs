//! Errors of the shard controller and their mapping to `tonic::Status`.
//!
//! [`RunError`] is why a member could not start or stopped abnormally.
//!
//! Every rejected command is one [`ControllerError`] variant with structured
//! fields, and a rejected command changes nothing. Errors are serde types
//! because they travel as the Raft state machine's response. The gRPC layer
//! converts them with `Status::from`: each variant has one fixed code, and
//! input errors carry the `InvalidArgument` detail naming the bad field.

use serde::{Deserialize, Serialize};
use shardline_proto::keyspace::HASH_ROUTING_KEY_LEN;
use shardline_proto::status;
use shardline_raft::store::StoreError;
use shardline_raft::ApiError;
use tonic::{Code, Status};

/// Why the controller rejected a command or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("group {gid} is not in the latest config")]
    UnknownGroup { gid: u64 },
    #[error("group {gid} has already joined")]
    GroupAlreadyJoined { gid: u64 },
    #[error("group {gid} is named more than once in the request")]
    DuplicateGroup { gid: u64 },
    #[error("group id 0 is reserved for \"no group\"")]
    ReservedGroupId,
    #[error("the request names no groups")]
    NoGroups,
    #[error("group {gid} has no member addresses")]
    EmptyGroup { gid: u64 },
    #[error("group {gid} has a bad address {address:?}: {reason}")]
    BadAddress {
        gid: u64,
        address: String,
        reason: String,
    },
    #[error("address {address:?} of group {gid} is already used by group {owner}")]
    AddressInUse {
        gid: u64,
        address: String,
        owner: u64,
    },
    #[error("range {range_id} does not exist")]
    RangeNotFound { range_id: u64 },
    #[error("range {range_id} is already owned by group {gid}")]
    RangeAlreadyOwned { range_id: u64, gid: u64 },
    #[error(
        "split key {} is outside range {range_id} [{}, {})",
        hex(.key), hex(.start), if .end.is_empty() { "end".to_string() } else { hex(.end) }
    )]
    SplitKeyOutsideRange {
        range_id: u64,
        key: Vec<u8>,
        start: Vec<u8>,
        end: Vec<u8>,
    },
    #[error("split key {} is a boundary of range {range_id}; both halves must be non-empty", hex(.key))]
    SplitKeyOnBoundary { range_id: u64, key: Vec<u8> },
    #[error("split key for range {range_id} has {len} bytes; hash-mode routing keys have {HASH_ROUTING_KEY_LEN}")]
    BadSplitKeyLength { range_id: u64, len: usize },
    #[error("split key for range {range_id} has {len} bytes; keys have at most {max}")]
    SplitKeyTooLong {
        range_id: u64,
        len: usize,
        max: usize,
    },
    #[error("leaving would remove every group while {ranges} ranges exist")]
    LeavingLastGroup { ranges: usize },
    #[error("config {num} does not exist yet (latest is {latest})")]
    ConfigNotFound { num: u64, latest: u64 },
    #[error("bad bootstrap: {reason}")]
    BadBootstrap { reason: String },
    #[error("hot threshold {threshold} is not a number >= 0")]
    BadHotThreshold { threshold: String },
}

/// Why a controller member could not start, or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("bad flag {flag}: {reason}")]
    BadFlag { flag: &'static str, reason: String },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(ApiError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("io: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<ApiError> for RunError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadFlag { flag, reason } => RunError::BadFlag { flag, reason },
            ApiError::Store(e) => RunError::Store(e),
            other => RunError::Api(other),
        }
    }
}

/// Lower-case hex of a routing key, `""` for the empty key.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ControllerError {
    /// The gRPC code of this error; fixed per variant.
    pub fn code(&self) -> Code {
        use ControllerError::*;
        match self {
            UnknownGroup { .. } | RangeNotFound { .. } => Code::NotFound,
            GroupAlreadyJoined { .. } | AddressInUse { .. } | RangeAlreadyOwned { .. } => {
                Code::AlreadyExists
            }
            LeavingLastGroup { .. } => Code::FailedPrecondition,
            ConfigNotFound { .. } => Code::OutOfRange,
            DuplicateGroup { .. }
            | ReservedGroupId
            | NoGroups
            | EmptyGroup { .. }
            | BadAddress { .. }
            | SplitKeyOutsideRange { .. }
            | SplitKeyOnBoundary { .. }
            | BadSplitKeyLength { .. }
            | SplitKeyTooLong { .. }
            | BadBootstrap { .. }
            | BadHotThreshold { .. } => Code::InvalidArgument,
        }
    }

    /// A stable snake-case name, for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        use ControllerError::*;
        match self {
            UnknownGroup { .. } => "unknown_group",
            GroupAlreadyJoined { .. } => "group_already_joined",
            DuplicateGroup { .. } => "duplicate_group",
            ReservedGroupId => "reserved_group_id",
            NoGroups => "no_groups",
            EmptyGroup { .. } => "empty_group",
            BadAddress { .. } => "bad_address",
            AddressInUse { .. } => "address_in_use",
            RangeNotFound { .. } => "range_not_found",
            RangeAlreadyOwned { .. } => "range_already_owned",
            SplitKeyOutsideRange { .. } => "split_key_outside_range",
            SplitKeyOnBoundary { .. } => "split_key_on_boundary",
            BadSplitKeyLength { .. } => "bad_split_key_length",
            SplitKeyTooLong { .. } => "split_key_too_long",
            LeavingLastGroup { .. } => "leaving_last_group",
            ConfigNotFound { .. } => "config_not_found",
            BadBootstrap { .. } => "bad_bootstrap",
            BadHotThreshold { .. } => "bad_hot_threshold",
        }
    }

    /// The request field an `InvalidArgument` error is about.
    fn field(&self) -> &'static str {
        use ControllerError::*;
        match self {
            DuplicateGroup { .. } | ReservedGroupId | NoGroups => "gid",
            EmptyGroup { .. } | BadAddress { .. } => "addresses",
            SplitKeyOutsideRange { .. }
            | SplitKeyOnBoundary { .. }
            | BadSplitKeyLength { .. }
            | SplitKeyTooLong { .. } => "key",
            BadBootstrap { .. } => "bootstrap",
            BadHotThreshold { .. } => "hot_ops_per_sec",
            _ => "",
        }
    }
}

impl From<&ControllerError> for Status {
    fn from(e: &ControllerError) -> Self {
        match e.code() {
            Code::InvalidArgument => status::invalid_argument(e.field(), e.to_string()),
            code => Status::new(code, e.to_string()),
        }
    }
}

impl From<ControllerError> for Status {
    fn from(e: ControllerError) -> Self {
        Status::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::pb::error_detail::Kind;

    #[test]
    fn each_variant_maps_to_its_code_and_input_errors_name_the_field() {
        let cases = [
            (ControllerError::UnknownGroup { gid: 4 }, Code::NotFound),
            (
                ControllerError::RangeNotFound { range_id: 9 },
                Code::NotFound,
            ),
            (
                ControllerError::GroupAlreadyJoined { gid: 1 },
                Code::AlreadyExists,
            ),
            (
                ControllerError::RangeAlreadyOwned {
                    range_id: 1,
                    gid: 2,
                },
                Code::AlreadyExists,
            ),
            (
                ControllerError::LeavingLastGroup { ranges: 8 },
                Code::FailedPrecondition,
            ),
            (
                ControllerError::ConfigNotFound { num: 7, latest: 3 },
                Code::OutOfRange,
            ),
        ];
        for (e, code) in cases {
            let s = Status::from(&e);
            assert_eq!(s.code(), code, "{e}");
            assert_eq!(s.message(), e.to_string());
        }
        let e = ControllerError::SplitKeyOnBoundary {
            range_id: 2,
            key: vec![0xab, 1],
        };
        let s = Status::from(e.clone());
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("ab01"), "{}", s.message());
        match status::detail_of(&s) {
            Some(Kind::InvalidArgument(a)) => assert_eq!(a.field, "key"),
            other => panic!("unexpected detail {other:?}"),
        }
        assert_eq!(e.kind(), "split_key_on_boundary");
    }

    #[test]
    fn outside_range_message_shows_bounds() {
        let e = ControllerError::SplitKeyOutsideRange {
            range_id: 3,
            key: vec![9],
            start: vec![1],
            end: vec![],
        };
        assert_eq!(e.to_string(), "split key 09 is outside range 3 [01, end)");
    }
}
