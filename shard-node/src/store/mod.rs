//! The storage layer of a shard node: the replicated state machine, range
//! metadata, the client dedup table and the vote in ONE redb file, and the
//! Raft log's entries in the write-ahead log beside it (`<file>.wal/`,
//! `shardline_raft::store::wal`).
//!
//! [`open`] returns three handles on the same [`redb::Database`]:
//! - [`LogStore`]: openraft's `RaftLogStorage` (log entries, vote, committed
//!   and last purged log ids);
//! - [`StateMachineStore`]: openraft's `RaftStateMachine` (applies commands,
//!   builds and installs snapshots);
//! - [`KvReader`]: cheap, cloneable reads of applied data for the KV service.
//!
//! The log store, the record codec, the current-snapshot slot and
//! [`StoreError`] are shared with the controller (`shardline_raft::store`).
//!
//! # Layout
//! - `tables`: the redb table definitions of the state machine.
//! - `state_machine`: [`StateMachineStore`] and the apply path.
//! - `dedup`: the exactly-once session table.
//! - `snapshot`: snapshot payload, build ([`SnapshotBuilder`]) and install.
//! - `reader`: [`KvReader`].
//! - `staged`: applied changes not yet written, read through by the apply
//!   path.
//! - `deferred`: when staged changes are written, so applies stay off the
//!   log's fsyncs.
//!
//! # Durability
//! Log appends, truncation, purge, vote, snapshot build/install and store
//! creation commit with [`redb::Durability::Immediate`] (fsync before
//! `commit` returns). Applies are staged in memory and written in batches
//! (`deferred`) with [`redb::Durability::None`], like `save_committed`; why
//! that is crash-safe is explained on `state_machine::apply_entries`. Every
//! read settles the staged changes first.

mod dedup;
mod deferred;
mod reader;
mod snapshot;
mod staged;
mod state_machine;
mod tables;

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod deferred_tests;
#[cfg(test)]
mod suite_test;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use redb::Database;
use shardline_proto::keyspace::{KeyRange, PartitionMode};
use shardline_raft::store::{codec, get_record, open_database, put_record, LogTables};

pub use reader::{KvReader, ScanPage};
pub use shardline_raft::store::StoreError;
pub use snapshot::SnapshotBuilder;
pub use state_machine::StateMachineStore;

use deferred::AppliedState;
use shardline_raft::store::check;

/// The shard group's Raft log, in the `raft_log` and `raft_meta` tables.
pub type LogStore = shardline_raft::store::LogStore<crate::types::TypeConfig>;

/// The three handles on one node's store.
pub struct OpenedStore {
    pub log: LogStore,
    pub sm: StateMachineStore,
    pub reader: KvReader,
}

/// Opens or creates the store. On first creation records group_id and mode and one range
/// covering the whole key space: `KeyRange::full(1, group_id)`. If the file exists with a different
/// group_id or mode, returns [`StoreError::Mismatch`] (never silently reuse another group's data).
pub fn open(path: &Path, group_id: u64, mode: PartitionMode) -> Result<OpenedStore, StoreError> {
    let db = open_database(path)?;
    init(&db, group_id, mode)?;
    let log = LogStore::open(db.clone(), LogTables::DEFAULT, path)?;
    let state = Arc::new(AppliedState::new(db.clone(), mode, log.checkpoint_busy()));
    Ok(OpenedStore {
        log,
        sm: StateMachineStore::new(state.clone(), group_id),
        reader: KvReader::new(state),
    })
}

/// Creates every table and records the store's identity, or checks it.
fn init(db: &Database, group_id: u64, mode: PartitionMode) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(tables::KV)?;
        txn.open_table(tables::DEDUP)?;
        txn.open_table(tables::DEDUP_FLOOR)?;
        txn.open_table(tables::DEDUP_SEEN)?;
        txn.open_table(tables::DEDUP_EXPIRY)?;
        tables::SNAPSHOT.create(&txn)?;
        let mut ranges = txn.open_table(tables::RANGES)?;
        let mut meta = txn.open_table(tables::SM_META)?;
        let found_group: Option<u64> = get_record(&meta, tables::GROUP_ID)?;
        let found_mode: Option<PartitionMode> = get_record(&meta, tables::MODE)?;
        match (found_group, found_mode) {
            (None, None) => {
                put_record(&mut meta, tables::GROUP_ID, &group_id)?;
                put_record(&mut meta, tables::MODE, &mode)?;
                let range = KeyRange::full(1, group_id);
                let bytes = codec::encode("range", &range)?;
                ranges.insert(range.id, bytes.as_slice())?;
                tracing::info!(group_id, %mode, "created shard store");
            }
            (Some(found_group), Some(found_mode)) => {
                check("group_id", group_id, found_group)?;
                check("mode", mode, found_mode)?;
                tracing::info!(group_id, %mode, "opened shard store");
            }
            (None, Some(_)) => {
                return Err(StoreError::Missing {
                    table: "sm_meta",
                    key: tables::GROUP_ID,
                })
            }
            (Some(_), None) => {
                return Err(StoreError::Missing {
                    table: "sm_meta",
                    key: tables::MODE,
                })
            }
        }
    }
    txn.commit()?;
    Ok(())
}
