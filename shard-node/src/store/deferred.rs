//! [`AppliedState`]: the state machine as openraft counts it applied, i.e.
//! what redb holds plus the changes of applies staged in memory and not
//! written yet ([`Staged`]), so that applies stay off the log's fsyncs. The
//! state machine, the snapshot builder and [`super::KvReader`] share one
//! handle, which also carries the redb file and the partition mode.
//!
//! Why: every redb commit, durable or not, rewrites the B-tree path of each
//! table it touches and records the pages it frees (about 0.1 ms of CPU for
//! one put's kv, dedup and meta tables). Applies are therefore computed
//! against the staged changes laid over redb and written, up to
//! [`MAX_ENTRIES`] entries (or [`MAX_BYTES`] of payload), in one
//! transaction. (Built when the log shared the redb file, where each
//! durable log append also flushed the pages of the applies before it:
//! about 19 page writes per put instead of 10 at concurrency 1.) The
//! answers do not wait for that write; they are computed by the same logic
//! over the same state.
//!
//! What keeps every read exact: reads of user data lay the staged changes
//! over redb ([`AppliedState::kv_view`]); every other read of redb's
//! state-machine tables (key counts, building or installing a snapshot,
//! openraft's `applied_state`) calls [`AppliedState::settle`] first
//! ([`AppliedState::read_txn`] does), which writes the staged changes.
//!
//! Crash safety is that of any non-durable apply (see
//! `state_machine::apply_entries`): staged entries are committed, so they are
//! in this node's log, which keeps them until a snapshot covers them, and a
//! snapshot is built only after the changes are written. After a restart
//! openraft re-applies them from the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::EntryPayload;
use redb::{Database, ReadTransaction, ReadableDatabase};
use shardline_proto::keyspace::PartitionMode;
use shardline_raft::store::StoreError;

use shardline_raft::store::applied::LAST_APPLIED;
use shardline_raft::store::{get_record, CheckpointBusy};

use super::staged::{Changes, Staged};
use super::state_machine::apply_entries;
use super::tables;
use crate::types::{Applied, Entry, LogId};

/// Most entries staged before the changes are written in one (non-durable)
/// redb commit. Measured while the log shared the redb file, when each
/// write put the state machine's pages into the next log fsync: in a 50/50
/// mixed workload at concurrency 16, 16 instead of 64 took p99
/// from 7.8 to 5.8 ms for reads and 11.4 to 7.6 ms for writes (three
/// alternated runs; 16.3 vs 18.3 and 19.2 vs 21.1 ms at 64), while pure
/// puts moved within the noise (-5% at concurrency 1, +6% at 256).
pub(crate) const MAX_ENTRIES: usize = 16;
/// Most payload bytes (keys and values) staged before the changes are
/// written. Writing holds redb's write lock (the apply that writes waits
/// for it), so the bound keeps that pause short (a few hundred writes):
/// with 8 MiB, put p99 at concurrency 256 went from 43 to 141 ms.
pub(crate) const MAX_BYTES: usize = 128 * 1024;
/// Most payload bytes staged while a checkpoint holds redb's write lock
/// (see [`CheckpointBusy`]); past it an apply waits for the lock after all.
/// A checkpoint at concurrency 256 takes 50-250 ms here, during which about
/// 1 MiB of payload is applied.
pub(crate) const MAX_BYTES_DURING_CHECKPOINT: usize = 4 * 1024 * 1024;

/// One node's applied state: its redb file, partition mode and staged
/// changes.
pub(crate) struct AppliedState {
    db: Arc<Database>,
    /// Set while the log store's checkpoint commits: writing staged changes
    /// then would wait for its flush, so applies keep staging instead.
    checkpoint: CheckpointBusy,
    /// Maps user keys to storage keys.
    mode: PartitionMode,
    pending: Mutex<Pending>,
    /// True while changes may be staged: set when an apply stages them,
    /// cleared once they are written to redb (both under the lock), so a
    /// reader that sees `false` has nothing to wait for.
    staged: AtomicBool,
}

#[derive(Default)]
struct Pending {
    changes: Staged,
    /// An apply or a write of staged changes failed: the applied state in
    /// memory is lost or partial, so applies and reads must fail rather than
    /// miss it (openraft stops on the same error).
    failed: bool,
}

impl AppliedState {
    pub(crate) fn new(db: Arc<Database>, mode: PartitionMode, checkpoint: CheckpointBusy) -> Self {
        AppliedState {
            db,
            checkpoint,
            mode,
            pending: Mutex::default(),
            staged: AtomicBool::new(false),
        }
    }

    /// The redb file; read through [`Self::read_txn`] to see staged applies.
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    pub(crate) fn mode(&self) -> PartitionMode {
        self.mode
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether applying `entries` may write the staged changes to redb (and
    /// so wait for its write lock and page writes): it would take them past
    /// the bounds. Applies that only stage are computed in memory over
    /// redb's cached pages and are cheap enough to run on an async worker.
    pub(crate) fn apply_may_write(&self, entries: &[Entry]) -> bool {
        let pending = self.lock();
        let bytes: usize = entries.iter().map(payload_bytes).sum();
        write_due(
            pending.changes.entries + entries.len(),
            pending.changes.bytes + bytes,
        )
    }

    /// Applies `entries` over the staged changes and returns their results
    /// (one list per entry); writes the changes once they exceed the bounds.
    pub(crate) fn apply(&self, entries: Vec<Entry>) -> Result<Vec<Vec<Applied>>, StoreError> {
        let mut pending = self.lock();
        if pending.failed {
            return Err(StoreError::DeferredLost);
        }
        let count = entries.len();
        let bytes: usize = entries.iter().map(payload_bytes).sum();
        let results = match apply_entries(&self.db, self.mode, &mut pending.changes, entries) {
            Ok(results) => results,
            Err(e) => {
                // Part of the batch may be staged: readers must see the
                // failure (the flag sends them to the lock), not a guess.
                pending.failed = true;
                self.staged.store(true, Ordering::Release);
                return Err(e);
            }
        };
        pending.changes.entries += count;
        pending.changes.bytes += bytes;
        self.staged.store(true, Ordering::Release);
        let due = write_due(pending.changes.entries, pending.changes.bytes);
        if due
            && (!self.checkpoint.is_busy() || pending.changes.bytes > MAX_BYTES_DURING_CHECKPOINT)
        {
            self.write(&mut pending)?;
        }
        Ok(results)
    }

    /// Writes the staged changes to redb (under the lock).
    fn write(&self, pending: &mut Pending) -> Result<(), StoreError> {
        if !pending.changes.is_empty() {
            if let Err(e) = pending.changes.write(&self.db) {
                pending.failed = true;
                return Err(e);
            }
            tracing::trace!(entries = pending.changes.entries, "wrote staged applies");
            pending.changes = Staged::default();
        }
        self.staged.store(false, Ordering::Release);
        Ok(())
    }

    /// Writes the staged changes, if any, so that a read of redb sees
    /// everything openraft counts as applied.
    pub(crate) fn settle(&self) -> Result<(), StoreError> {
        if !self.staged.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut pending = self.lock();
        if pending.failed {
            return Err(StoreError::DeferredLost);
        }
        self.write(&mut pending)
    }

    /// `pick`'s view of the staged kv changes and a redb read transaction,
    /// taken under the lock so that they belong together: redb's
    /// state-machine tables change only when staged changes are written
    /// (under the lock) or a snapshot is installed (after settling). Reads
    /// of user data lay the first over the second instead of settling, so
    /// they never wait for redb's write lock.
    pub(crate) fn kv_view<T>(
        &self,
        pick: impl FnOnce(&Changes<&'static [u8]>) -> T,
    ) -> Result<(T, ReadTransaction), StoreError> {
        if !self.staged.load(Ordering::Acquire) {
            // Nothing staged: redb holds every apply so far, and a later
            // stage or write leaves it a consistent prefix.
            return Ok((pick(&Changes::default()), self.db.begin_read()?));
        }
        let pending = self.lock();
        if pending.failed {
            return Err(StoreError::DeferredLost);
        }
        let picked = pick(&pending.changes.kv);
        Ok((picked, self.db.begin_read()?))
    }

    /// The last applied log id: the staged one, else redb's.
    pub(crate) fn last_applied(&self) -> Result<Option<LogId>, StoreError> {
        let pending = self.lock();
        if pending.failed {
            return Err(StoreError::DeferredLost);
        }
        if let Some(last) = pending.changes.last_applied {
            return Ok(Some(last));
        }
        let txn = self.db.begin_read()?;
        get_record(&txn.open_table(tables::SM_META)?, LAST_APPLIED)
    }

    /// A read transaction that sees every applied entry (the staged changes
    /// are written first).
    pub(crate) fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        self.settle()?;
        Ok(self.db.begin_read()?)
    }

    /// Entries staged now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().changes.entries
    }
}

/// Whether `entries` staged entries holding `bytes` of payload are written.
fn write_due(entries: usize, bytes: usize) -> bool {
    entries > MAX_ENTRIES || bytes > MAX_BYTES
}

/// Approximate payload of an entry (keys and values), for [`MAX_BYTES`].
fn payload_bytes(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(proposal) => proposal.commands.iter().map(|c| c.weight()).sum(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    }
}
