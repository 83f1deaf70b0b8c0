//! Snapshots of the whole state machine: the payload format, building one
//! ([`SnapshotBuilder`]), installing one, and the current snapshot kept in
//! the redb `snapshot` table (so it survives restarts; see
//! `shardline_raft::store::SnapshotSlot`).
//!
//! A snapshot is one postcard [`SnapshotPayload`]: group id and mode (checked
//! on install), last applied log id and membership, ranges, every data pair
//! and the whole session table (results, floors, last use). It is built from a redb read transaction, so
//! applies continue while it is serialized, and held in memory as
//! `Cursor<Vec<u8>>` (openraft's `SnapshotData` for this group), which costs
//! memory proportional to the data held by the group.

use std::sync::Arc;

use std::io;

use openraft::{LogIdOptionExt, RaftSnapshotBuilder};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use shardline_proto::keyspace::{KeyRange, PartitionMode};

use shardline_raft::store::applied::{read_applied_state, write_applied_state};
use shardline_raft::store::codec::{decode, encode};
use shardline_raft::store::{check, StoreError};

use super::dedup::{expiry_key, CLIENT_ID_LEN, DEDUP_KEY_LEN};
use super::deferred::AppliedState;
use super::tables;
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// Version of the [`SnapshotPayload`] encoding.
const SNAPSHOT_VERSION: u32 = 2;

/// Everything the state machine holds, as shipped to followers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    pub version: u32,
    pub group_id: u64,
    pub mode: PartitionMode,
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub ranges: Vec<KeyRange>,
    /// Storage key -> value, in storage-key order.
    pub data: Vec<(Vec<u8>, Vec<u8>)>,
    /// Raw dedup rows: `client_id ++ seq BE` -> postcard(`Applied`: first-applied index and result).
    pub dedup: Vec<(Vec<u8>, Vec<u8>)>,
    /// Raw dedup floors: `client_id` -> floor.
    pub floors: Vec<(Vec<u8>, u64)>,
    /// Session last use: `client_id` -> ms (the expiry index is rebuilt
    /// from it on install).
    pub seen: Vec<(Vec<u8>, u64)>,
}

/// Builds snapshots of one node's state machine (openraft may run it
/// concurrently with applies).
pub struct SnapshotBuilder {
    /// Settled before reading, so the snapshot holds every applied entry.
    state: Arc<AppliedState>,
    group_id: u64,
}

impl SnapshotBuilder {
    pub(crate) fn new(state: Arc<AppliedState>, group_id: u64) -> Self {
        SnapshotBuilder { state, group_id }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = shardline_raft::SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (state, group_id) = (self.state.clone(), self.group_id);
        tokio::task::spawn_blocking(move || {
            state.settle()?;
            build(state.db(), group_id, state.mode())
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r)
        .map_err(StoreError::write_snapshot)
    }
}

/// Reads the whole state machine in one read transaction.
fn read_payload(
    db: &Database,
    group_id: u64,
    mode: PartitionMode,
) -> Result<SnapshotPayload, StoreError> {
    let txn = db.begin_read()?;
    let (last_applied, last_membership) = read_applied_state(&txn.open_table(tables::SM_META)?)?;
    let mut ranges = Vec::new();
    for item in txn.open_table(tables::RANGES)?.iter()? {
        let (_, value) = item?;
        ranges.push(decode::<KeyRange>("range", value.value())?);
    }
    let mut data = Vec::new();
    for item in txn.open_table(tables::KV)?.iter()? {
        let (k, v) = item?;
        data.push((k.value().to_vec(), v.value().to_vec()));
    }
    let mut dedup = Vec::new();
    for item in txn.open_table(tables::DEDUP)?.iter()? {
        let (k, v) = item?;
        dedup.push((k.value().to_vec(), v.value().to_vec()));
    }
    let mut floors = Vec::new();
    for item in txn.open_table(tables::DEDUP_FLOOR)?.iter()? {
        let (k, v) = item?;
        floors.push((k.value().to_vec(), v.value()));
    }
    let mut seen = Vec::new();
    for item in txn.open_table(tables::DEDUP_SEEN)?.iter()? {
        let (k, v) = item?;
        seen.push((k.value().to_vec(), v.value()));
    }
    Ok(SnapshotPayload {
        version: SNAPSHOT_VERSION,
        group_id,
        mode,
        last_applied,
        last_membership,
        ranges,
        data,
        dedup,
        floors,
        seen,
    })
}

/// Builds a snapshot of the current state and stores it as the current
/// snapshot (durably) unless a newer one is already stored.
pub(crate) fn build(
    db: &Database,
    group_id: u64,
    mode: PartitionMode,
) -> Result<Snapshot, StoreError> {
    let payload = read_payload(db, group_id, mode)?;
    let bytes = encode("snapshot", &payload)?;
    let keys = payload.data.len();
    let snapshot =
        tables::SNAPSHOT.store_built(db, payload.last_applied, payload.last_membership, bytes)?;
    tracing::debug!(index = ?snapshot.meta.last_log_id.index(), keys, "snapshot holds keys");
    Ok(snapshot)
}

/// Replaces the whole state machine with the snapshot `bytes` described by
/// `meta`, in one durable transaction, and makes it the current snapshot.
pub(crate) fn install(
    db: &Database,
    group_id: u64,
    mode: PartitionMode,
    meta: &SnapshotMeta,
    bytes: Vec<u8>,
) -> Result<(), StoreError> {
    let payload: SnapshotPayload = decode("snapshot", &bytes)?;
    check("snapshot version", SNAPSHOT_VERSION, payload.version)?;
    check("snapshot group_id", group_id, payload.group_id)?;
    check("snapshot mode", mode, payload.mode)?;
    if payload.last_applied != meta.last_log_id {
        return Err(StoreError::Mismatch {
            field: "snapshot last_log_id",
            expected: format!("{:?}", meta.last_log_id),
            found: format!("{:?}", payload.last_applied),
        });
    }
    if let Some((k, _)) = payload.dedup.iter().find(|(k, _)| k.len() != DEDUP_KEY_LEN) {
        return Err(StoreError::MalformedKey {
            table: "dedup",
            len: k.len(),
        });
    }
    for (table, rows) in [
        ("dedup_floor", &payload.floors),
        ("dedup_seen", &payload.seen),
    ] {
        if let Some((k, _)) = rows.iter().find(|(k, _)| k.len() != CLIENT_ID_LEN) {
            return Err(StoreError::MalformedKey {
                table,
                len: k.len(),
            });
        }
    }

    let txn = db.begin_write()?;
    txn.delete_table(tables::KV)?;
    txn.delete_table(tables::RANGES)?;
    txn.delete_table(tables::DEDUP)?;
    txn.delete_table(tables::DEDUP_FLOOR)?;
    txn.delete_table(tables::DEDUP_SEEN)?;
    txn.delete_table(tables::DEDUP_EXPIRY)?;
    {
        let mut kv = txn.open_table(tables::KV)?;
        for (k, v) in &payload.data {
            kv.insert(k.as_slice(), v.as_slice())?;
        }
        let mut ranges = txn.open_table(tables::RANGES)?;
        for range in &payload.ranges {
            ranges.insert(range.id, encode("range", range)?.as_slice())?;
        }
        let mut dedup = txn.open_table(tables::DEDUP)?;
        for (k, v) in &payload.dedup {
            dedup.insert(k.as_slice(), v.as_slice())?;
        }
        let mut floors = txn.open_table(tables::DEDUP_FLOOR)?;
        for (k, v) in &payload.floors {
            floors.insert(k.as_slice(), *v)?;
        }
        let mut seen = txn.open_table(tables::DEDUP_SEEN)?;
        let mut expiry = txn.open_table(tables::DEDUP_EXPIRY)?;
        for (k, v) in &payload.seen {
            seen.insert(k.as_slice(), *v)?;
            expiry.insert(expiry_key(*v, k).as_slice(), ())?;
        }
        let mut sm_meta = txn.open_table(tables::SM_META)?;
        write_applied_state(&mut sm_meta, meta.last_log_id, &meta.last_membership)?;
        tables::SNAPSHOT.put(&txn, meta, &bytes)?;
    }
    txn.commit()?;
    tracing::info!(index = ?meta.last_log_id.index(), keys = payload.data.len(), "installed snapshot");
    Ok(())
}
