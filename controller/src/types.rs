//! The openraft type configuration of the controller group, and what its
//! log carries and its state machine answers.
//!
//! A log entry carries a [`Proposal`]: the [`Command`] plus the proposing
//! leader's [`Bootstrap`] parameters. Every member checks them against its
//! own on apply, so a member started with a different partitioning mode or
//! initial range count stops with an error instead of computing different
//! configs from the same log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use shardline_proto::shardmap::Config;

use crate::command::{Bootstrap, Command};
use crate::error::ControllerError;

openraft::declare_raft_types!(
    /// Raft types of the controller: u64 node ids, `BasicNode { addr }`
    /// nodes, in-memory snapshot bytes, tokio runtime.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// One proposed change to the shard map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposer's bootstrap parameters; must equal every applier's.
    pub bootstrap: Bootstrap,
    pub command: Command,
}

/// The answer to one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Outcome {
    /// Entries that carry no command (blank, membership).
    #[default]
    None,
    /// The command made this config.
    Config(Config),
    /// The command was rejected and changed nothing.
    Rejected(ControllerError),
}
