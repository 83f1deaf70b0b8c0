//! The redb tables of a shard node's state machine, in the same file as the
//! Raft log (`raft_log`, `raft_meta`: see `shardline_raft::store::LogTables`).
//!
//! All tables but `snapshot` are the state machine and travel in snapshots;
//! `snapshot` holds the latest snapshot.

use redb::TableDefinition;
use shardline_raft::store::{MetaTable, SnapshotSlot};

/// State-machine metadata: [`GROUP_ID`], [`MODE`] and the applied state
/// (`shardline_raft::store::applied`) -> postcard.
pub(crate) const SM_META: MetaTable = TableDefinition::new("sm_meta");
/// User data: storage key (`PartitionMode::storage_key`) -> value.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// Range metadata: range id -> postcard(`KeyRange`).
pub(crate) const RANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("ranges");
/// Dedup results: client_id (16 bytes) ++ seq (u64 big-endian) -> postcard(`Applied`: first-applied index and result).
pub(crate) const DEDUP: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dedup");
/// Dedup floors: client_id (16 bytes) -> lowest seq the client may still retry.
pub(crate) const DEDUP_FLOOR: TableDefinition<&[u8], u64> = TableDefinition::new("dedup_floor");
/// Session last use: client_id (16 bytes) -> milliseconds (the proposing
/// leader's clock, `SessionClock::now_ms`) of the client's latest write.
pub(crate) const DEDUP_SEEN: TableDefinition<&[u8], u64> = TableDefinition::new("dedup_seen");
/// Index of `dedup_seen` by time: `seen_ms BE ++ client_id` -> (), so expiry
/// reads the oldest sessions first. Derived: rebuilt on snapshot install.
pub(crate) const DEDUP_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("dedup_expiry");
/// The current snapshot.
pub(crate) const SNAPSHOT: SnapshotSlot = SnapshotSlot::new("snapshot");

pub(crate) const GROUP_ID: &str = "group_id";
pub(crate) const MODE: &str = "mode";
