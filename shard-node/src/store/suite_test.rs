//! Runs openraft's storage conformance suite (`openraft::testing::Suite`)
//! against the redb store, each case on a fresh file in a temp directory.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use shardline_proto::keyspace::PartitionMode;
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore};
use crate::types::{NodeId, TypeConfig};

/// Builds a fresh store; the [`TempDir`] guard removes it after the case.
struct RedbStoreBuilder {
    mode: PartitionMode,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let opened =
            open(&dir.path().join("shard.redb"), 7, self.mode).map_err(|e| e.write_sm())?;
        Ok((dir, opened.log, opened.sm))
    }
}

#[test]
fn openraft_suite_hash_mode() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder {
        mode: PartitionMode::Hash,
    })?;
    Ok(())
}

#[test]
fn openraft_suite_range_mode() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder {
        mode: PartitionMode::Range,
    })?;
    Ok(())
}
