//! [`LogWriter`]: the one thread per log store that performs every write to
//! the log, vote and committed records, in the order they were queued.
//!
//! The thread waits for a write, takes redb's write lock, then takes whatever
//! else is queued (up to [`MAX_BATCH_OPS`]) and applies it in queue order
//! inside ONE redb write transaction, committed with
//! `Durability::Immediate`: many appends share one fsync. The pending
//! committed id ([`CommittedSlot`]) rides along when the log holds its entry
//! after the batch, every [`COMMITTED_STRIDE`] entries. Only after the
//! commit does it settle the [`Overlay`] and report completion of each write, in order. The fsync runs on this
//! dedicated thread, never on an async worker or in openraft's core task,
//! so the leader replicates while its own append is being flushed.
//!
//! A failed batch reports its error to every write in it, and the writer then
//! refuses all later writes with the same error: a write after a lost one
//! could leave a hole in the log. Dropping the [`LogWriter`] (the last clone
//! of the log store) closes the queue; the thread commits what is still
//! queued and exits, and the drop waits for it so the database is released.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::sync::Mutex;

use redb::{Database, Durability, ReadableTable, Table};

use super::error::StoreError;
use super::log_overlay::{EntryBytes, Overlay};
use super::log_store::{LogTables, COMMITTED, LAST_PURGED, VOTE};
use super::records::{get_record, put_record};
use crate::{LogId, Vote};

/// Most writes committed in one transaction, to bound its size.
const MAX_BATCH_OPS: usize = 1024;

/// Entries the committed id must have advanced since the writer last wrote
/// it before a batch writes it again. The record only saves a restarted
/// node re-applying from the leader's word, so it may lag; writing it with
/// every batch touched one more table per fsync (about 1.6 more page writes
/// per commit: 28 instead of 25.4 disk writes per put over three members at
/// concurrency 1, and 8-13% fewer puts).
pub(super) const COMMITTED_STRIDE: u64 = 256;

/// Reports the outcome of one write; called exactly once, after the commit.
pub(super) type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write queued for the writer.
pub(super) enum Op {
    /// Encoded entries `(index, bytes)` of the append with sequence number `seq`.
    Append {
        seq: u64,
        entries: Vec<(u64, EntryBytes)>,
        done: Done,
    },
    /// Delete entries at `since` and above.
    Truncate { since: u64, done: Done },
    /// Delete entries up to `upto` and record it as last purged.
    Purge { upto: LogId, done: Done },
    /// Record the vote.
    Vote { vote: Vote, done: Done },
}

/// The newest committed id openraft reported and no batch has written yet.
pub(super) type CommittedSlot = Arc<Mutex<Option<LogId>>>;

/// Locks a committed slot; it holds a plain `Copy` value, so a poisoned lock
/// is taken as is.
pub(super) fn lock_slot(slot: &Mutex<Option<LogId>>) -> std::sync::MutexGuard<'_, Option<LogId>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Op {
    fn finish(self, result: Result<(), StoreError>) {
        let done = match self {
            Op::Append { done, .. }
            | Op::Truncate { done, .. }
            | Op::Purge { done, .. }
            | Op::Vote { done, .. } => done,
        };
        done(result);
    }

    /// Applies this write to the open tables of the batch's transaction.
    fn apply(
        &self,
        log: &mut Table<u64, &'static [u8]>,
        meta: &mut Table<&'static str, &'static [u8]>,
    ) -> Result<(), StoreError> {
        match self {
            Op::Append { entries, .. } => {
                for (index, bytes) in entries {
                    log.insert(*index, &**bytes)?;
                }
            }
            Op::Truncate { since, .. } => {
                tracing::debug!(since, "truncating log from");
                log.retain_in::<u64, _>(*since.., |_, _| false)?;
            }
            Op::Purge { upto, .. } => {
                let previous: Option<LogId> = get_record(meta, LAST_PURGED)?;
                if previous.is_some_and(|p| p >= *upto) {
                    return Ok(());
                }
                tracing::debug!(%upto, "purging log up to");
                put_record(meta, LAST_PURGED, upto)?;
                log.retain_in::<u64, _>(..=upto.index, |_, _| false)?;
            }
            Op::Vote { vote, .. } => put_record(meta, VOTE, vote)?,
        }
        Ok(())
    }
}

/// The handle of a log store's writer thread: its queue, and the thread to
/// wait for on drop.
pub(super) struct LogWriter {
    /// `None` only while dropping.
    tx: Option<Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer of `tables` in `db`; it settles `overlay` and
    /// writes what `committed` holds.
    pub fn spawn(
        db: Arc<Database>,
        tables: LogTables,
        overlay: Arc<Overlay>,
        committed: CommittedSlot,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("shardline-log-writer".into())
            .spawn(move || run(&db, tables, &overlay, &committed, rx))
            .map_err(StoreError::SpawnWriter)?;
        Ok(LogWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `op`. If the writer has stopped, `op` is finished with
    /// [`StoreError::WriterStopped`] and so is the call.
    pub fn send(&self, op: Op) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else {
            op.finish(Err(StoreError::WriterStopped));
            return Err(StoreError::WriterStopped);
        };
        tx.send(op).map_err(|mpsc::SendError(op)| {
            op.finish(Err(StoreError::WriterStopped));
            StoreError::WriterStopped
        })
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

/// The writer thread: batches until the queue is closed and drained.
fn run(
    db: &Database,
    tables: LogTables,
    overlay: &Overlay,
    committed: &Mutex<Option<LogId>>,
    rx: Receiver<Op>,
) {
    let mut failure: Option<Arc<StoreError>> = None;
    // The committed index this writer last wrote.
    let mut committed_written = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let result = match &failure {
            Some(cause) => {
                drain(&rx, &mut batch);
                Err(cause.clone())
            }
            None => commit(
                db,
                tables,
                (committed, &mut committed_written),
                &rx,
                &mut batch,
            )
            .map_err(Arc::new),
        };
        if let (Err(cause), None) = (&result, &failure) {
            tracing::error!(error = %cause, ops = batch.len(), "log write failed; refusing further log writes");
            failure = Some(cause.clone());
        }
        settle(overlay, &batch);
        tracing::trace!(ops = batch.len(), ok = result.is_ok(), "log batch done");
        for op in batch {
            op.finish(result.clone().map_err(StoreError::LogWrite));
        }
    }
    tracing::debug!("log writer stopped");
}

/// Moves what is queued into `batch`, up to [`MAX_BATCH_OPS`].
fn drain(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH_OPS {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

/// Takes redb's write lock, then adds everything queued meanwhile to
/// `batch` (writes that arrived while the state machine held the lock share
/// this commit), applies the batch in order and commits it durably.
///
/// The pending committed id is written too when the log holds its index
/// after the batch (a leader may see an entry committed by its followers
/// before its own append is flushed, and the record must never point past
/// the log on disk) and it is the first this writer writes or
/// [`COMMITTED_STRIDE`] entries past the last one (`written_index`). An id left
/// out stays pending for a later batch.
fn commit(
    db: &Database,
    tables: LogTables,
    (committed, written_index): (&Mutex<Option<LogId>>, &mut Option<u64>),
    rx: &Receiver<Op>,
    batch: &mut Vec<Op>,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    drain(rx, batch);
    txn.set_durability(Durability::Immediate)?;
    let pending = *lock_slot(committed);
    let mut written = None;
    {
        let mut log = txn.open_table(tables.log)?;
        let mut meta = txn.open_table(tables.meta)?;
        for op in batch.iter() {
            op.apply(&mut log, &mut meta)?;
        }
        if let Some(id) = pending {
            let last = match log.last()? {
                Some((index, _)) => Some(index.value()),
                None => {
                    let purged: Option<LogId> = get_record(&meta, LAST_PURGED)?;
                    purged.map(|p| p.index)
                }
            };
            let due = written_index.is_none_or(|w| id.index >= w + COMMITTED_STRIDE);
            if due && last.is_some_and(|last| last >= id.index) {
                put_record(&mut meta, COMMITTED, &id)?;
                written = Some(id);
            }
        }
    }
    txn.commit()?;
    if let Some(id) = written {
        *written_index = Some(id.index);
    }
    if written.is_some() {
        // Forget it only if no newer id arrived meanwhile.
        let mut slot = lock_slot(committed);
        if *slot == written {
            *slot = None;
        }
    }
    Ok(())
}

/// Forgets the batch's appends and truncations in the overlay (after the
/// commit, so readers find them in redb from now on).
fn settle(overlay: &Overlay, batch: &[Op]) {
    let appended = batch.iter().flat_map(|op| match op {
        Op::Append { seq, entries, .. } => entries
            .iter()
            .map(|(index, _)| (*seq, *index))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    });
    let truncates = batch
        .iter()
        .filter(|op| matches!(op, Op::Truncate { .. }))
        .count();
    overlay.settle(appended, truncates);
}
