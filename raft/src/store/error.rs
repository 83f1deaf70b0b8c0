//! Errors of the storage layer and their conversion into openraft's
//! [`StorageError`] at the trait boundary.
//!
//! Every failure of redb, of the postcard codec or of a consistency check is a
//! [`StoreError`] with the fields needed to diagnose it. openraft only sees
//! them wrapped in a [`StorageIOError`] that names the subject (logs, vote,
//! state machine, snapshot) and the verb; a storage error stops the Raft node,
//! which is the right reaction to a failing disk or corrupted bytes.

use std::path::PathBuf;

use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::NodeId;

/// A failure of a member's redb store (log or state machine).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot prepare the store directory {path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot open the redb database: {0}")]
    Database(#[from] redb::DatabaseError),

    #[error("cannot begin a redb transaction: {0}")]
    Transaction(#[from] redb::TransactionError),

    #[error("cannot open a redb table: {0}")]
    Table(#[from] redb::TableError),

    #[error("redb storage failure: {0}")]
    Storage(#[from] redb::StorageError),

    #[error("cannot commit a redb transaction: {0}")]
    Commit(#[from] redb::CommitError),

    #[error("cannot set the durability of a redb transaction: {0}")]
    Durability(#[from] redb::SetDurabilityError),

    /// Bytes that do not encode or decode as the expected type.
    #[error("cannot encode or decode {what}: {source}")]
    Codec {
        what: &'static str,
        source: postcard::Error,
    },

    /// The store (or a snapshot) belongs to another group, cluster or
    /// partitioning mode, or a stored record contradicts another.
    #[error("store {field} mismatch: expected {expected}, found {found}")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },

    /// A record every initialised store has is absent.
    #[error("store record {key:?} is missing from table {table}")]
    Missing {
        table: &'static str,
        key: &'static str,
    },

    /// A key in a table has the wrong shape (e.g. a dedup key that is not 24 bytes).
    #[error("malformed key of {len} bytes in table {table}")]
    MalformedKey { table: &'static str, len: usize },

    /// A background blocking task that ran a redb transaction panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl StoreError {
    /// Wraps this error for openraft, naming what was being done to what.
    pub fn into_raft(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError<NodeId> {
        StorageIOError::new(subject, verb, &self).into()
    }

    pub fn read_logs(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Logs, ErrorVerb::Read)
    }

    pub fn write_logs(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Logs, ErrorVerb::Write)
    }

    pub fn read_vote(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Vote, ErrorVerb::Read)
    }

    pub fn write_vote(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Vote, ErrorVerb::Write)
    }

    pub fn read_sm(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::StateMachine, ErrorVerb::Read)
    }

    pub fn write_sm(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::StateMachine, ErrorVerb::Write)
    }

    pub fn read_snapshot(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read)
    }

    pub fn write_snapshot(self) -> StorageError<NodeId> {
        self.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write)
    }
}
