//! Typed error details inside `tonic::Status`.
//!
//! Servers build a status with [`with_detail`]; clients recover the typed
//! detail with [`detail_of`]. The detail is an encoded [`pb::ErrorDetail`] in
//! the status `details` bytes, so it survives any gRPC proxy.

use prost::Message;
use tonic::{Code, Status};

use crate::pb::{self, error_detail::Kind};

/// Builds a status with `code`, a human `message`, and a typed detail.
pub fn with_detail(code: Code, message: impl Into<String>, kind: Kind) -> Status {
    let detail = pb::ErrorDetail { kind: Some(kind) };
    Status::with_details(code, message, detail.encode_to_vec().into())
}

/// The typed detail of `status`, if it carries one.
pub fn detail_of(status: &Status) -> Option<Kind> {
    if status.details().is_empty() {
        return None;
    }
    pb::ErrorDetail::decode(status.details())
        .ok()
        .and_then(|d| d.kind)
}

/// `NotLeader`: this member is not the leader; `leader_addr` may be empty.
pub fn not_leader(leader_id: Option<u64>, leader_addr: Option<String>) -> Status {
    let msg = match &leader_addr {
        Some(a) if !a.is_empty() => format!(
            "not leader; leader is node {} at {a}",
            leader_id.unwrap_or(0)
        ),
        _ => "not leader; leader unknown".to_string(),
    };
    with_detail(
        Code::FailedPrecondition,
        msg,
        Kind::NotLeader(pb::NotLeader {
            leader_id: leader_id.unwrap_or(0),
            leader_addr: leader_addr.unwrap_or_default(),
        }),
    )
}

/// `Unavailable` with a `NoLeader` detail: no leader is known right now.
pub fn no_leader(term: u64) -> Status {
    with_detail(
        Code::Unavailable,
        format!("no leader known (term {term})"),
        Kind::NoLeader(pb::NoLeader { term }),
    )
}

/// `InvalidArgument` naming the offending field.
pub fn invalid_argument(field: &str, reason: impl Into<String>) -> Status {
    let reason = reason.into();
    with_detail(
        Code::InvalidArgument,
        format!("invalid {field}: {reason}"),
        Kind::InvalidArgument(pb::InvalidArgument {
            field: field.to_string(),
            reason,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_round_trips_through_status() {
        let s = not_leader(Some(2), Some("127.0.0.1:7402".into()));
        assert_eq!(s.code(), Code::FailedPrecondition);
        match detail_of(&s) {
            Some(Kind::NotLeader(nl)) => {
                assert_eq!(nl.leader_id, 2);
                assert_eq!(nl.leader_addr, "127.0.0.1:7402");
            }
            other => panic!("unexpected detail {other:?}"),
        }
        let s = invalid_argument("key", "empty");
        assert!(matches!(detail_of(&s), Some(Kind::InvalidArgument(a)) if a.field == "key"));
        assert!(detail_of(&Status::internal("x")).is_none());
    }
}
