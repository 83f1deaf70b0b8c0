//! Storage shared by every replicated service: the Raft log in redb and the
//! pieces a state machine in the same redb file needs.
//!
//! A member keeps log, vote, state machine and current snapshot in ONE redb
//! file: [`open_database`] creates it, [`LogStore::open`] claims two tables
//! of it ([`LogTables`]), and the service's state machine claims the rest.
//!
//! # Layout
//! - `log_store`: [`LogStore`], openraft's `RaftLogStorage`.
//! - `log_writer`: the thread per log store that commits every log write in
//!   queue order, batching queued writes into one transaction (one fsync).
//! - `log_overlay`: entries appended but not yet durable, which readers lay
//!   over redb.
//! - [`blocking`]: running redb work from async code.
//! - [`records`]: typed records in metadata tables and the identity check.
//! - [`applied`]: the last applied log id and membership records.
//! - [`snapshot_slot`]: the persisted current snapshot.
//! - [`codec`]: postcard encode/decode with [`StoreError::Codec`] on bad bytes.
//! - [`error`]: [`StoreError`] and its conversion into openraft errors.
//!
//! # Durability
//! Log appends, truncation, purge and the vote commit with
//! [`redb::Durability::Immediate`] (fsync before `commit` returns) on the log
//! writer thread; `append` returns before that and its callback fires after
//! it. The committed id rides along with the next of those writes (see
//! `save_committed` on [`LogStore`]). A state
//! machine that applies with `Durability::None` stays crash-safe as long as
//! its snapshot writes are `Immediate`: redb commits are totally ordered, so
//! the next durable commit persists every earlier one, and openraft re-applies
//! `(last_applied, committed]` from the log at startup.

pub mod applied;
pub mod apply;
pub mod blocking;
pub mod codec;
pub mod error;
pub mod records;
pub mod snapshot_slot;

mod log_overlay;
mod log_store;
mod log_writer;

#[cfg(test)]
mod log_store_tests;

use std::path::Path;
use std::sync::Arc;

use redb::Database;

pub use error::StoreError;
pub use log_store::{LogStore, LogTables};
pub use records::{check, get_record, put_record, MetaTable};
pub use snapshot_slot::SnapshotSlot;

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
