//! [`StateMachineStore`]: openraft's state machine for the controller. It
//! applies [`Proposal`]s to the in-memory [`ShardMap`] and writes the new
//! configs and the applied log id to redb in one transaction per batch.
//! Snapshots are in [`super::snapshot`].

use std::io;
use std::sync::Arc;

use futures::Stream;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use redb::{Database, Durability};
use shardline_proto::shardmap::Config;
use shardline_raft::store::applied::{LAST_APPLIED, LAST_MEMBERSHIP};
use shardline_raft::store::apply::apply_and_answer;
use shardline_raft::store::blocking;
use shardline_raft::store::codec::encode;
use shardline_raft::store::{put_record, StoreError};
use shardline_raft::{LogId, SnapshotMeta, StoredMembership};

use super::shard_map::Applied;
use super::snapshot::{self, SnapshotBuilder};
use super::{check_bootstrap, ShardMap, CONFIGS, SM_META, SNAPSHOT};
use crate::command::Bootstrap;
use crate::types::{Entry, Outcome, Snapshot, TypeConfig};

/// The replicated state machine of one controller member.
pub struct StateMachineStore {
    db: Arc<Database>,
    /// This member's bootstrap; every proposal and snapshot must match it.
    bootstrap: Bootstrap,
    map: ShardMap,
}

impl StateMachineStore {
    pub(crate) fn new(db: Arc<Database>, bootstrap: Bootstrap, map: ShardMap) -> Self {
        StateMachineStore { db, bootstrap, map }
    }
}

/// What one `apply` call changed, to be written to redb.
struct Changes {
    outcomes: Vec<Outcome>,
    configs: Vec<Config>,
    last_applied: Option<LogId>,
    membership: Option<StoredMembership>,
}

/// Applies `entries` to the in-memory state, in log order.
fn apply_in_memory(
    applied: &mut Applied,
    bootstrap: &Bootstrap,
    entries: Vec<Entry>,
) -> Result<Changes, StoreError> {
    let mut changes = Changes {
        outcomes: Vec::with_capacity(entries.len()),
        configs: Vec::new(),
        last_applied: None,
        membership: None,
    };
    for entry in entries {
        let outcome = match entry.payload {
            EntryPayload::Blank => Outcome::None,
            EntryPayload::Normal(proposal) => {
                check_bootstrap("proposal bootstrap", bootstrap, &proposal.bootstrap)?;
                match applied.state.apply(&proposal.command) {
                    Ok(config) => {
                        changes.configs.push(config.clone());
                        Outcome::Config(config.clone())
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "command rejected");
                        Outcome::Rejected(e)
                    }
                }
            }
            EntryPayload::Membership(m) => {
                let m = StoredMembership::new(Some(entry.log_id), m);
                applied.membership = m.clone();
                changes.membership = Some(m);
                Outcome::None
            }
        };
        applied.last_applied = Some(entry.log_id);
        changes.last_applied = Some(entry.log_id);
        changes.outcomes.push(outcome);
    }
    Ok(changes)
}

/// Writes one batch's new configs and applied state in one transaction.
///
/// Committed with [`Durability::None`], which is crash-safe for the reasons
/// given in `shardline_raft::store`: the state in the file is always a
/// consistent prefix of the log, and openraft re-applies the rest.
fn persist(db: &Database, changes: &Changes) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    {
        let mut configs = txn.open_table(CONFIGS)?;
        for c in &changes.configs {
            configs.insert(c.num, encode("config", c)?.as_slice())?;
        }
        let mut meta = txn.open_table(SM_META)?;
        if let Some(last) = changes.last_applied {
            put_record(&mut meta, LAST_APPLIED, &last)?;
        }
        if let Some(m) = &changes.membership {
            put_record(&mut meta, LAST_MEMBERSHIP, m)?;
        }
    }
    txn.commit()?;
    Ok(())
}

impl StateMachineStore {
    /// Applies `entries` (in memory, then persisted in one transaction) and
    /// returns one outcome per entry (what openraft's `apply` answers
    /// responders with).
    pub(crate) async fn apply_batch(
        &mut self,
        entries: Vec<Entry>,
    ) -> Result<Vec<Outcome>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let bootstrap = self.bootstrap;
        let changes = self
            .map
            .update(|a| apply_in_memory(a, &bootstrap, entries))?;
        let db = self.db.clone();
        let changes = blocking::run(move || persist(&db, &changes).map(|()| changes)).await?;
        if !changes.configs.is_empty() {
            tracing::info!(
                latest = changes.configs.last().map(|c| c.num),
                "applied new configs"
            );
        }
        Ok(changes.outcomes)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = shardline_raft::SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok(self.map.with(|a| (a.last_applied, a.membership.clone())))
    }

    /// Applies every entry the stream yields as one batch, then answers each
    /// entry's responder (if any) with its outcome.
    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        apply_and_answer(entries, |entries| self.apply_batch(entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.db.clone(), self.map.clone())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: shardline_raft::SnapshotData,
    ) -> Result<(), io::Error> {
        let (db, bootstrap, meta) = (self.db.clone(), self.bootstrap, meta.clone());
        let bytes = snapshot.into_inner();
        let applied =
            tokio::task::spawn_blocking(move || snapshot::install(&db, bootstrap, &meta, bytes))
                .await
                .map_err(StoreError::from)
                .and_then(|r| r)
                .map_err(StoreError::write_snapshot)?;
        self.map.update(|a| *a = applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        SNAPSHOT
            .current(&self.db)
            .map_err(StoreError::read_snapshot)
    }
}
