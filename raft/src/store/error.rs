//! Errors of the storage layer and their conversion into the `io::Error`
//! openraft's storage traits return.
//!
//! Every failure of redb, of the postcard codec or of a consistency check is a
//! [`StoreError`] with the fields needed to diagnose it. openraft only sees
//! them as an `io::Error` wrapping a [`StorageFailure`] that names what was
//! being done (reading the log, writing a snapshot, ...); openraft turns it
//! into its `StorageError` and stops the Raft node, which is the right
//! reaction to a failing disk or corrupted bytes.

use std::io;
use std::path::PathBuf;

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

    /// The write-ahead log of entries failed (I/O, corrupt bytes, order).
    #[error("raft log: {0}")]
    Wal(#[from] super::wal::WalError),

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

    /// A write to the log failed: in its own batch, or in an earlier one, after
    /// which the log writer refuses every write (a later write could leave a
    /// hole in the log).
    #[error("log write failed: {0}")]
    LogWrite(#[source] std::sync::Arc<StoreError>),

    /// The log writer thread is gone (it panicked), so nothing can be written.
    #[error("the log writer thread has stopped")]
    WriterStopped,

    #[error("cannot start the log writer thread: {0}")]
    SpawnWriter(#[source] std::io::Error),

    /// An apply or the write of staged applies failed; what was staged is no
    /// longer trustworthy in memory, so reads fail instead of missing it
    /// (openraft stops on the original error, and a restart re-applies from
    /// the log).
    #[error("staged applies were lost by an earlier failed apply or write")]
    DeferredLost,

    /// A background blocking task that ran a redb transaction panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A [`StoreError`] at the openraft boundary, naming what was being done
/// (openraft 0.10's storage traits return `io::Error`; openraft adds the
/// subject and verb of the failed IO itself).
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct StorageFailure {
    pub action: &'static str,
    #[source]
    pub source: StoreError,
}

impl StoreError {
    /// Wraps this error for openraft, naming what was being done.
    pub fn into_io(self, action: &'static str) -> io::Error {
        io::Error::other(StorageFailure {
            action,
            source: self,
        })
    }

    pub fn read_logs(self) -> io::Error {
        self.into_io("reading the log")
    }

    pub fn write_logs(self) -> io::Error {
        self.into_io("writing the log")
    }

    pub fn read_vote(self) -> io::Error {
        self.into_io("reading the vote")
    }

    pub fn write_vote(self) -> io::Error {
        self.into_io("writing the vote")
    }

    pub fn read_sm(self) -> io::Error {
        self.into_io("reading the state machine")
    }

    pub fn write_sm(self) -> io::Error {
        self.into_io("writing the state machine")
    }

    pub fn read_snapshot(self) -> io::Error {
        self.into_io("reading a snapshot")
    }

    pub fn write_snapshot(self) -> io::Error {
        self.into_io("writing a snapshot")
    }
}
