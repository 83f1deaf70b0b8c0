//! Runs openraft's storage conformance suite (`openraft::testing::log::Suite`)
//! against the redb store, each case on a fresh file in a temp directory.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use shardline_proto::keyspace::PartitionMode;
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore};
use crate::types::TypeConfig;

/// Builds a fresh store; the [`TempDir`] guard removes it after the case.
struct RedbStoreBuilder {
    mode: PartitionMode,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let failed = |e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(failed)?;
        let opened =
            open(&dir.path().join("shard.redb"), 7, self.mode).map_err(|e| failed(e.write_sm()))?;
        Ok((dir, opened.log, opened.sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_hash_mode() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder {
        mode: PartitionMode::Hash,
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_range_mode() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder {
        mode: PartitionMode::Range,
    })
    .await?;
    Ok(())
}
