//! [`AppliedState`]: the state machine as openraft counts it applied, i.e.
//! what redb holds plus the committed entries queued but not written yet
//! (deferred), so that a follower's applies stay off its log fsyncs. The
//! state machine, the snapshot builder and [`super::KvReader`] share one
//! handle, which also carries the redb file and the partition mode.
//!
//! Why: the log and the state machine share one redb file, and a durable log
//! append flushes every page that the (non-durable) applies since the
//! previous append dirtied. A follower answers nobody from its applies, so it
//! queues them here and writes up to [`MAX_ENTRIES`] entries (or
//! [`MAX_BYTES`] of payload) in one transaction: the state machine's pages
//! ride along with one append in that many instead of with every append.
//!
//! What keeps every read exact:
//! - only entries without a responder are queued (nobody waits for their
//!   results), and only while the queue stays within its bounds;
//! - an apply that answers someone writes the queue first, in the same
//!   transaction and in log order, so its results see every earlier entry;
//! - every read of the state machine ([`super::KvReader`], building or
//!   installing a snapshot, openraft's `applied_state`) calls
//!   [`AppliedState::settle`] first ([`AppliedState::read_txn`] does), which
//!   writes the queue.
//!
//! Crash safety is that of any non-durable apply (see
//! `state_machine::apply_entries`): queued entries are committed, so they are
//! in this node's log, which keeps them until a snapshot covers them, and a
//! snapshot is built only after the queue is settled. After a restart
//! openraft re-applies them from the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::EntryPayload;
use redb::{Database, ReadTransaction, ReadableDatabase};
use shardline_proto::keyspace::PartitionMode;
use shardline_raft::store::StoreError;

use super::state_machine::apply_entries;
use crate::types::{Applied, Entry};

/// Most entries queued before the queue is written.
pub(crate) const MAX_ENTRIES: usize = 64;
/// Most payload bytes (keys and values) queued before the queue is written.
/// Writing the queue holds redb's write lock, which the log writer waits
/// for, so the bound keeps that pause short (a few hundred writes): with
/// 8 MiB, put p99 at concurrency 256 went from 43 to 141 ms.
pub(crate) const MAX_BYTES: usize = 128 * 1024;

/// One node's applied state: its redb file, partition mode and deferred
/// queue.
pub(crate) struct AppliedState {
    db: Arc<Database>,
    /// Maps user keys to storage keys.
    mode: PartitionMode,
    queue: Mutex<Queue>,
    /// True while the queue may hold entries: set when entries are queued,
    /// cleared once they are committed to redb (both under the lock), so a
    /// reader that sees `false` has nothing to wait for.
    pending: AtomicBool,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    bytes: usize,
    /// A write of queued entries failed: they are lost from memory, so reads
    /// must fail rather than miss them (openraft stops on the same error).
    failed: bool,
}

impl AppliedState {
    pub(crate) fn new(db: Arc<Database>, mode: PartitionMode) -> Self {
        AppliedState {
            db,
            mode,
            queue: Mutex::default(),
            pending: AtomicBool::new(false),
        }
    }

    /// The redb file; read through [`Self::read_txn`] to see deferred applies.
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    pub(crate) fn mode(&self) -> PartitionMode {
        self.mode
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `entries` (none of which has a responder) if the queue stays
    /// within its bounds; otherwise hands them back to be applied now.
    pub(crate) fn try_defer(&self, entries: Vec<Entry>) -> Result<(), Vec<Entry>> {
        let mut queue = self.lock();
        let bytes: usize = entries.iter().map(payload_bytes).sum();
        if queue.failed
            || queue.entries.len() + entries.len() > MAX_ENTRIES
            || queue.bytes + bytes > MAX_BYTES
        {
            return Err(entries);
        }
        queue.entries.extend(entries);
        queue.bytes += bytes;
        self.pending.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies the queue, then `entries`, in one transaction, and returns
    /// the results of `entries` (one list per entry).
    pub(crate) fn apply_after_queue(
        &self,
        entries: Vec<Entry>,
    ) -> Result<Vec<Vec<Applied>>, StoreError> {
        let mut queue = self.lock();
        if queue.failed {
            return Err(StoreError::DeferredLost);
        }
        let mut all = std::mem::take(&mut queue.entries);
        queue.bytes = 0;
        let queued = all.len();
        if queued == 0 && entries.is_empty() {
            self.pending.store(false, Ordering::Release);
            return Ok(Vec::new());
        }
        all.extend(entries);
        match apply_entries(&self.db, self.mode, all) {
            Ok(mut results) => {
                self.pending.store(false, Ordering::Release);
                if queued > 0 {
                    tracing::trace!(queued, "wrote deferred applies");
                }
                Ok(results.split_off(queued))
            }
            Err(e) => {
                queue.failed = true;
                Err(e)
            }
        }
    }

    /// Writes the queue, if anything is queued, so that a read of redb sees
    /// everything openraft counts as applied.
    pub(crate) fn settle(&self) -> Result<(), StoreError> {
        if !self.pending.load(Ordering::Acquire) {
            return Ok(());
        }
        self.apply_after_queue(Vec::new()).map(drop)
    }

    /// A read transaction that sees every applied entry (the queue is
    /// written first).
    pub(crate) fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        self.settle()?;
        Ok(self.db.begin_read()?)
    }

    /// Entries queued now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Approximate payload of an entry (keys and values), for [`MAX_BYTES`].
fn payload_bytes(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(proposal) => proposal.commands.iter().map(|c| c.weight()).sum(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    }
}
