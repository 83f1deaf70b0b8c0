//! Shardline's wire protocol and the key-space types every crate shares.
//!
//! # Layout
//! - [`pb`]: code generated from `proto/shardline/v1/*.proto` (gRPC services
//!   `Kv`, `Admin`, `RaftTransport` and their messages).
//! - [`status`]: typed error details carried inside a `tonic::Status`.
//! - [`keyspace`]: partitioning modes, routing keys and key ranges.
//! - [`limits`]: the size limits servers enforce and clients can check early.
//! - [`shardmap`]: the shard map `Config` (which group owns which range),
//!   its wire conversions and key routing.
//! - [`placement`]: consistent-hash ring and rendezvous hashing, and a report
//!   measuring their spread and key movement.

pub mod keyspace;
pub mod limits;
pub mod placement;
pub mod shardmap;
pub mod status;

/// Generated protobuf and gRPC code for package `shardline.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("shardline.v1");
}
