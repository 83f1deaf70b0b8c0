//! [`KvReader`]: reads of the applied state for the KV and admin services.
//!
//! Each call runs in its own redb read transaction (MVCC: never blocked by
//! the apply path) and sees a consistent state as of some applied log index,
//! at least everything applied when the call began: `get` and `scan` lay the
//! staged applies over it (see [`super::deferred`]); key counts and sizes
//! write them first, the only time a read waits for redb's write lock.
//! Linearizability is the caller's job (read index / lease before reading
//! here).

use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use shardline_proto::keyspace::{KeyRange, PartitionMode};

use shardline_raft::store::codec::decode;
use shardline_raft::store::StoreError;

use super::deferred::AppliedState;
use super::staged::merge;
use super::tables;
use crate::types::LogId;

/// A cloneable read handle on one node's applied key space.
#[derive(Clone)]
pub struct KvReader {
    /// Every read goes through its `read_txn`, so it sees every applied entry.
    state: Arc<AppliedState>,
}

/// Scan output: pairs in user-key order and whether more exist past the limit.
pub type ScanPage = (Vec<(Vec<u8>, Vec<u8>)>, bool);

impl KvReader {
    pub(crate) fn new(state: Arc<AppliedState>) -> Self {
        KvReader { state }
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.state.read_txn()
    }

    /// The value of user key `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let storage_key = self.state.mode().storage_key(key);
        let (staged, txn) = self.state.kv_view(|kv| kv.get(&storage_key))?;
        if let Some(value) = staged {
            return Ok(value);
        }
        let kv = txn.open_table(tables::KV)?;
        Ok(kv.get(storage_key.as_slice())?.map(|g| g.value().to_vec()))
    }

    /// Pairs with `start <= key < end` in ascending USER-key order (empty
    /// `end` = unbounded), at most `limit`; the bool is true when more pairs
    /// exist beyond the limit.
    ///
    /// Range mode walks storage keys (= user keys) in order: O(limit). Hash
    /// mode stores pairs in hash order, so it reads every pair of the group
    /// — O(n) time — keeping only the `limit + 1` smallest matches in a heap
    /// (O(limit) memory), then sorts them.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<ScanPage, StoreError> {
        if !end.is_empty() && start >= end {
            return Ok((Vec::new(), false));
        }
        let in_range = |key: &[u8]| key >= start && (end.is_empty() || key < end);
        let mode = self.state.mode();

        if mode.is_ordered() {
            let upper = if end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(end)
            };
            let range = (Bound::Included(start), upper);
            let (staged, txn) = self.state.kv_view(|kv| kv.copy_range(range.0, range.1))?;
            let kv = txn.open_table(tables::KV)?;
            let mut out = Vec::new();
            for item in merge(owned(kv.range::<&[u8]>(range)?), staged.into_iter()) {
                let (k, v) = item?;
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push((mode.user_key(&k).to_vec(), v));
            }
            return Ok((out, false));
        }

        // Max-heap of the `limit + 1` smallest matching user keys seen so far.
        let keep = limit.saturating_add(1);
        let mut heap: BinaryHeap<(Vec<u8>, Vec<u8>)> = BinaryHeap::new();
        let (staged, txn) = self
            .state
            .kv_view(|kv| kv.copy_range(Bound::Unbounded, Bound::Unbounded))?;
        let kv = txn.open_table(tables::KV)?;
        for item in merge(owned(kv.iter()?), staged.into_iter()) {
            let (k, v) = item?;
            let user_key = mode.user_key(&k);
            if !in_range(user_key) {
                continue;
            }
            if heap.len() == keep
                && heap
                    .peek()
                    .is_some_and(|(max, _)| user_key >= max.as_slice())
            {
                continue;
            }
            heap.push((user_key.to_vec(), v));
            if heap.len() > keep {
                heap.pop();
            }
        }
        let mut out = heap.into_sorted_vec();
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// Number of pairs the group holds (O(1): redb keeps table lengths).
    pub fn key_count(&self) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        Ok(txn.open_table(tables::KV)?.len()?)
    }

    /// Number of pairs the group holds, and the bytes of their stored keys
    /// and values, from one read. The bytes come from redb's table stats,
    /// which walk every page of the table.
    pub fn stored_size(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.read_txn()?;
        let kv = txn.open_table(tables::KV)?;
        Ok((kv.len()?, kv.stats()?.stored_bytes()))
    }

    /// The group's ranges, by id (applies never change them: no settling).
    pub fn ranges(&self) -> Result<Vec<KeyRange>, StoreError> {
        let txn = self.state.db().begin_read()?;
        let table = txn.open_table(tables::RANGES)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, value) = item?;
            out.push(decode("range", value.value())?);
        }
        Ok(out)
    }

    pub fn partition_mode(&self) -> PartitionMode {
        self.state.mode()
    }

    /// The last log id applied to the state machine.
    pub fn last_applied(&self) -> Result<Option<LogId>, StoreError> {
        self.state.last_applied()
    }
}

/// redb's pairs as owned bytes, for [`merge`].
fn owned<'a>(
    pairs: impl Iterator<
            Item = Result<
                (
                    redb::AccessGuard<'a, &'static [u8]>,
                    redb::AccessGuard<'a, &'static [u8]>,
                ),
                redb::StorageError,
            >,
        > + 'a,
) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a {
    pairs.map(|item| {
        item.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
            .map_err(StoreError::from)
    })
}
