//! [`LogWriter`]: the one thread per log store that performs every write to
//! the log and the vote, in the order they were queued.
//!
//! The thread waits for a write, then takes whatever else is queued (up to
//! [`MAX_BATCH_OPS`]) and performs it in queue order: appends are written to
//! the write-ahead log ([`super::wal`]) and the batch ends with one
//! fdatasync, so many appends share one flush. The vote and the purge point
//! are redb records, committed with `Durability::Immediate` after the log
//! writes queued before them are durable. Only after the batch is durable
//! does the thread settle the [`Overlay`] and report completion of each
//! write, in order. The fsync runs on this dedicated thread, never on an
//! async worker or in openraft's core task, so the leader replicates while
//! its own append is being flushed.
//!
//! A failed batch reports its error to every write in it, and the writer then
//! refuses all later writes with the same error: a write after a lost one
//! could leave a hole in the log. Dropping the [`LogWriter`] (the last clone
//! of the log store) closes the queue; the thread writes what is still
//! queued and exits, and the drop waits for it ([`Worker`]).

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

use redb::Database;

use super::error::StoreError;
use super::log_overlay::{EntryBytes, Overlay};
use super::log_store::{LogTables, LAST_PURGED, VOTE};
use super::records::{commit_durably, get_record, put_record};
use super::wal::WalWriter;
use super::worker::Worker;
use crate::{LogId, Vote};

/// Most writes performed in one batch, to bound its size.
const MAX_BATCH_OPS: usize = 1024;

/// Reports the outcome of one write; called exactly once, after the batch.
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

    /// Performs this write; log writes are durable only after the batch's
    /// final [`WalWriter::sync`].
    fn apply(
        &self,
        db: &Database,
        tables: LogTables,
        wal: &mut WalWriter,
    ) -> Result<(), StoreError> {
        match self {
            Op::Append { entries, .. } => {
                wal.append(entries.iter().map(|(index, bytes)| (*index, &**bytes)))?;
            }
            Op::Truncate { since, .. } => {
                tracing::debug!(since, "truncating log from");
                wal.truncate(*since)?;
            }
            Op::Purge { upto, .. } => {
                wal.sync()?;
                let txn = db.begin_write()?;
                let newer = {
                    let mut meta = txn.open_table(tables.meta)?;
                    let previous: Option<LogId> = get_record(&meta, LAST_PURGED)?;
                    let newer = previous.is_none_or(|p| p < *upto);
                    if newer {
                        put_record(&mut meta, LAST_PURGED, upto)?;
                    }
                    newer
                };
                if newer {
                    tracing::debug!(%upto, "purging log up to");
                    // Recorded before any segment goes: a restart drops what
                    // lies below it even if a deletion is lost in a crash.
                    commit_durably(txn)?;
                    wal.purge(upto.index)?;
                }
            }
            Op::Vote { vote, .. } => {
                wal.sync()?;
                let txn = db.begin_write()?;
                put_record(&mut txn.open_table(tables.meta)?, VOTE, vote)?;
                commit_durably(txn)?;
            }
        }
        Ok(())
    }
}

/// The handle of a log store's writer thread: its queue, and the thread to
/// wait for on drop.
pub(super) struct LogWriter {
    worker: Worker<Op>,
    /// Checked by the thread before each batch; tests hold it to let
    /// writes queue up at a known point.
    #[cfg_attr(not(test), allow(dead_code))]
    gate: Arc<Gate>,
}

/// Lets tests stop the writer before its next batch (never set otherwise).
#[derive(Default)]
pub(super) struct Gate {
    held: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Waits while the gate is held.
    fn pass(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held {
            held = self.opened.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Holds a writer's [`Gate`] until dropped.
#[cfg(test)]
pub(super) struct Hold(Arc<Gate>);

#[cfg(test)]
impl Drop for Hold {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.opened.notify_all();
    }
}

impl LogWriter {
    /// Starts the writer of `wal` and of `tables` in `db`; it settles `overlay`.
    pub fn spawn(
        db: Arc<Database>,
        tables: LogTables,
        wal: WalWriter,
        overlay: Arc<Overlay>,
    ) -> Result<Self, StoreError> {
        let gate = Arc::new(Gate::default());
        let thread_gate = gate.clone();
        let worker = Worker::spawn("shardline-log-writer", move |rx| {
            run(&db, tables, wal, &overlay, &thread_gate, rx)
        })?;
        Ok(LogWriter { worker, gate })
    }

    /// Queues `op`. If the writer has stopped, `op` is finished with
    /// [`StoreError::WriterStopped`] and so is the call.
    pub fn send(&self, op: Op) -> Result<(), StoreError> {
        self.worker.send(op).map_err(|op| {
            op.finish(Err(StoreError::WriterStopped));
            StoreError::WriterStopped
        })
    }

    /// Stops the writer before its next batch until the hold is dropped;
    /// writes queued meanwhile form that batch.
    #[cfg(test)]
    pub fn hold(&self) -> Hold {
        *self.gate.held.lock().unwrap_or_else(|p| p.into_inner()) = true;
        Hold(self.gate.clone())
    }
}

/// The writer thread: batches until the queue is closed and drained.
fn run(
    db: &Database,
    tables: LogTables,
    mut wal: WalWriter,
    overlay: &Overlay,
    gate: &Gate,
    rx: Receiver<Op>,
) {
    let mut failure: Option<Arc<StoreError>> = None;
    while let Ok(first) = rx.recv() {
        gate.pass();
        let mut batch = vec![first];
        drain(&rx, &mut batch);
        let result = match &failure {
            Some(cause) => Err(cause.clone()),
            None => write_batch(db, tables, &mut wal, &batch).map_err(Arc::new),
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

/// Performs `batch` in order and makes it durable with one final sync.
fn write_batch(
    db: &Database,
    tables: LogTables,
    wal: &mut WalWriter,
    batch: &[Op],
) -> Result<(), StoreError> {
    for op in batch {
        op.apply(db, tables, wal)?;
    }
    wal.sync()?;
    Ok(())
}

/// Forgets the batch's appends and truncations in the overlay (after they are
/// durable, so readers find them in the log from now on).
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
