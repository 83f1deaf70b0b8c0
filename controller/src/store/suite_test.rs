//! Runs openraft's storage conformance suite (`openraft::testing::Suite`)
//! against the controller's redb store, each case on a fresh file.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use shardline_raft::NodeId;
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore};
use crate::command::Bootstrap;
use crate::types::TypeConfig;

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let opened = open(&dir.path().join("controller.redb"), Bootstrap::hash(8))
            .map_err(|e| e.write_sm())?;
        Ok((dir, opened.log, opened.sm))
    }
}

#[test]
fn openraft_suite() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder)?;
    Ok(())
}
