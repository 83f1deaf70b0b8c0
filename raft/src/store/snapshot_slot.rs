//! The current snapshot of a state machine, kept in one redb table of the
//! member's file so it survives restarts: its meta and its bytes. (Stores
//! written under openraft 0.9 also hold a `counter` record that numbered
//! snapshot ids; openraft 0.10's snapshot meta has no id, so it is unused.)
//!
//! A state machine builds its payload however it likes (from a read
//! transaction or from memory) and hands the bytes to [`SnapshotSlot::store_built`];
//! installing a received snapshot calls [`SnapshotSlot::put`] inside the
//! transaction that replaces the state machine's data.

use std::io::Cursor;

use openraft::LogIdOptionExt;
use redb::{Database, ReadableDatabase, WriteTransaction};

use super::error::StoreError;
use super::records::{commit_durably, get_record, put_record, MetaTable};
use crate::{LogId, Snapshot, SnapshotMeta, StoredMembership};

const META: &str = "meta";
const DATA: &str = "data";

/// The table holding the current snapshot.
#[derive(Clone, Copy)]
pub struct SnapshotSlot {
    table: MetaTable,
}

impl SnapshotSlot {
    /// The slot in table `name`.
    pub const fn new(name: &'static str) -> Self {
        SnapshotSlot {
            table: MetaTable::new(name),
        }
    }

    /// Creates the table if missing (call from the store's init transaction).
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(self.table)?;
        Ok(())
    }

    /// Stores a freshly built snapshot of state at `last_applied` durably,
    /// unless a newer one is already stored, and returns it.
    pub fn store_built(
        &self,
        db: &Database,
        last_applied: Option<LogId>,
        last_membership: StoredMembership,
        bytes: Vec<u8>,
    ) -> Result<Snapshot, StoreError> {
        let txn = db.begin_write()?;
        let meta = {
            let mut table = txn.open_table(self.table)?;
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
            };
            let stored: Option<SnapshotMeta> = get_record(&table, META)?;
            if stored
                .as_ref()
                .is_none_or(|s| s.last_log_id <= meta.last_log_id)
            {
                put_record(&mut table, META, &meta)?;
                table.insert(DATA, bytes.as_slice())?;
            } else {
                tracing::debug!(index = ?meta.last_log_id.index(), "a newer snapshot is stored; keeping it");
            }
            meta
        };
        commit_durably(txn)?;
        tracing::info!(index = ?meta.last_log_id.index(), bytes = bytes.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(bytes),
        })
    }

    /// Makes `(meta, bytes)` the current snapshot within `txn` (installing a
    /// received snapshot).
    pub fn put(
        &self,
        txn: &WriteTransaction,
        meta: &SnapshotMeta,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(self.table)?;
        put_record(&mut table, META, meta)?;
        table.insert(DATA, bytes)?;
        Ok(())
    }

    /// The current snapshot stored in the file, if any.
    pub fn current(&self, db: &Database) -> Result<Option<Snapshot>, StoreError> {
        let txn = db.begin_read()?;
        let table = txn.open_table(self.table)?;
        let Some(meta) = get_record::<SnapshotMeta, _>(&table, META)? else {
            return Ok(None);
        };
        let data = table
            .get(DATA)?
            .map(|g| g.value().to_vec())
            .ok_or(StoreError::Missing {
                table: "snapshot",
                key: DATA,
            })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        }))
    }
}
