//! [`Checkpointer`]: the thread that makes a member's redb file durable
//! about once a second, and the committed log id with it.
//!
//! State machines apply with `Durability::None`: their commits are ordered
//! but not flushed. Since the log lives in its own files ([`super::wal`]), no
//! log write flushes redb any more, so this thread commits durably (an
//! fsync of everything committed since the last one) whenever entries were
//! committed since its last pass, and on shutdown. It writes the newest
//! committed id that the durable log holds, so a restarted member re-applies
//! `(last_applied, committed]` from its log.
//!
//! A durable commit holds redb's write lock while it writes and flushes
//! what the non-durable commits since the last one left in redb's write
//! buffer: under load, megabytes of state-machine pages, 50-250 ms at
//! concurrency 256 here. A state machine that would wait for the lock to
//! write its staged changes asks [`CheckpointBusy`] first and keeps staging
//! meanwhile (put p99 at concurrency 256 was 121 ms when applies waited,
//! 36 ms with no checkpoint at all).
//!
//! What a crash loses of the state machine is re-applied from the log at
//! startup (openraft re-applies from the durable `last_applied`); snapshots
//! and the purge point are written durably by their own commits, which also
//! flush every earlier one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::Database;

use super::error::StoreError;
use super::log_store::{LogTables, COMMITTED};
use super::records::{commit_durably, put_record};
use super::wal::WalReader;
use super::worker::Worker;
use crate::LogId;

/// The newest committed id openraft reported.
pub(super) type CommittedSlot = Arc<Mutex<Option<LogId>>>;

/// Locks a committed slot; it holds a plain `Copy` value, so a poisoned lock
/// is taken as is.
pub(super) fn lock_slot(slot: &Mutex<Option<LogId>>) -> std::sync::MutexGuard<'_, Option<LogId>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often the redb file is made durable while entries are committed.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a checkpoint is committing (and so holds redb's write lock).
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct CheckpointBusy(Arc<AtomicBool>);

impl CheckpointBusy {
    pub fn is_busy(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Marks a checkpoint busy until dropped.
struct BusyGuard<'a>(&'a AtomicBool);

impl<'a> BusyGuard<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        BusyGuard(flag)
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A request to checkpoint now; the outcome is sent back.
type Request = Sender<Result<(), Arc<StoreError>>>;

/// The handle of the checkpoint thread; dropping it runs a last checkpoint
/// and waits for the thread.
pub(super) struct Checkpointer(Worker<Request>);

/// What the thread works on.
struct Target {
    db: Arc<Database>,
    busy: CheckpointBusy,
    tables: LogTables,
    committed: CommittedSlot,
    wal: WalReader,
    /// The committed id of the last checkpoint.
    done: Option<LogId>,
}

impl Checkpointer {
    pub fn spawn(
        db: Arc<Database>,
        busy: CheckpointBusy,
        tables: LogTables,
        committed: CommittedSlot,
        wal: WalReader,
        interval: Duration,
    ) -> Result<Self, StoreError> {
        let mut target = Target {
            db,
            busy,
            tables,
            committed,
            wal,
            done: None,
        };
        Worker::spawn(
            "shardline-checkpoint",
            move |rx: mpsc::Receiver<Request>| loop {
                match rx.recv_timeout(interval) {
                    Ok(reply) => {
                        let _ = reply.send(target.run(true).map_err(Arc::new));
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(error) = target.run(false) {
                            tracing::error!(%error, "checkpoint of the redb file failed; retrying");
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        if let Err(error) = target.run(true) {
                            tracing::error!(%error, "last checkpoint of the redb file failed");
                        }
                        return;
                    }
                }
            },
        )
        .map(Checkpointer)
    }

    /// Checkpoints now and waits for it.
    pub fn now(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.0.send(tx).map_err(|_| StoreError::WriterStopped)?;
        rx.recv()
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(StoreError::LogWrite)
    }
}

impl Target {
    /// Commits durably if entries were committed since the last pass (or if
    /// `always`), writing the committed id when the durable log holds it.
    fn run(&mut self, always: bool) -> Result<(), StoreError> {
        let pending = *lock_slot(&self.committed);
        if !always && pending == self.done {
            return Ok(());
        }
        let _busy = BusyGuard::new(&self.busy.0);
        let txn = self.db.begin_write()?;
        let held = pending.filter(|id| self.wal.last_index().is_some_and(|last| last >= id.index));
        if let Some(id) = held {
            put_record(&mut txn.open_table(self.tables.meta)?, COMMITTED, &id)?;
        }
        commit_durably(txn)?;
        if held.is_some() {
            self.done = held;
        }
        tracing::trace!(committed = ?held, "checkpoint");
        Ok(())
    }
}
