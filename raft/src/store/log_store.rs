//! [`LogStore`]: openraft's log storage over two redb tables of a member's
//! file, named by [`LogTables`] so the state machine's tables can live in the
//! same file.
//!
//! `append` returns as soon as the entries are readable (in the
//! [`Overlay`]) and queued for the member's [`LogWriter`]; the append
//! callback fires only after the writer's transaction holding them committed
//! with `Durability::Immediate`, so an acknowledged entry survives `kill -9`.
//! Truncation, purge and the vote go through the same writer, in order after
//! every earlier append, and are awaited (the vote is durable when
//! `save_vote` returns). Reads combine redb with the overlay.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::{decode, encode};
use super::error::StoreError;
use super::log_overlay::{EntryBytes, Overlay};
use super::log_writer::{Done, LogWriter, Op};
use super::records::{get_record, MetaTable};
use crate::{LogId, NodeId, RaftTypes, Vote};

/// Record names in the log metadata table.
pub(super) const VOTE: &str = "vote";
pub(super) const COMMITTED: &str = "committed";
pub(super) const LAST_PURGED: &str = "last_purged";

/// The two tables of a log: entries by index, and the vote, committed and
/// last purged log ids.
#[derive(Clone, Copy)]
pub struct LogTables {
    /// index -> postcard(`Entry`); redb's `u64` keys sort numerically.
    pub log: TableDefinition<'static, u64, &'static [u8]>,
    /// [`VOTE`], [`COMMITTED`], [`LAST_PURGED`] -> postcard.
    pub meta: MetaTable,
}

impl LogTables {
    /// The tables `raft_log` and `raft_meta`.
    pub const DEFAULT: LogTables = LogTables::new("raft_log", "raft_meta");

    pub const fn new(log: &'static str, meta: &'static str) -> Self {
        LogTables {
            log: TableDefinition::new(log),
            meta: TableDefinition::new(meta),
        }
    }
}

/// The Raft log of one member. Cloning shares the database, the overlay and
/// the writer (the clone is also the log reader openraft hands to replication
/// tasks); the writer stops when the last clone is dropped.
pub struct LogStore<C> {
    db: Arc<Database>,
    tables: LogTables,
    /// Entries appended but not yet durable, and truncations in flight.
    overlay: Arc<Overlay>,
    /// The writer thread; dropping the last handle flushes the queue and
    /// waits for the thread.
    writer: Arc<LogWriter>,
    _types: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            tables: self.tables,
            overlay: self.overlay.clone(),
            writer: self.writer.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypes> LogStore<C> {
    /// The log in `tables` of `db`, creating the tables if missing, and its
    /// writer thread.
    pub fn open(db: Arc<Database>, tables: LogTables) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(tables.log)?;
        txn.open_table(tables.meta)?;
        txn.commit()?;
        let overlay = Arc::new(Overlay::new());
        let writer = LogWriter::spawn(db.clone(), tables, overlay.clone())?;
        Ok(LogStore {
            db,
            tables,
            overlay,
            writer: Arc::new(writer),
            _types: PhantomData,
        })
    }

    /// Queues one write built by `op` and waits until the writer committed it.
    async fn submit(&self, op: impl FnOnce(Done) -> Op) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer.send(op(done_by(tx)))?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Makes `entries` readable at once and queues them; `done` is called
    /// once they are durable (or failed). The queue keeps its order with
    /// every other write.
    pub(super) fn enqueue_append(
        &self,
        entries: impl IntoIterator<Item = openraft::Entry<C>>,
        done: Done,
    ) -> Result<usize, StoreError> {
        let mut encoded: Vec<(LogId, EntryBytes)> = Vec::new();
        for entry in entries {
            match encode("log entry", &entry) {
                Ok(bytes) => encoded.push((entry.log_id, bytes.into())),
                Err(e) => {
                    let e = Arc::new(e);
                    done(Err(StoreError::LogWrite(e.clone())));
                    return Err(StoreError::LogWrite(e));
                }
            }
        }
        let count = encoded.len();
        self.overlay.append(&encoded, |seq| {
            let entries = encoded
                .iter()
                .map(|(id, bytes)| (id.index, bytes.clone()))
                .collect();
            self.writer.send(Op::Append { seq, entries, done })
        })?;
        Ok(count)
    }

    /// Removes entries at `since` and above from what readers see at once and
    /// queues their deletion; the receiver reports when it is durable.
    pub(super) fn enqueue_truncate(
        &self,
        since: u64,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.overlay.truncate(since, || {
            self.writer.send(Op::Truncate {
                since,
                done: done_by(tx),
            })
        })?;
        Ok(rx)
    }

    fn read_raft_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(self.tables.meta)?;
        get_record(&table, key)
    }

    /// Entries in `range`: committed ones (minus those being truncated) with
    /// pending ones laid over them.
    fn entries(
        &self,
        range: (Bound<u64>, Bound<u64>),
    ) -> Result<Vec<openraft::Entry<C>>, StoreError> {
        let view = self.overlay.entries(&self.db, range)?;
        let table = view.txn.open_table(self.tables.log)?;
        let mut merged = BTreeMap::new();
        for item in table.range::<u64>(range)? {
            let (key, value) = item?;
            let index = key.value();
            if view.hidden_from.is_some_and(|h| index >= h) {
                break;
            }
            merged.insert(
                index,
                decode::<openraft::Entry<C>>("log entry", value.value())?,
            );
        }
        for (index, bytes) in view.pending {
            merged.insert(index, decode::<openraft::Entry<C>>("log entry", &bytes)?);
        }
        Ok(merged.into_values().collect())
    }

    /// Last purged id from redb; last log id of the entry with the highest
    /// index among committed (not being truncated) and pending entries.
    fn log_state(&self) -> Result<LogState<C>, StoreError> {
        let view = self.overlay.last(&self.db)?;
        let meta = view.txn.open_table(self.tables.meta)?;
        let last_purged: Option<LogId> = get_record(&meta, LAST_PURGED)?;
        let log = view.txn.open_table(self.tables.log)?;
        let last_durable = match view.hidden_from {
            Some(h) => log.range::<u64>(..h)?.next_back().transpose()?,
            None => log.last()?,
        };
        let last_durable = match last_durable {
            Some((_, value)) => {
                Some(decode::<openraft::Entry<C>>("log entry", value.value())?.log_id)
            }
            None => None,
        };
        let last = match (last_durable, view.pending) {
            (Some(d), Some(p)) if d.index > p.index => Some(d),
            (d, p) => p.or(d),
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }
}

/// A [`Done`] that sends the outcome to `tx` (a dropped receiver is fine:
/// the caller stopped waiting).
fn done_by(tx: tokio::sync::oneshot::Sender<Result<(), StoreError>>) -> Done {
    Box::new(move |result| {
        let _ = tx.send(result);
    })
}

impl<C: RaftTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::Entry<C>>, StorageError<NodeId>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(StoreError::read_logs)
    }
}

impl<C: RaftTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<NodeId>> {
        self.log_state().map_err(StoreError::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable before it returns, and after every write queued before it.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.submit(|done| Op::Vote { vote, done })
            .await
            .map_err(StoreError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError<NodeId>> {
        self.read_raft_meta(VOTE).map_err(StoreError::read_vote)
    }

    /// Records the committed log id so a restart re-applies `(last_applied,
    /// committed]` from the log. Not fsynced by itself (it rides along with
    /// the next durable batch): losing it only means the node re-applies less
    /// at startup and learns the rest from the leader. Queued behind earlier
    /// appends, so the record never points past the log on disk.
    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> Result<(), StorageError<NodeId>> {
        self.submit(|done| Op::Committed { committed, done })
            .await
            .map_err(StoreError::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<NodeId>> {
        self.read_raft_meta(COMMITTED)
            .map_err(StoreError::read_logs)
    }

    /// Returns once the entries are readable and queued; `callback` fires
    /// when they are durable, or with the error if the write failed.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let done: Done = Box::new(move |result: Result<(), StoreError>| {
            callback.log_io_completed(result.map_err(std::io::Error::other));
        });
        let count = self
            .enqueue_append(entries, done)
            .map_err(StoreError::write_logs)?;
        tracing::trace!(count, "queued log entries");
        Ok(())
    }

    /// Readers stop seeing entries at `log_id.index` and above at once;
    /// returns once their deletion is durable.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "truncating log from");
        let rx = self
            .enqueue_truncate(log_id.index)
            .map_err(StoreError::write_logs)?;
        rx.await
            .map_err(|_| StoreError::WriterStopped)
            .and_then(|r| r)
            .map_err(StoreError::write_logs)
    }

    /// Returns once the purge is durable.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "purging log up to");
        self.submit(|done| Op::Purge { upto: log_id, done })
            .await
            .map_err(StoreError::write_logs)
    }
}
