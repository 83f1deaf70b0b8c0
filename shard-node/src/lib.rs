//! A Shardline shard node: one member of one replica group.
//!
//! # Layout
//! - [`types`]: openraft type configuration and the commands of the log.
//! - [`store`]: the redb file holding log, vote, state machine, snapshots,
//!   range metadata and the client dedup table.
//! - [`network`]: client side of the Raft transport (pooled gRPC channels).
//! - [`grpc`]: server side of the KV, admin and Raft services.
//! - [`validate`]: request checks that produce typed `InvalidArgument`s.
//! - [`read_index`]: batched linearizable-read barriers.
//! - [`raft_view`]: a plain view of Raft state for status, metrics, probes.
//! - [`metrics`], [`http`]: Prometheus metrics and the probe endpoints.
//! - [`join`]: joining a running group through any member.
//! - [`node`]: `run(args, listener, http_listener, shutdown)`.
//! - [`config`], [`error`]: flags and the node's error type.

pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod join;
pub mod metrics;
pub mod network;
pub mod node;
pub mod raft_view;
pub mod read_index;
pub mod store;
pub mod types;
pub mod validate;
