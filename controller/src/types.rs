//! The openraft type configuration of the controller group, and what its
//! log carries and its state machine answers.
//!
//! A log entry carries a [`Proposal`]: the [`Command`] plus the proposing
//! leader's [`Bootstrap`] parameters. Every member checks them against its
//! own on apply, so a member started with a different partitioning mode or
//! initial range count stops with an error instead of computing different
//! configs from the same log.

use serde::{Deserialize, Serialize};
use shardline_proto::shardmap::Config;

use crate::command::{Bootstrap, Command};
use crate::error::ControllerError;

openraft::declare_raft_types!(
    /// Raft types of the controller: u64 terms and node ids, `BasicNode
    /// { addr }` nodes, openraft's default leader id, vote and entry, tokio
    /// runtime. Snapshot bytes are the state machine's type
    /// ([`shardline_raft::SnapshotData`]).
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = shardline_raft::TokioRuntime,
);

impl shardline_raft::LogTypes for TypeConfig {}

impl shardline_raft::RaftTypes for TypeConfig {
    type StateMachine = crate::store::StateMachineStore;
}

pub type Raft = shardline_raft::Raft<TypeConfig>;
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type Snapshot = shardline_raft::Snapshot;

/// One proposed change to the shard map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposer's bootstrap parameters; must equal every applier's.
    pub bootstrap: Bootstrap,
    pub command: Command,
}

/// What openraft logs of a log entry's payload (it requires `Display`).
impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.command)
    }
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
