//! [`LogStore`]: openraft's log storage. Entries live in the member's
//! write-ahead log ([`super::wal`], a directory beside the redb file); the
//! vote, the committed id and the purge point are records in a redb table of
//! the member's file, named by [`LogTables`] so the state machine's tables
//! live in the same file.
//!
//! `append` returns as soon as the entries are readable (in the
//! [`Overlay`]) and queued for the member's [`LogWriter`]; the append
//! callback fires only after the writer's batch holding them was flushed
//! (fdatasync), so an acknowledged entry survives `kill -9`. openraft 0.10
//! calls `append` from its core task and replicates as soon as it returns,
//! so the leader's fsync overlaps the followers' instead of preceding them.
//! Truncation, purge and the vote go through the same writer, in order after
//! every earlier append, and are awaited (the vote is durable when
//! `save_vote` returns). Reads combine the log with the overlay. A
//! [`Checkpointer`] makes the redb file durable about once a second.
//!
//! A member file written before the log moved out of redb still holds its
//! entries in the log table: [`LogStore::open`] moves them into the
//! write-ahead log once, durably, then empties the table.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::checkpoint::{
    lock_slot, CheckpointBusy, Checkpointer, CommittedSlot, CHECKPOINT_INTERVAL,
};
use super::codec::{decode, encode};
use super::error::StoreError;
use super::log_overlay::{EntryBytes, Overlay};
use super::log_writer::{Done, LogWriter, Op};
use super::records::{commit_durably, get_record, MetaTable};
use super::wal::{self, WalOptions, WalReader, WalWriter};
use crate::{LogId, LogTypes, Vote};

/// Record names in the log metadata table.
pub(super) const VOTE: &str = "vote";
pub(super) const COMMITTED: &str = "committed";
pub(super) const LAST_PURGED: &str = "last_purged";

/// The two tables of a log: entries by index, and the vote, committed and
/// last purged log ids.
#[derive(Clone, Copy)]
pub struct LogTables {
    /// index -> postcard(`Entry`): where members before the write-ahead log
    /// kept their entries; emptied by [`LogStore::open`].
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

/// The Raft log of one member. Cloning shares the database, the overlay, the
/// pending committed id and the writer (the clone is also the log reader
/// openraft hands to replication tasks); the writer stops when the last
/// clone is dropped.
pub struct LogStore<C> {
    db: Arc<Database>,
    tables: LogTables,
    /// The durable entries.
    wal: WalReader,
    /// Entries appended but not yet durable, and truncations in flight.
    overlay: Arc<Overlay>,
    /// The newest committed id from `save_committed`; the checkpointer
    /// writes it.
    committed: CommittedSlot,
    /// The writer thread; dropping the last handle flushes the queue and
    /// waits for the thread. Declared before `checkpointer` so it stops
    /// first and the last checkpoint sees every write.
    writer: Arc<LogWriter>,
    checkpointer: Arc<Checkpointer>,
    /// Set while a checkpoint holds redb's write lock.
    busy: CheckpointBusy,
    _types: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            tables: self.tables,
            wal: self.wal.clone(),
            overlay: self.overlay.clone(),
            committed: self.committed.clone(),
            writer: self.writer.clone(),
            checkpointer: self.checkpointer.clone(),
            busy: self.busy.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: LogTypes> LogStore<C> {
    /// The log whose records are in `tables` of `db`, the redb file at
    /// `path`, and whose entries are in the write-ahead log beside it
    /// ([`super::wal_dir`]), creating what is missing, with its writer and
    /// checkpoint threads.
    pub fn open(db: Arc<Database>, tables: LogTables, path: &Path) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(tables.log)?;
        let last_purged: Option<LogId> = get_record(&txn.open_table(tables.meta)?, LAST_PURGED)?;
        txn.commit()?;
        let wal_dir = super::wal_dir(path);
        let (mut writer, reader) = wal::open(
            &wal_dir,
            last_purged.map(|p| p.index),
            WalOptions::default(),
        )?;
        migrate_redb_log(&db, tables, &mut writer, last_purged)?;
        let overlay = Arc::new(Overlay::new());
        let committed = CommittedSlot::default();
        let busy = CheckpointBusy::default();
        let checkpointer = Checkpointer::spawn(
            db.clone(),
            busy.clone(),
            tables,
            committed.clone(),
            reader.clone(),
            CHECKPOINT_INTERVAL,
        )?;
        let writer = LogWriter::spawn(db.clone(), tables, writer, overlay.clone())?;
        Ok(LogStore {
            db,
            tables,
            wal: reader,
            overlay,
            committed,
            writer: Arc::new(writer),
            checkpointer: Arc::new(checkpointer),
            busy,
            _types: PhantomData,
        })
    }

    /// Stops the writer before its next batch until the hold is dropped.
    #[cfg(test)]
    pub(super) fn hold_writer(&self) -> super::log_writer::Hold {
        self.writer.hold()
    }

    /// The durable entries, without the overlay.
    #[cfg(test)]
    pub(super) fn wal(&self) -> WalReader {
        self.wal.clone()
    }

    /// Whether a checkpoint holds redb's write lock right now: a state
    /// machine may keep its changes staged rather than wait for it.
    pub fn checkpoint_busy(&self) -> CheckpointBusy {
        self.busy.clone()
    }

    /// Makes the redb file durable now, with the committed id the log holds
    /// (the checkpointer does it about once a second and on shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpointer.now()
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
        entries: impl IntoIterator<Item = C::Entry>,
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

    /// Entries in `range`: durable ones (minus those being truncated) with
    /// pending ones laid over them. The overlay is copied first: the writer
    /// publishes entries to the log before it settles them there.
    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<C::Entry>, StoreError> {
        let view = self.overlay.entries(range);
        let mut merged = BTreeMap::new();
        let durable = (range.0, below(range.1, view.hidden_from));
        self.wal.read_with(durable, |index, bytes| {
            merged.insert(index, decode::<C::Entry>("log entry", bytes)?);
            Ok::<_, StoreError>(())
        })?;
        for (index, bytes) in view.pending {
            merged.insert(index, decode::<C::Entry>("log entry", &bytes)?);
        }
        Ok(merged.into_values().collect())
    }

    /// Last purged id from redb; last log id of the entry with the highest
    /// index among durable (not being truncated) and pending entries.
    fn log_state(&self) -> Result<LogState<C>, StoreError> {
        let view = self.overlay.last();
        let last_purged: Option<LogId> = self.read_raft_meta(LAST_PURGED)?;
        let last_durable = match self.wal.last_before(view.hidden_from)? {
            Some((_, bytes)) => Some(decode::<C::Entry>("log entry", &bytes)?.log_id),
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

/// `end` lowered to exclude `hidden_from` and above (entries a truncation
/// in flight is deleting).
fn below(end: Bound<u64>, hidden_from: Option<u64>) -> Bound<u64> {
    match (end, hidden_from) {
        (end, None) => end,
        (Bound::Included(e), Some(h)) if e < h => Bound::Included(e),
        (Bound::Excluded(e), Some(h)) => Bound::Excluded(e.min(h)),
        (_, Some(h)) => Bound::Excluded(h),
    }
}

/// Moves entries that an older build kept in the redb log table into the
/// write-ahead log (replacing whatever an interrupted earlier move left
/// there), makes them durable, then empties the table durably. A crash in
/// between repeats the move at the next open.
fn migrate_redb_log(
    db: &Database,
    tables: LogTables,
    wal: &mut WalWriter,
    last_purged: Option<LogId>,
) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(tables.log)?;
    let Some(first) = table.first()?.map(|(k, _)| k.value()) else {
        return Ok(());
    };
    let floor = last_purged.map_or(0, |p| p.index + 1);
    wal.clear(first.max(floor))?;
    let mut moved = 0u64;
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::new();
    for item in table.range::<u64>(floor..)? {
        let (key, value) = item?;
        chunk.push((key.value(), value.value().to_vec()));
        if chunk.len() == 1024 {
            wal.append(chunk.iter().map(|(i, b)| (*i, b.as_slice())))?;
            moved += chunk.len() as u64;
            chunk.clear();
        }
    }
    wal.append(chunk.iter().map(|(i, b)| (*i, b.as_slice())))?;
    moved += chunk.len() as u64;
    wal.sync()?;
    drop(table);
    drop(txn);
    let txn = db.begin_write()?;
    txn.delete_table(tables.log)?;
    txn.open_table(tables.log)?;
    commit_durably(txn)?;
    tracing::info!(
        entries = moved,
        first,
        "moved the Raft log from redb into the write-ahead log"
    );
    Ok(())
}

/// A [`Done`] that sends the outcome to `tx` (a dropped receiver is fine:
/// the caller stopped waiting).
fn done_by(tx: tokio::sync::oneshot::Sender<Result<(), StoreError>>) -> Done {
    Box::new(move |result| {
        let _ = tx.send(result);
    })
}

impl<C: LogTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(StoreError::read_logs)
    }

    /// The vote is durable before `save_vote` returns, so redb holds it.
    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_raft_meta(VOTE).map_err(StoreError::read_vote)
    }
}

impl<C: LogTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        self.log_state().map_err(StoreError::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable before it returns, and after every write queued before it.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.submit(|done| Op::Vote { vote, done })
            .await
            .map_err(StoreError::write_vote)
    }

    /// Records the committed log id so a restart re-applies `(last_applied,
    /// committed]` from the log. It is kept in memory and written by the
    /// next checkpoint (about once a second, and on stop) once the durable
    /// log holds its entry: a write transaction per commit would cost as
    /// much as an append, and losing the newest value only means a
    /// restarted node re-applies less at startup and learns the rest from
    /// the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(id) = committed {
            let mut slot = lock_slot(&self.committed);
            if slot.is_none_or(|pending| pending < id) {
                *slot = Some(id);
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let pending = *lock_slot(&self.committed);
        let stored: Option<LogId> = self
            .read_raft_meta(COMMITTED)
            .map_err(StoreError::read_logs)?;
        Ok(pending.max(stored))
    }

    /// Returns once the entries are readable and queued; `callback` fires
    /// when they are durable, or with the error if the write failed.
    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let done: Done = Box::new(move |result: Result<(), StoreError>| {
            callback.io_completed(result.map_err(|e| io::Error::other(e.to_string())));
        });
        let count = self
            .enqueue_append(entries, done)
            .map_err(StoreError::write_logs)?;
        tracing::trace!(count, "queued log entries");
        Ok(())
    }

    /// Removes every entry after `last_log_id` (all of them for `None`):
    /// readers stop seeing them at once; returns once the deletion is
    /// durable.
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        tracing::debug!(?last_log_id, "truncating log after");
        let since = last_log_id.map_or(0, |id| id.index + 1);
        let rx = self
            .enqueue_truncate(since)
            .map_err(StoreError::write_logs)?;
        rx.await
            .map_err(|_| StoreError::WriterStopped)
            .and_then(|r| r)
            .map_err(StoreError::write_logs)
    }

    /// Returns once the purge is durable.
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        tracing::debug!(%log_id, "purging log up to");
        self.submit(|done| Op::Purge { upto: log_id, done })
            .await
            .map_err(StoreError::write_logs)
    }
}
