//! [`Overlay`]: the part of a member's log that is queued for the log writer
//! but not yet durable, which readers lay over the durable log.
//!
//! openraft reads entries as soon as `append` returns, before they are
//! durable, so appended entries wait here until the writer's batch that
//! holds them is durable. A truncation in flight hides the durable entries it
//! is about to delete. Every change to the overlay and the send of the
//! matching write to the writer happen under one lock, so the writer's queue
//! order and the overlay agree. The writer publishes entries to the log's
//! readers before it settles them here, so a reader that copies the overlay
//! and then reads the log never finds an entry in neither place.

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::error::StoreError;
use crate::LogId;

/// An encoded log entry, shared by the overlay and the queued write.
pub(super) type EntryBytes = Arc<[u8]>;

/// Appended entries not yet durable, and the truncations in flight.
pub(super) struct Overlay {
    state: Mutex<State>,
}

/// One appended entry waiting for its commit.
struct Pending {
    /// Sequence number of the append that wrote it. The writer removes an
    /// entry only if it still carries the sequence number of the append it
    /// committed, so an entry truncated and appended again is never dropped
    /// by the commit of its predecessor.
    seq: u64,
    log_id: LogId,
    bytes: EntryBytes,
}

struct State {
    /// index -> the entry appended there, encoded as in redb.
    pending: BTreeMap<u64, Pending>,
    /// Sequence number of the next append.
    next_seq: u64,
    /// Committed entries from this index on are being truncated: readers must
    /// not see them. `None` when no truncation is in flight.
    hidden_from: Option<u64>,
    /// Truncations queued and not yet settled by the writer.
    truncates_in_flight: usize,
}

/// What a reader sees of the overlay.
pub(super) struct View<T> {
    /// Pending entries (or their summary) the reader asked for.
    pub pending: T,
    /// Durable entries at this index or above are being truncated.
    pub hidden_from: Option<u64>,
}

impl Overlay {
    pub fn new() -> Self {
        Overlay {
            state: Mutex::new(State {
                pending: BTreeMap::new(),
                next_seq: 0,
                hidden_from: None,
                truncates_in_flight: 0,
            }),
        }
    }

    /// The state; a panic while holding the lock leaves it consistent (every
    /// critical section is a few map operations), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `entries` readable and hands them to the writer: `enqueue` gets
    /// the append's sequence number and sends the write. Nothing is inserted
    /// if `enqueue` fails.
    pub fn append(
        &self,
        entries: &[(LogId, EntryBytes)],
        enqueue: impl FnOnce(u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let seq = state.next_seq;
        enqueue(seq)?;
        state.next_seq += 1;
        for (log_id, bytes) in entries {
            let pending = Pending {
                seq,
                log_id: *log_id,
                bytes: bytes.clone(),
            };
            state.pending.insert(log_id.index, pending);
        }
        Ok(())
    }

    /// Removes pending entries at `since` and above, hides committed ones
    /// until the writer settles the truncation, and sends it with `enqueue`.
    pub fn truncate(
        &self,
        since: u64,
        enqueue: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        enqueue()?;
        state.pending.split_off(&since);
        state.truncates_in_flight += 1;
        state.hidden_from = Some(state.hidden_from.map_or(since, |h| h.min(since)));
        Ok(())
    }

    /// Called by the writer after a batch committed (or failed): forgets the
    /// entries of its appends, given as `(sequence number, index)`, and its
    /// `truncates` truncations.
    pub fn settle(&self, appended: impl IntoIterator<Item = (u64, u64)>, truncates: usize) {
        let mut state = self.lock();
        for (seq, index) in appended {
            if state.pending.get(&index).is_some_and(|p| p.seq == seq) {
                state.pending.remove(&index);
            }
        }
        state.truncates_in_flight = state.truncates_in_flight.saturating_sub(truncates);
        if state.truncates_in_flight == 0 {
            state.hidden_from = None;
        }
    }

    /// Pending entries in `range` as `(index, bytes)`, in index order.
    pub fn entries<R: RangeBounds<u64>>(&self, range: R) -> View<Vec<(u64, EntryBytes)>> {
        let state = self.lock();
        let pending = state
            .pending
            .range(range)
            .map(|(index, p)| (*index, p.bytes.clone()))
            .collect();
        View {
            pending,
            hidden_from: state.hidden_from,
        }
    }

    /// The last pending entry's log id.
    pub fn last(&self) -> View<Option<LogId>> {
        let state = self.lock();
        let pending = state.pending.last_key_value().map(|(_, p)| p.log_id);
        View {
            pending,
            hidden_from: state.hidden_from,
        }
    }
}
