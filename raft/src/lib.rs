//! The Raft plumbing every replicated Shardline service shares: a shard
//! group member (`shard-node`) and a controller member (`shard-controller`)
//! differ only in their state machine and client-facing services.
//!
//! Everything here is generic over the openraft type configuration through
//! [`RaftTypes`]: `u64` node ids, `BasicNode { addr }` nodes, the standard
//! `Entry`, in-memory snapshot bytes and the tokio runtime. Log entries and
//! transport payloads are postcard-encoded serde values.
//!
//! # Layout
//! - [`store`]: the redb log store ([`store::LogStore`]), shared by a member's
//!   state machine in ONE redb file (table names are parameters), plus the
//!   helpers state machines use: record codec, applied-state metadata, the
//!   persisted current snapshot, and [`store::StoreError`].
//! - [`network`]: client side of the Raft transport over pooled gRPC channels.
//! - [`transport`]: server side of the Raft transport.
//! - [`raft_view`]: a plain view of Raft state for status, metrics, probes.
//! - [`read_index`]: batched linearizable-read barriers.
//! - [`admin`]: the `Admin` gRPC service (status, add/remove member, compact).
//! - [`join`], [`bootstrap`]: initialize a new group or join a running one.
//! - [`args`]: the Raft flags both binaries share ([`args::RaftArgs`]).
//! - [`metrics`], [`probes`]: Raft gauges and the `/metrics`, `/healthz`,
//!   `/readyz` HTTP endpoints.
//! - [`error`]: [`ApiError`], what the shared services answer with.
//! - [`lifecycle`]: the stop signal, probe server and ordered drain both
//!   servers share.
//! - [`process`]: logging set-up, the shutdown signal, and the gRPC
//!   listener with `TCP_NODELAY` on accepted connections.

use std::io::Cursor;

use openraft::raft::responder::OneshotResponder;
use openraft::{BasicNode, RaftTypeConfig, TokioRuntime};

pub mod admin;
pub mod args;
pub mod bootstrap;
pub mod error;
pub mod join;
pub mod lifecycle;
pub mod metrics;
pub mod network;
pub mod probes;
pub mod process;
pub mod raft_view;
pub mod read_index;
pub mod store;
pub mod transport;

pub use error::{ApiError, Refusal};

/// The openraft type configurations this crate serves: `u64` ids,
/// [`BasicNode`] addresses, the standard entry, `Cursor<Vec<u8>>` snapshots,
/// tokio and oneshot responders (blocking `client_write`). Implemented for every matching `RaftTypeConfig`.
pub trait RaftTypes:
    RaftTypeConfig<
    NodeId = u64,
    Node = BasicNode,
    Entry = openraft::Entry<Self>,
    SnapshotData = Cursor<Vec<u8>>,
    AsyncRuntime = TokioRuntime,
    Responder = OneshotResponder<Self>,
>
{
}

impl<C> RaftTypes for C where
    C: RaftTypeConfig<
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<C>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
        Responder = OneshotResponder<C>,
    >
{
}

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;
