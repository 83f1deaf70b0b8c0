//! Runs openraft's storage conformance suite (`openraft::testing::log::Suite`)
//! against the controller's redb store, each case on a fresh file.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore};
use crate::command::Bootstrap;
use crate::types::TypeConfig;

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let failed = |e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(failed)?;
        let opened = open(&dir.path().join("controller.redb"), Bootstrap::hash(8))
            .map_err(|e| failed(e.write_sm()))?;
        Ok((dir, opened.log, opened.sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite() -> anyhow::Result<()> {
    Suite::test_all(RedbStoreBuilder).await?;
    Ok(())
}
