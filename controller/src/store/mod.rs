//! The storage of a controller member: vote, the config history and the
//! current snapshot in ONE redb file, the Raft log's entries in the
//! write-ahead log beside it (`<file>.wal/`).
//!
//! The log store is the shared `shardline_raft::store::LogStore` on the
//! `raft_log`/`raft_meta` tables and that directory; this module adds the state machine's
//! tables:
//! - `sm_meta`: the [`Bootstrap`] recorded when the file was created, and the
//!   last applied log id and membership;
//! - `configs`: config number -> postcard(`Config`), configs 1..n (config 0
//!   is implied by the bootstrap);
//! - `snapshot`: the current snapshot (`shardline_raft::store::SnapshotSlot`).
//!
//! [`open`] loads the history into memory ([`ShardMap`]), which answers
//! every read; the tables are its durable copy, written in the same
//! transaction as the applied log id they correspond to.
//!
//! # Layout
//! - `shard_map`: [`ShardMap`], the in-memory history and its change feed.
//! - `state_machine`: [`StateMachineStore`] and the apply path.
//! - `snapshot`: snapshot payload, build ([`SnapshotBuilder`]) and install.

mod shard_map;
mod snapshot;
mod state_machine;

#[cfg(test)]
mod suite_test;
#[cfg(test)]
mod tests;

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use shardline_proto::shardmap::Config;
use shardline_raft::store::applied::read_applied_state;
use shardline_raft::store::codec::decode;
use shardline_raft::store::{
    get_record, open_database, put_record, LogTables, MetaTable, SnapshotSlot, StoreError,
};

use crate::command::Bootstrap;
use crate::state::ControllerState;
use crate::types::TypeConfig;

pub use shard_map::ShardMap;
pub use snapshot::SnapshotBuilder;
pub use state_machine::StateMachineStore;

/// The controller's Raft log.
pub type LogStore = shardline_raft::store::LogStore<TypeConfig>;

/// State-machine metadata: [`BOOTSTRAP`] and the applied state.
pub(crate) const SM_META: MetaTable = TableDefinition::new("sm_meta");
/// Config history: num -> postcard(`Config`), from 1.
pub(crate) const CONFIGS: TableDefinition<u64, &[u8]> = TableDefinition::new("configs");
/// The current snapshot.
pub(crate) const SNAPSHOT: SnapshotSlot = SnapshotSlot::new("snapshot");
/// Record name of the bootstrap parameters in [`SM_META`].
pub(crate) const BOOTSTRAP: &str = "bootstrap";

/// The handles on one member's store.
pub struct OpenedStore {
    pub log: LogStore,
    pub sm: StateMachineStore,
    /// Read handle on the applied history.
    pub map: ShardMap,
}

/// `Mismatch` naming both bootstraps unless they are equal.
pub(crate) fn check_bootstrap(
    field: &'static str,
    expected: &Bootstrap,
    found: &Bootstrap,
) -> Result<(), StoreError> {
    if expected == found {
        return Ok(());
    }
    Err(StoreError::Mismatch {
        field,
        expected: format!(
            "{} with {} initial ranges",
            expected.mode, expected.initial_ranges
        ),
        found: format!(
            "{} with {} initial ranges",
            found.mode, found.initial_ranges
        ),
    })
}

/// Opens or creates the store. A new file records `bootstrap`; an existing
/// one must have been created with the same parameters, else
/// [`StoreError::Mismatch`] (the partitioning is fixed for the cluster's life).
pub fn open(path: &Path, bootstrap: Bootstrap) -> Result<OpenedStore, StoreError> {
    bootstrap.validate().map_err(|e| StoreError::Mismatch {
        field: "bootstrap",
        expected: "valid parameters".into(),
        found: e.to_string(),
    })?;
    let db = open_database(path)?;
    init(&db, bootstrap)?;
    let applied = load(&db, bootstrap)?;
    let map = ShardMap::new(applied);
    Ok(OpenedStore {
        log: LogStore::open(db.clone(), LogTables::DEFAULT, path)?,
        sm: StateMachineStore::new(db, bootstrap, map.clone()),
        map,
    })
}

/// Creates the state machine's tables and records the bootstrap, or checks it.
fn init(db: &Database, bootstrap: Bootstrap) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(CONFIGS)?;
        SNAPSHOT.create(&txn)?;
        let mut meta = txn.open_table(SM_META)?;
        match get_record::<Bootstrap, _>(&meta, BOOTSTRAP)? {
            None => {
                put_record(&mut meta, BOOTSTRAP, &bootstrap)?;
                tracing::info!(mode = %bootstrap.mode, initial_ranges = bootstrap.initial_ranges, "created controller store");
            }
            Some(found) => {
                check_bootstrap("bootstrap", &bootstrap, &found)?;
                tracing::info!(mode = %bootstrap.mode, initial_ranges = bootstrap.initial_ranges, "opened controller store");
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Reads the stored history and applied state.
fn load(db: &Database, bootstrap: Bootstrap) -> Result<shard_map::Applied, StoreError> {
    let txn = db.begin_read()?;
    let (last_applied, membership) = read_applied_state(&txn.open_table(SM_META)?)?;
    let mut history = vec![Config::empty(bootstrap.mode)];
    for item in txn.open_table(CONFIGS)?.iter()? {
        let (_, value) = item?;
        history.push(decode::<Config>("config", value.value())?);
    }
    let len = history.len();
    let state = ControllerState::from_history(bootstrap, history).ok_or(StoreError::Mismatch {
        field: "config history",
        expected: "configs numbered 1..n".into(),
        found: format!("{} stored configs out of order", len - 1),
    })?;
    Ok(shard_map::Applied {
        state,
        last_applied,
        membership,
    })
}
