//! Snapshots of the controller state machine: the whole [`ControllerState`]
//! (bootstrap and config history) with the last applied log id and
//! membership, postcard-encoded. Built from the in-memory state under a
//! short read lock; installed by rewriting the `configs` table in one
//! durable transaction.

use std::sync::Arc;

use std::io;

use openraft::{LogIdOptionExt, RaftSnapshotBuilder};
use redb::Database;
use serde::{Deserialize, Serialize};
use shardline_raft::store::applied::write_applied_state;
use shardline_raft::store::codec::{decode, encode};
use shardline_raft::store::{check, commit_durably, StoreError};
use shardline_raft::{LogId, SnapshotMeta, StoredMembership};

use super::shard_map::Applied;
use super::{check_bootstrap, ShardMap, CONFIGS, SM_META, SNAPSHOT};
use crate::command::Bootstrap;
use crate::state::ControllerState;
use crate::types::{Snapshot, TypeConfig};

/// Version of the [`SnapshotPayload`] encoding.
const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayload {
    version: u32,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    state: ControllerState,
}

/// Builds snapshots of one member's state machine.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    map: ShardMap,
}

impl SnapshotBuilder {
    pub(crate) fn new(db: Arc<Database>, map: ShardMap) -> Self {
        SnapshotBuilder { db, map }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = shardline_raft::SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let payload = self.map.with(|a| SnapshotPayload {
            version: SNAPSHOT_VERSION,
            last_applied: a.last_applied,
            last_membership: a.membership.clone(),
            state: a.state.clone(),
        });
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = encode("snapshot", &payload)?;
            tracing::debug!(
                configs = payload.state.history().len(),
                "snapshot of the config history"
            );
            SNAPSHOT.store_built(&db, payload.last_applied, payload.last_membership, bytes)
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r)
        .map_err(StoreError::write_snapshot)
    }
}

/// Replaces the stored history with the snapshot `bytes` described by
/// `meta`, durably, makes it the current snapshot, and returns the new
/// in-memory state.
pub(crate) fn install(
    db: &Database,
    bootstrap: Bootstrap,
    meta: &SnapshotMeta,
    bytes: Vec<u8>,
) -> Result<Applied, StoreError> {
    let payload: SnapshotPayload = decode("snapshot", &bytes)?;
    check("snapshot version", SNAPSHOT_VERSION, payload.version)?;
    check_bootstrap("snapshot bootstrap", &bootstrap, payload.state.bootstrap())?;
    if payload.last_applied != meta.last_log_id {
        return Err(StoreError::Mismatch {
            field: "snapshot last_log_id",
            expected: format!("{:?}", meta.last_log_id),
            found: format!("{:?}", payload.last_applied),
        });
    }
    let txn = db.begin_write()?;
    txn.delete_table(CONFIGS)?;
    {
        let mut configs = txn.open_table(CONFIGS)?;
        for c in &payload.state.history()[1..] {
            configs.insert(c.num, encode("config", c)?.as_slice())?;
        }
        let mut sm_meta = txn.open_table(SM_META)?;
        write_applied_state(&mut sm_meta, meta.last_log_id, &meta.last_membership)?;
        SNAPSHOT.put(&txn, meta, &bytes)?;
    }
    commit_durably(txn)?;
    tracing::info!(index = ?meta.last_log_id.index(), latest = payload.state.latest().num, "installed snapshot");
    Ok(Applied {
        state: payload.state,
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
    })
}
