//! Shardline's wire protocol and the key-space types every crate shares.
//!
//! # Layout
//! - [`pb`]: code generated from `proto/shardline/v1/*.proto` (gRPC services
//!   `Kv`, `Admin`, `RaftTransport` and their messages).
//! - [`status`]: typed error details carried inside a `tonic::Status`.
//! - [`keyspace`]: partitioning modes, routing keys and key ranges.
//! - [`limits`]: the size limits servers enforce and clients can check early.

pub mod keyspace;
pub mod limits;
pub mod status;

/// Generated protobuf and gRPC code for package `shardline.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("shardline.v1");
}
