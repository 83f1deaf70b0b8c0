//! [`LogStore`]: openraft's log storage over two redb tables of a member's
//! file, named by [`LogTables`] so the state machine's tables can live in the
//! same file.
//!
//! Every write that openraft relies on for safety (appended entries, the
//! vote, truncation, purge) is committed with `Durability::Immediate`, and the
//! append callback fires only after that commit returned, so an acknowledged
//! entry survives `kill -9`. Write transactions run on tokio's blocking pool:
//! an fsync, or waiting for redb's single writer lock, must not stall the
//! async workers that serve gRPC.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use std::io;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::{decode, encode};
use super::error::StoreError;
use super::records::{get_record, put_record, MetaTable};
use crate::{LogId, RaftTypes, Vote};

/// Record names in the log metadata table.
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

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

/// The Raft log of one member. Cloning shares the database and the pending
/// committed id (the clone is also the log reader openraft hands to
/// replication tasks).
pub struct LogStore<C> {
    db: Arc<Database>,
    tables: LogTables,
    /// The newest committed id from `save_committed`, not yet written: it
    /// rides along with the next durable log write instead of costing a
    /// write transaction of its own.
    committed: Arc<Mutex<Option<LogId>>>,
    _types: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            tables: self.tables,
            committed: self.committed.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypes> LogStore<C> {
    /// The log in `tables` of `db`, creating the tables if missing.
    pub fn open(db: Arc<Database>, tables: LogTables) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(tables.log)?;
        txn.open_table(tables.meta)?;
        txn.commit()?;
        Ok(LogStore {
            db,
            tables,
            committed: Arc::default(),
            _types: PhantomData,
        })
    }

    /// Runs `f` in one durable write transaction ([`super::blocking::run`]); `f`
    /// gets the log's table definitions. The pending committed id, if any, is
    /// written in the same transaction.
    async fn write<F>(&self, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&redb::WriteTransaction, LogTables) -> Result<(), StoreError> + Send + 'static,
    {
        let (db, tables, pending) = (self.db.clone(), self.tables, self.committed.clone());
        super::blocking::run(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            f(&txn, tables)?;
            let committed = *lock(&pending);
            if let Some(id) = committed {
                let mut meta = txn.open_table(tables.meta)?;
                put_record(&mut meta, COMMITTED, &id)?;
            }
            txn.commit()?;
            // Forget it only if no newer id arrived meanwhile.
            let mut slot = lock(&pending);
            if *slot == committed {
                *slot = None;
            }
            Ok(())
        })
        .await
    }

    fn read_raft_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(self.tables.meta)?;
        get_record(&table, key)
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<C::Entry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(self.tables.log)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(range)? {
            let (_, value) = item?;
            out.push(decode::<C::Entry>("log entry", value.value())?);
        }
        Ok(out)
    }

    fn log_state(&self) -> Result<LogState<C>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(self.tables.meta)?;
        let last_purged: Option<LogId> = get_record(&meta, LAST_PURGED)?;
        let log = txn.open_table(self.tables.log)?;
        let last = match log.last()? {
            Some((_, value)) => Some(decode::<C::Entry>("log entry", value.value())?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }
}

impl<C: RaftTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(StoreError::read_logs)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_raft_meta(VOTE).map_err(StoreError::read_vote)
    }
}

impl<C: RaftTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStore<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        self.log_state().map_err(StoreError::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.write(move |txn, t| {
            let mut meta = txn.open_table(t.meta)?;
            put_record(&mut meta, VOTE, &vote)
        })
        .await
        .map_err(StoreError::write_vote)
    }

    /// Records the committed log id so a restart re-applies `(last_applied,
    /// committed]` from the log. It is kept in memory and written with the
    /// next durable log write (append, vote, truncation, purge): a write
    /// transaction per commit cost as much as the append itself, and losing
    /// the newest value only means a restarted node re-applies less at
    /// startup and learns the rest from the leader. What is on disk is never
    /// ahead of the log: entries are committed only once appended.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(id) = committed {
            let mut slot = lock(&self.committed);
            if slot.is_none_or(|pending| pending < id) {
                *slot = Some(id);
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let pending = *lock(&self.committed);
        let stored: Option<LogId> = self
            .read_raft_meta(COMMITTED)
            .map_err(StoreError::read_logs)?;
        Ok(pending.max(stored))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = encode("log entry", &entry).map_err(StoreError::write_logs)?;
            encoded.push((entry.log_id.index, bytes));
        }
        let count = encoded.len();
        let result = self
            .write(move |txn, t| {
                let mut log = txn.open_table(t.log)?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                tracing::trace!(count, "appended log entries");
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::other(e.to_string())));
                Err(e.write_logs())
            }
        }
    }

    /// Removes every entry after `last_log_id` (all of them for `None`).
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        tracing::debug!(?last_log_id, "truncating log after");
        let first_removed = last_log_id.map_or(0, |id| id.index + 1);
        self.write(move |txn, t| {
            let mut log = txn.open_table(t.log)?;
            log.retain_in::<u64, _>(first_removed.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(StoreError::write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        tracing::debug!(%log_id, "purging log up to");
        self.write(move |txn, t| {
            let mut meta = txn.open_table(t.meta)?;
            let previous: Option<LogId> = get_record(&meta, LAST_PURGED)?;
            if previous.is_some_and(|p| p >= log_id) {
                return Ok(());
            }
            put_record(&mut meta, LAST_PURGED, &log_id)?;
            let mut log = txn.open_table(t.log)?;
            log.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(StoreError::write_logs)
    }
}

/// Locks the pending committed id; a panic elsewhere cannot leave it torn (it
/// is a plain `Copy` value), so a poisoned lock is taken as is.
fn lock(m: &Mutex<Option<LogId>>) -> std::sync::MutexGuard<'_, Option<LogId>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
