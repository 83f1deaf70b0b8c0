//! The openraft type configuration of a shard group and the commands its
//! Raft log carries.
//!
//! A [`Command`] is one client write; the KV service proposes writes that
//! arrive together as one [`Proposal`] (one log entry, one fsync), and the
//! state machine answers each command with an [`Applied`]. Writes from clients carry a
//! [`Session`] so a retried write is applied once (see `store::dedup`).

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of a shard group: u64 terms and node ids, `BasicNode
    /// { addr }` nodes, openraft's default leader id, vote and entry, tokio
    /// runtime. Snapshot bytes are the state machine's type
    /// ([`shardline_raft::SnapshotData`]).
    pub TypeConfig:
        D = Proposal,
        R = Vec<Applied>,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = shardline_raft::TokioRuntime,
);

impl shardline_raft::LogTypes for TypeConfig {}

impl shardline_raft::RaftTypes for TypeConfig {
    type StateMachine = crate::store::StateMachineStore;
}

pub type NodeId = u64;
pub type Raft = shardline_raft::Raft<TypeConfig>;
pub type LogId = shardline_raft::LogId;
pub type Vote = shardline_raft::Vote;
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type StoredMembership = shardline_raft::StoredMembership;
pub type SnapshotMeta = shardline_raft::SnapshotMeta;
pub type Snapshot = shardline_raft::Snapshot;

/// Identifies one client write for exactly-once application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// 16 random bytes naming the client session.
    pub client_id: [u8; 16],
    /// Unique per write within the session.
    pub seq: u64,
    /// Every seq below this is acknowledged by the client: its result may be
    /// forgotten and it will never be retried.
    pub ack_below: u64,
}

/// One write in a `Batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// The operation a log entry applies to the key space (user keys; the state
/// machine maps them to storage keys by the group's partitioning mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// `expected: None` means "the key must not exist"; `new_value: None`
    /// deletes on success.
    CompareAndSwap {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    },
    Batch {
        ops: Vec<BatchOp>,
    },
}

/// One client write: an operation, optionally tied to a client session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub session: Option<Session>,
    pub op: Op,
}

impl Command {
    /// Approximate payload size (keys and values, plus a fixed overhead):
    /// the byte budget of a proposal batch and of deferred applies.
    pub fn weight(&self) -> usize {
        let op_bytes = |op: &BatchOp| match op {
            BatchOp::Put { key, value } => key.len() + value.len(),
            BatchOp::Delete { key } => key.len(),
        };
        64 + match &self.op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
            Op::CompareAndSwap {
                key,
                expected,
                new_value,
            } => {
                key.len()
                    + expected.as_ref().map_or(0, Vec::len)
                    + new_value.as_ref().map_or(0, Vec::len)
            }
            Op::Batch { ops } => ops.iter().map(op_bytes).sum(),
        }
    }
}

/// A Raft log payload: commands proposed together, applied in order within
/// one entry. The entry's answer holds one [`Applied`] per command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
    /// The proposing leader's clock, which ages client sessions.
    pub clock: SessionClock,
}

/// What openraft logs of a log entry's payload (it requires `Display`): the
/// command count and clock, never keys or values.
impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "proposal of {} commands at {} ms",
            self.commands.len(),
            self.clock.now_ms
        )
    }
}

impl From<Command> for Proposal {
    /// A proposal of one command, without a clock (sessions neither age nor
    /// expire).
    fn from(c: Command) -> Self {
        Proposal {
            commands: vec![c],
            clock: SessionClock::NONE,
        }
    }
}

/// Time as the proposing leader saw it, carried in the log so every replica
/// ages client sessions identically (a replica's own clock would make the
/// state machines diverge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionClock {
    /// Milliseconds since the Unix epoch when the proposal was made; 0 means
    /// "no clock": the proposal neither refreshes nor expires sessions.
    pub now_ms: u64,
    /// A session unused for longer than this is forgotten (its results and
    /// floor are deleted); 0 means sessions never expire.
    pub session_ttl_ms: u64,
}

impl SessionClock {
    /// No clock: sessions are not touched.
    pub const NONE: SessionClock = SessionClock {
        now_ms: 0,
        session_ttl_ms: 0,
    };

    /// How stale a session's recorded last use may get before a write
    /// refreshes it: 1/64 of the TTL (about a minute for an hour).
    pub fn refresh_resolution_ms(&self) -> u64 {
        self.session_ttl_ms / 64
    }

    /// Sessions last used before this instant (ms) are expired, if any.
    pub fn expiry_cutoff_ms(&self) -> Option<u64> {
        (self.now_ms > 0 && self.session_ttl_ms > 0)
            .then(|| self.now_ms.saturating_sub(self.session_ttl_ms))
    }
}

/// The answer to one command: what applying it produced and the log index
/// at which it was *first* applied. A retried write answered from the dedup
/// table reports the original index, not the retry's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Applied {
    pub index: u64,
    pub result: CommandResult,
}

/// What applying a [`Command`] produced. Stored in the dedup table so a
/// retried write gets the original answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CommandResult {
    /// Entries that carry no command (blank, membership) answer this.
    #[default]
    None,
    Put,
    Delete {
        existed: bool,
    },
    CompareAndSwap {
        succeeded: bool,
        current: Option<Vec<u8>>,
    },
    Batch,
    /// The write's seq is below the session's acknowledged floor: it was
    /// applied earlier and its result has been forgotten.
    DuplicateExpired {
        floor: u64,
    },
}
