//! The Raft plumbing every replicated Shardline service shares: a shard
//! group member (`shard-node`) and a controller member (`shard-controller`)
//! differ only in their state machine and client-facing services.
//!
//! Everything here is generic over the openraft type configuration through
//! [`RaftTypes`]: `u64` terms and node ids, `BasicNode { addr }` nodes,
//! openraft's default ("advanced") leader id, the standard `Entry`, the tokio
//! runtime, and a state machine whose snapshots are in-memory bytes. Log
//! entries and transport payloads are postcard-encoded serde values.
//!
//! # Layout
//! - [`store`]: the log store ([`store::LogStore`]): entries in a
//!   write-ahead log beside the member's redb file, vote and purge point in
//!   that file, which the state machine shares (table names are
//!   parameters); plus the helpers state machines use: record codec, applied-state metadata, the
//!   persisted current snapshot, and [`store::StoreError`].
//! - [`network`]: client side of the Raft transport over pooled gRPC channels.
//! - [`commit_linger`]: lets the next replication request carry a new commit
//!   instead of a commit-only request of its own.
//! - [`peer_health`]: whether replication to each peer works; logs its changes.
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

use openraft::impls::leader_id_adv;
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, EntryPayload, RaftTypeConfig};
pub use openraft_rt_tokio::TokioRuntime;

pub mod admin;
pub mod args;
pub mod bootstrap;
pub mod commit_linger;
pub mod error;
pub mod handover;
pub mod join;
pub mod lifecycle;
pub mod metrics;
pub mod network;
pub mod peer_health;
pub mod probes;
pub mod process;
pub mod raft_view;
pub mod read_index;
pub mod store;
#[cfg(test)]
mod test_types;
pub mod transport;

pub use error::{ApiError, Refusal};

/// The openraft type configurations this crate's log store serves: `u64`
/// terms and ids, [`BasicNode`] addresses, the default leader id, the
/// standard entry and tokio. A configuration opts in with an empty impl.
pub trait LogTypes:
    RaftTypeConfig<
    NodeId = NodeId,
    Node = BasicNode,
    Term = u64,
    LeaderId = LeaderId,
    Vote = Vote,
    Payload = EntryPayload<<Self as RaftTypeConfig>::D, NodeId, BasicNode>,
    Entry = openraft::Entry<LeaderId, EntryPayload<<Self as RaftTypeConfig>::D, NodeId, BasicNode>>,
    AsyncRuntime = TokioRuntime,
>
{
}

/// The type configurations of this crate's services ([`LogTypes`]) together
/// with the service's state machine (openraft 0.10's `Raft` is generic over
/// it, and snapshot data is the state machine's type): `Cursor<Vec<u8>>`
/// snapshots.
pub trait RaftTypes: LogTypes {
    /// The service's state machine.
    type StateMachine: RaftStateMachine<Self, SnapshotData = SnapshotData>;
}

/// A member's Raft handle for the configuration `C`.
pub type Raft<C> = openraft::Raft<C, <C as RaftTypes>::StateMachine>;
/// What a snapshot's bytes travel and are installed as.
pub type SnapshotData = Cursor<Vec<u8>>;
/// A snapshot: its meta and its bytes.
pub type Snapshot = openraft::Snapshot<LeaderId, NodeId, BasicNode, SnapshotData>;

pub type NodeId = u64;
/// openraft's default leader id (several leaders per term are possible, one
/// per candidate); it is also the committed leader id inside log ids.
pub type LeaderId = leader_id_adv::LeaderId<u64, NodeId>;
pub type LogId = openraft::LogId<LeaderId>;
pub type Vote = openraft::Vote<LeaderId>;
pub type StoredMembership = openraft::StoredMembership<LeaderId, NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<LeaderId, NodeId, BasicNode>;
pub type RaftMetrics<C> = openraft::RaftMetrics<C>;
/// openraft's metrics watch (`raft.metrics()`); read it through
/// [`openraft::async_runtime::watch::WatchReceiver`].
pub type MetricsWatch<C> = openraft::type_config::alias::WatchReceiverOf<C, RaftMetrics<C>>;

/// The watch of openraft's server metrics (role, leader, term, membership),
/// which changes only with those.
pub type ServerMetricsWatch<C> =
    openraft::type_config::alias::WatchReceiverOf<C, openraft::metrics::RaftServerMetrics<C>>;
