//! [`LogStore`]: openraft's log storage over the redb `raft_log` and
//! `raft_meta` tables.
//!
//! Every write that openraft relies on for safety (appended entries, the
//! vote, truncation, purge) is committed with `Durability::Immediate`, and the
//! append callback fires only after that commit returned, so an acknowledged
//! entry survives `kill -9`. Write transactions run on tokio's blocking pool:
//! an fsync, or waiting for redb's single writer lock, must not stall the
//! async workers that serve gRPC.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::codec::{decode, encode};
use super::error::StoreError;
use super::tables::{self, get_record, put_record};
use crate::types::{Entry, LogId, NodeId, TypeConfig, Vote};

/// The Raft log of one node. Cloning shares the database (the clone is also
/// the log reader openraft hands to replication tasks).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        LogStore { db }
    }

    /// Runs `f` in one write transaction on the blocking pool and commits it
    /// with `durability`.
    async fn write<F>(&self, durability: Durability, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)?;
            f(&txn)?;
            txn.commit()?;
            Ok(())
        })
        .await?
    }

    fn read_raft_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::RAFT_META)?;
        get_record(&table, key)
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::LOG)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(range)? {
            let (_, value) = item?;
            out.push(decode::<Entry>("log entry", value.value())?);
        }
        Ok(out)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(tables::RAFT_META)?;
        let last_purged: Option<LogId> = get_record(&meta, tables::LAST_PURGED)?;
        let log = txn.open_table(tables::LOG)?;
        let last = match log.last()? {
            Some((_, value)) => Some(decode::<Entry>("log entry", value.value())?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(StoreError::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        self.log_state().map_err(StoreError::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.write(Durability::Immediate, move |txn| {
            let mut meta = txn.open_table(tables::RAFT_META)?;
            put_record(&mut meta, tables::VOTE, &vote)
        })
        .await
        .map_err(StoreError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError<NodeId>> {
        self.read_raft_meta(tables::VOTE)
            .map_err(StoreError::read_vote)
    }

    /// Records the committed log id so a restart re-applies `(last_applied,
    /// committed]` from the log. Not fsynced: losing it only means the node
    /// re-applies less at startup and learns the rest from the leader, and the
    /// next durable log write persists it anyway (redb commits are ordered).
    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> Result<(), StorageError<NodeId>> {
        self.write(Durability::None, move |txn| {
            let mut meta = txn.open_table(tables::RAFT_META)?;
            match committed {
                Some(id) => put_record(&mut meta, tables::COMMITTED, &id),
                None => meta
                    .remove(tables::COMMITTED)
                    .map(|_| ())
                    .map_err(StoreError::from),
            }
        })
        .await
        .map_err(StoreError::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<NodeId>> {
        self.read_raft_meta(tables::COMMITTED)
            .map_err(StoreError::read_logs)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = encode("log entry", &entry).map_err(StoreError::write_logs)?;
            encoded.push((entry.log_id.index, bytes));
        }
        let count = encoded.len();
        let result = self
            .write(Durability::Immediate, move |txn| {
                let mut log = txn.open_table(tables::LOG)?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                tracing::trace!(count, "appended log entries");
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.write_logs())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "truncating log from");
        self.write(Durability::Immediate, move |txn| {
            let mut log = txn.open_table(tables::LOG)?;
            log.retain_in::<u64, _>(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(StoreError::write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "purging log up to");
        self.write(Durability::Immediate, move |txn| {
            let mut meta = txn.open_table(tables::RAFT_META)?;
            let previous: Option<LogId> = get_record(&meta, tables::LAST_PURGED)?;
            if previous.is_some_and(|p| p >= log_id) {
                return Ok(());
            }
            put_record(&mut meta, tables::LAST_PURGED, &log_id)?;
            let mut log = txn.open_table(tables::LOG)?;
            log.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(StoreError::write_logs)
    }
}
