//! The Shardline shard controller: the single source of truth for which
//! replica group owns which key range.
//!
//! One `shard-controller` process is one member of the controller's openraft
//! group (3 voters by default). Its core is a pure, deterministic state
//! machine over an append-only history of shard-map configs; the Raft log's
//! entries live in a write-ahead log, vote, state machine and snapshots in
//! one redb file per member, and the
//! Raft plumbing is shared with the shard nodes (`shardline_raft`). The
//! shared `Config` type lives in [`shardline_proto::shardmap`] so clients and
//! shard nodes route with it too.
//!
//! # Layout
//! - [`command`]: the fixed [`Bootstrap`] parameters and the [`Command`]s the
//!   log carries (Join, Leave, Move, Split), with their wire conversions.
//! - [`state`]: [`ControllerState`], the config history; `apply` and `query`.
//! - [`balance`]: deterministic minimal-movement rebalancing after Join/Leave.
//! - [`error`]: [`ControllerError`] and its mapping to `tonic::Status`;
//!   [`error::RunError`] for a member that cannot run.
//! - [`types`]: openraft type configuration, [`types::Proposal`] and
//!   [`types::Outcome`].
//! - [`store`]: the redb store (shared log store + config-history state
//!   machine + snapshots) and [`store::ShardMap`], the in-memory history.
//! - [`grpc`]: the `Controller` service, forwarding to the leader, watches.
//! - [`load`]: per-group and per-range load reports (soft state on the
//!   leader).
//! - [`hot`]: which ranges are hot (pure; used by `ClusterStatus`).
//! - [`metrics`]: Prometheus metrics.
//! - [`config`], [`node`]: flags and `run(args, listener, http, shutdown)`.

pub mod balance;
pub mod command;
pub mod config;
pub mod error;
pub mod grpc;
pub mod hot;
pub mod load;
pub mod metrics;
pub mod node;
pub mod state;
pub mod store;
pub mod types;

pub use command::{Bootstrap, Command, Group};
pub use error::ControllerError;
pub use state::ControllerState;
