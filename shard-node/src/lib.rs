//! A Shardline shard node: one member of one replica group.
//!
//! The Raft plumbing (log store, transport, read index, admin service,
//! bootstrap, probes) is shared with the controller in `shardline_raft`;
//! this crate holds what is particular to a shard group: its commands, its
//! state machine and the KV service.
//!
//! # Layout
//! - [`types`]: openraft type configuration and the commands of the log.
//! - [`store`]: the redb file holding log, vote, state machine, snapshots,
//!   range metadata and the client dedup table.
//! - [`grpc`]: server side of the KV service.
//! - [`proposer`]: batches concurrent writes into one log entry.
//! - [`validate`]: request checks that produce typed `InvalidArgument`s.
//! - [`metrics`]: Prometheus metrics of KV requests and Raft.
//! - [`load`]: per-range ops/s, key counts and key samples, reported to the
//!   controller by the group's leader.
//! - [`node`]: `run(args, listener, http_listener, shutdown)`.
//! - [`config`], [`error`]: flags and the node's error type.

pub mod config;
pub mod error;
pub mod grpc;
pub mod load;
pub mod metrics;
pub mod node;
pub mod proposer;
pub mod store;
pub mod types;
pub mod validate;
