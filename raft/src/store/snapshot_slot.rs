//! The current snapshot of a state machine, kept in one redb table of the
//! member's file so it survives restarts: its meta, its bytes and a counter
//! that makes snapshot ids unique on this member.
//!
//! A state machine builds its payload however it likes (from a read
//! transaction or from memory) and hands the bytes to [`SnapshotSlot::store_built`];
//! installing a received snapshot calls [`SnapshotSlot::put`] inside the
//! transaction that replaces the state machine's data.

use std::io::Cursor;

use redb::{Database, Durability, ReadableDatabase, WriteTransaction};

use super::error::StoreError;
use super::records::{get_record, put_record, MetaTable};
use crate::{LogId, RaftTypes, SnapshotMeta, StoredMembership};

const META: &str = "meta";
const DATA: &str = "data";
const COUNTER: &str = "counter";

/// The table holding the current snapshot.
#[derive(Clone, Copy)]
pub struct SnapshotSlot {
    table: MetaTable,
}

/// A snapshot id unique on this member: last log id plus a persisted counter.
fn snapshot_id(last: Option<LogId>, counter: u64) -> String {
    match last {
        Some(id) => format!("{}-{}-{counter}", id.leader_id, id.index),
        None => format!("empty-{counter}"),
    }
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
    pub fn store_built<C: RaftTypes>(
        &self,
        db: &Database,
        last_applied: Option<LogId>,
        last_membership: StoredMembership,
        bytes: Vec<u8>,
    ) -> Result<openraft::Snapshot<C>, StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let meta = {
            let mut table = txn.open_table(self.table)?;
            let counter = get_record::<u64, _>(&table, COUNTER)?.unwrap_or(0) + 1;
            put_record(&mut table, COUNTER, &counter)?;
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
                snapshot_id: snapshot_id(last_applied, counter),
            };
            let stored: Option<SnapshotMeta> = get_record(&table, META)?;
            if stored
                .as_ref()
                .is_none_or(|s| s.last_log_id <= meta.last_log_id)
            {
                put_record(&mut table, META, &meta)?;
                table.insert(DATA, bytes.as_slice())?;
            } else {
                tracing::debug!(snapshot_id = %meta.snapshot_id, "a newer snapshot is stored; keeping it");
            }
            meta
        };
        txn.commit()?;
        tracing::info!(snapshot_id = %meta.snapshot_id, bytes = bytes.len(), "built snapshot");
        Ok(openraft::Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
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
    pub fn current<C: RaftTypes>(
        &self,
        db: &Database,
    ) -> Result<Option<openraft::Snapshot<C>>, StoreError> {
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
        Ok(Some(openraft::Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
