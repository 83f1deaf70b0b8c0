//! Storage shared by every replicated service: the Raft log and the pieces a
//! state machine in the member's redb file needs.
//!
//! A member keeps vote, state machine and current snapshot in ONE redb file,
//! and its log entries in a write-ahead log beside it ([`wal`], the
//! directory [`wal_dir`] names): [`open_database`] creates the file,
//! [`LogStore::open`] claims two tables of it ([`LogTables`]) and the log
//! directory, and the service's state machine claims the rest of the file.
//!
//! # Layout
//! - `log_store`: [`LogStore`], openraft's `RaftLogStorage`.
//! - [`wal`]: the log's segment files: append, flush, truncate, purge, recover.
//! - `log_writer`: the thread per log store that performs every log write in
//!   queue order, batching queued writes behind one flush.
//! - `checkpoint`: the thread that makes the redb file durable about once a
//!   second and records the committed id.
//! - `log_overlay`: entries appended but not yet durable, which readers lay
//!   over the durable log.
//! - `worker`: the thread-and-channel handle both store threads use.
//! - [`blocking`]: running redb work from async code.
//! - [`records`]: typed records in metadata tables and the identity check.
//! - [`applied`]: the last applied log id and membership records.
//! - [`snapshot_slot`]: the persisted current snapshot.
//! - [`codec`]: postcard encode/decode with [`StoreError::Codec`] on bad bytes.
//! - [`error`]: [`StoreError`] and its conversion into openraft errors.
//!
//! # Durability
//! Log appends and truncations are flushed (fdatasync) by the log writer
//! thread before they are reported done; `append` returns before that and
//! its callback fires after it. The vote and the purge point commit to redb
//! with [`redb::Durability::Immediate`] on the same thread, in queue order.
//! A state machine applies with `Durability::None`; the checkpointer commits
//! durably about once a second (and on shutdown) with the committed id,
//! and snapshot writes are `Immediate`. redb commits are totally ordered, so
//! each durable commit persists every earlier one; what a crash loses of
//! the state machine openraft re-applies from the log at startup (and if the
//! state machine is ahead of a log that lost its unflushed tail, openraft
//! treats the log as purged up to `last_applied`).

pub mod applied;
pub mod apply;
pub mod blocking;
pub mod codec;
pub mod error;
pub mod records;
pub mod snapshot_slot;
pub mod wal;

mod checkpoint;
mod log_overlay;
mod log_store;
mod log_writer;
mod worker;

#[cfg(test)]
mod log_store_tests;

use std::path::Path;
use std::sync::Arc;

use redb::Database;

pub use checkpoint::CheckpointBusy;
pub use error::StoreError;
pub use log_store::{LogStore, LogTables};
pub use records::{check, commit_durably, get_record, put_record, MetaTable};
pub use snapshot_slot::SnapshotSlot;

/// The directory of the write-ahead log that belongs with the redb file at
/// `path`: beside it, named like it with `.wal` for its extension.
pub fn wal_dir(path: &Path) -> std::path::PathBuf {
    path.with_extension("wal")
}

/// Opens (or creates) the member's redb file at `path`, creating its parent
/// directory first.
pub fn open_database(path: &Path) -> Result<Arc<Database>, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(Arc::new(Database::create(path)?))
}
