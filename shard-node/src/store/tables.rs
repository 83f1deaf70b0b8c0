//! The redb tables of a shard node's single database file and small helpers
//! to read and write the typed records kept in its metadata tables.
//!
//! Log tables belong to the [`LogStore`](super::LogStore); all other tables are
//! the state machine and travel in snapshots (except `snapshot` itself, which
//! holds the latest snapshot).

use redb::{ReadableTable, Table, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{decode, encode};
use super::error::StoreError;

/// Raft log: index -> postcard(`Entry`). redb's `u64` keys sort numerically.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft log metadata: [`VOTE`], [`COMMITTED`], [`LAST_PURGED`] -> postcard.
pub(crate) const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// State-machine metadata: [`GROUP_ID`], [`MODE`], [`LAST_APPLIED`],
/// [`LAST_MEMBERSHIP`] -> postcard.
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// User data: storage key (`PartitionMode::storage_key`) -> value.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// Range metadata: range id -> postcard(`KeyRange`).
pub(crate) const RANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("ranges");
/// Dedup results: client_id (16 bytes) ++ seq (u64 big-endian) -> postcard(`Applied`: first-applied index and result).
pub(crate) const DEDUP: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dedup");
/// Dedup floors: client_id (16 bytes) -> lowest seq the client may still retry.
pub(crate) const DEDUP_FLOOR: TableDefinition<&[u8], u64> = TableDefinition::new("dedup_floor");
/// Current snapshot: [`SNAPSHOT_META`], [`SNAPSHOT_DATA`], [`SNAPSHOT_COUNTER`].
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub(crate) const VOTE: &str = "vote";
pub(crate) const COMMITTED: &str = "committed";
pub(crate) const LAST_PURGED: &str = "last_purged";

pub(crate) const GROUP_ID: &str = "group_id";
pub(crate) const MODE: &str = "mode";
pub(crate) const LAST_APPLIED: &str = "last_applied";
pub(crate) const LAST_MEMBERSHIP: &str = "last_membership";

pub(crate) const SNAPSHOT_META: &str = "meta";
pub(crate) const SNAPSHOT_DATA: &str = "data";
pub(crate) const SNAPSHOT_COUNTER: &str = "counter";

/// Reads and decodes the record `key` of a `&str -> &[u8]` table.
pub(crate) fn get_record<T, R>(table: &R, key: &'static str) -> Result<Option<T>, StoreError>
where
    T: DeserializeOwned,
    R: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        Some(guard) => Ok(Some(decode(key, guard.value())?)),
        None => Ok(None),
    }
}

/// Encodes and writes the record `key` of a `&str -> &[u8]` table.
pub(crate) fn put_record<T: Serialize>(
    table: &mut Table<&'static str, &'static [u8]>,
    key: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(key, value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}
