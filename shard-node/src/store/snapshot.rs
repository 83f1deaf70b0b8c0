//! Snapshots of the whole state machine: the payload format, building one
//! ([`SnapshotBuilder`]), installing one, and the current snapshot kept in
//! the redb `snapshot` table (so it survives restarts).
//!
//! A snapshot is one postcard [`SnapshotPayload`]: group id and mode (checked
//! on install), last applied log id and membership, ranges, every data pair
//! and the whole session table. It is built from a redb read transaction, so
//! applies continue while it is serialized, and held in memory as
//! `Cursor<Vec<u8>>` (openraft's `SnapshotData` for this group), which costs
//! memory proportional to the data held by the group.

use std::io::Cursor;
use std::sync::Arc;

use openraft::{RaftSnapshotBuilder, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use shardline_proto::keyspace::{KeyRange, PartitionMode};

use super::check;
use super::codec::{decode, encode};
use super::dedup::{CLIENT_ID_LEN, DEDUP_KEY_LEN};
use super::error::StoreError;
use super::state_machine::read_applied_state;
use super::tables::{self, get_record, put_record};
use crate::types::{LogId, NodeId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// Version of the [`SnapshotPayload`] encoding.
const SNAPSHOT_VERSION: u32 = 1;

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
}

/// Builds snapshots of one node's state machine (openraft may run it
/// concurrently with applies).
pub struct SnapshotBuilder {
    db: Arc<Database>,
    group_id: u64,
    mode: PartitionMode,
}

impl SnapshotBuilder {
    pub(crate) fn new(db: Arc<Database>, group_id: u64, mode: PartitionMode) -> Self {
        SnapshotBuilder { db, group_id, mode }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError<NodeId>> {
        let (db, group_id, mode) = (self.db.clone(), self.group_id, self.mode);
        tokio::task::spawn_blocking(move || build(&db, group_id, mode))
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
    })
}

/// A snapshot id unique on this node: last log id plus a persisted counter.
fn snapshot_id(last: Option<LogId>, counter: u64) -> String {
    match last {
        Some(id) => format!("{}-{}-{counter}", id.leader_id, id.index),
        None => format!("empty-{counter}"),
    }
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
    let txn = db.begin_write()?;
    let meta = {
        let mut table = txn.open_table(tables::SNAPSHOT)?;
        let counter = get_record::<u64, _>(&table, tables::SNAPSHOT_COUNTER)?.unwrap_or(0) + 1;
        put_record(&mut table, tables::SNAPSHOT_COUNTER, &counter)?;
        let meta = SnapshotMeta {
            last_log_id: payload.last_applied,
            last_membership: payload.last_membership,
            snapshot_id: snapshot_id(payload.last_applied, counter),
        };
        let stored: Option<SnapshotMeta> = get_record(&table, tables::SNAPSHOT_META)?;
        if stored
            .as_ref()
            .is_none_or(|s| s.last_log_id <= meta.last_log_id)
        {
            put_record(&mut table, tables::SNAPSHOT_META, &meta)?;
            table.insert(tables::SNAPSHOT_DATA, bytes.as_slice())?;
        } else {
            tracing::debug!(snapshot_id = %meta.snapshot_id, "a newer snapshot is stored; keeping it");
        }
        meta
    };
    txn.commit()?;
    tracing::info!(snapshot_id = %meta.snapshot_id, keys = payload.data.len(), bytes = bytes.len(), "built snapshot");
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes)),
    })
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
    if let Some((k, _)) = payload
        .floors
        .iter()
        .find(|(k, _)| k.len() != CLIENT_ID_LEN)
    {
        return Err(StoreError::MalformedKey {
            table: "dedup_floor",
            len: k.len(),
        });
    }

    let txn = db.begin_write()?;
    txn.delete_table(tables::KV)?;
    txn.delete_table(tables::RANGES)?;
    txn.delete_table(tables::DEDUP)?;
    txn.delete_table(tables::DEDUP_FLOOR)?;
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
        let mut sm_meta = txn.open_table(tables::SM_META)?;
        match meta.last_log_id {
            Some(id) => put_record(&mut sm_meta, tables::LAST_APPLIED, &id)?,
            None => {
                sm_meta.remove(tables::LAST_APPLIED)?;
            }
        }
        put_record(&mut sm_meta, tables::LAST_MEMBERSHIP, &meta.last_membership)?;
        let mut snap = txn.open_table(tables::SNAPSHOT)?;
        put_record(&mut snap, tables::SNAPSHOT_META, meta)?;
        snap.insert(tables::SNAPSHOT_DATA, bytes.as_slice())?;
    }
    txn.commit()?;
    tracing::info!(snapshot_id = %meta.snapshot_id, keys = payload.data.len(), "installed snapshot");
    Ok(())
}

/// The current snapshot stored in the file, if any.
pub(crate) fn current(db: &Database) -> Result<Option<Snapshot>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(tables::SNAPSHOT)?;
    let Some(meta) = get_record::<SnapshotMeta, _>(&table, tables::SNAPSHOT_META)? else {
        return Ok(None);
    };
    let data = table
        .get(tables::SNAPSHOT_DATA)?
        .map(|g| g.value().to_vec())
        .ok_or(StoreError::Missing {
            table: "snapshot",
            key: tables::SNAPSHOT_DATA,
        })?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }))
}
