//! The Shardline shard controller: the single source of truth for which
//! replica group owns which key range.
//!
//! This crate holds the network-independent core: a pure, deterministic state
//! machine over an append-only history of shard-map configs, ready to be
//! applied from a Raft log and snapshotted. The shared `Config` type lives in
//! [`shardline_proto::shardmap`] so clients and shard nodes route with it too.
//!
//! # Layout
//! - [`command`]: the fixed [`Bootstrap`] parameters and the [`Command`]s the
//!   log carries (Join, Leave, Move, Split), with their wire conversions.
//! - [`state`]: [`ControllerState`], the config history; `apply` and `query`.
//! - [`balance`]: deterministic minimal-movement rebalancing after Join/Leave.
//! - [`error`]: [`ControllerError`] and its mapping to `tonic::Status`.

pub mod balance;
pub mod command;
pub mod error;
pub mod state;

pub use command::{Bootstrap, Command, Group};
pub use error::ControllerError;
pub use state::ControllerState;
