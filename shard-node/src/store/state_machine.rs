//! [`StateMachineStore`]: openraft's state machine over the redb `kv`,
//! `ranges`, `dedup*` and `sm_meta` tables, and the apply path.
//!
//! Applies are staged in memory and written to redb in batches by
//! [`super::deferred`]; the apply logic reads and writes through
//! [`super::staged::Layer`]s. Snapshots are in [`super::snapshot`].

use std::io;
use std::sync::Arc;

use futures::Stream;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use redb::{Database, ReadableDatabase};
use shardline_proto::keyspace::PartitionMode;

use shardline_raft::store::applied::read_applied_state;
use shardline_raft::store::apply::apply_and_answer;
use shardline_raft::store::blocking;
use shardline_raft::store::StoreError;

use super::dedup::{DedupTables, Verdict};
use super::deferred::AppliedState;
use super::snapshot::{self, SnapshotBuilder};
use super::staged::{Layer, Staged};
use super::tables;
use crate::types::{
    Applied, BatchOp, Command, CommandResult, Entry, LogId, Op, SessionClock, Snapshot,
    SnapshotMeta, StoredMembership, TypeConfig,
};

/// The replicated state machine of one node.
pub struct StateMachineStore {
    /// The redb file, the partition mode and the applies not yet written
    /// (shared with the readers).
    state: Arc<AppliedState>,
    /// Checked against incoming snapshots: never install another group's data.
    group_id: u64,
}

impl StateMachineStore {
    pub(crate) fn new(state: Arc<AppliedState>, group_id: u64) -> Self {
        StateMachineStore { state, group_id }
    }

    /// Applies `entries` (staged, see [`super::deferred`]) and returns one
    /// result per entry (what openraft's `apply` answers responders with).
    pub(crate) async fn apply_batch(
        &self,
        entries: Vec<Entry>,
    ) -> Result<Vec<Vec<Applied>>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // An apply that only stages runs in place: handing the worker to
        // another thread (`blocking::run`) costs more than the apply itself.
        // In place, CPU per put over three members fell 5-10% at
        // concurrency 1, and puts at 16 rose 0-10% (alternated runs). One
        // that writes to redb may wait for its write lock or the disk, so
        // it leaves the worker.
        if !self.state.apply_may_write(&entries) {
            return self.state.apply(entries);
        }
        let state = self.state.clone();
        blocking::run(move || state.apply(entries)).await
    }

    /// Writes the staged changes, so redb holds everything applied.
    async fn settle(&self) -> Result<(), StoreError> {
        let state = self.state.clone();
        blocking::run(move || state.settle()).await
    }

    /// The staged applies, for tests.
    #[cfg(test)]
    pub(crate) fn deferred(&self) -> &AppliedState {
        &self.state
    }

    /// The redb file, for tests that inspect tables directly.
    #[cfg(test)]
    pub(crate) fn db(&self) -> &Database {
        self.state.db()
    }

    /// Builds a snapshot of the current state, for tests.
    #[cfg(test)]
    pub(crate) async fn snapshot_now(&mut self) -> Snapshot {
        use openraft::storage::RaftSnapshotBuilder;
        let mut builder = self.get_snapshot_builder().await;
        builder.build_snapshot().await.expect("snapshot built")
    }
}

/// Idle sessions one proposal expires at most, so expiry never makes one
/// apply long; a backlog drains over the following proposals.
const MAX_EXPIRED_PER_ENTRY: usize = 64;

/// Applies `entries` into `staged` (reading redb through it) and returns one
/// result per entry. Nothing is written to redb here: [`AppliedState`]
/// writes `staged` later with [`Staged::write`], in one transaction with
/// [`redb::Durability::None`] (no fsync). This is crash-safe because
/// 1. redb commits are totally ordered and a `Durability::None` commit is made
///    durable by the next `Durability::Immediate` commit; after a crash the
///    file holds exactly the state of some durable commit, so the state
///    machine (data, dedup, `last_applied`) is always a consistent prefix of
///    the applied log — never half a batch;
/// 2. every entry applied here is committed, hence durable in this node's log
///    (appends are fsynced) and in a quorum's; openraft reads `last_applied`
///    and `read_committed` at startup and re-applies `(last_applied,
///    committed]` from the log, and apply is deterministic (dedup included),
///    so re-applying yields the same state and the same answers;
/// 3. those entries are still in the log: a purge only follows a snapshot, and
///    a snapshot is built from redb after the staged changes are written
///    (settled); both the snapshot write and the purge are `Immediate`
///    commits, which make those applies durable first. Installing a snapshot
///    is `Immediate` as well.
pub(crate) fn apply_entries(
    db: &Database,
    mode: PartitionMode,
    staged: &mut Staged,
    entries: Vec<Entry>,
) -> Result<Vec<Vec<Applied>>, StoreError> {
    let txn = db.begin_read()?;
    let mut results = Vec::with_capacity(entries.len());
    let Staged {
        kv,
        results: dedup_results,
        floors,
        seen,
        expiry,
        last_applied,
        membership,
        ..
    } = staged;
    let mut kv = Layer::open(&txn, tables::KV, kv)?;
    let mut dedup = DedupTables {
        results: Layer::open(&txn, tables::DEDUP, dedup_results)?,
        floors: Layer::open(&txn, tables::DEDUP_FLOOR, floors)?,
        seen: Layer::open(&txn, tables::DEDUP_SEEN, seen)?,
        expiry: Layer::open(&txn, tables::DEDUP_EXPIRY, expiry)?,
    };
    for entry in entries {
        *last_applied = Some(entry.log_id);
        let index = entry.log_id.index;
        // One answer per command of the entry, in order; blank and
        // membership entries carry no commands.
        let result = match entry.payload {
            EntryPayload::Blank => Vec::new(),
            EntryPayload::Normal(proposal) => {
                if let Some(cutoff) = proposal.clock.expiry_cutoff_ms() {
                    dedup.expire(cutoff, MAX_EXPIRED_PER_ENTRY)?;
                }
                let clock = proposal.clock;
                proposal
                    .commands
                    .into_iter()
                    .map(|c| apply_command(&mut kv, &mut dedup, mode, index, clock, c))
                    .collect::<Result<Vec<_>, _>>()?
            }
            EntryPayload::Membership(m) => {
                *membership = Some(StoredMembership::new(Some(entry.log_id), m));
                Vec::new()
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// Applies one command, consulting and updating the session table; a
/// session's write refreshes its last use by the proposal's `clock`
/// (`now_ms` 0 = no clock).
fn apply_command(
    kv: &mut Layer<'_, &'static [u8]>,
    dedup: &mut DedupTables<'_>,
    mode: PartitionMode,
    index: u64,
    clock: SessionClock,
    command: Command,
) -> Result<Applied, StoreError> {
    let Some(session) = command.session else {
        return Ok(Applied {
            index,
            result: apply_op(kv, mode, command.op)?,
        });
    };
    if clock.now_ms > 0 {
        dedup.touch(
            &session.client_id,
            clock.now_ms,
            clock.refresh_resolution_ms(),
        )?;
    }
    match dedup.check(&session)? {
        Verdict::Fresh => {
            let result = Applied {
                index,
                result: apply_op(kv, mode, command.op)?,
            };
            dedup.record(&session, &result)?;
            Ok(result)
        }
        Verdict::Replay(result) => {
            tracing::debug!(
                seq = session.seq,
                "duplicate write answered from the session table"
            );
            Ok(result)
        }
        Verdict::Expired { floor } => Ok(Applied {
            index,
            result: CommandResult::DuplicateExpired { floor },
        }),
    }
}

/// Applies one operation to the data table (user keys -> storage keys).
fn apply_op(
    kv: &mut Layer<'_, &'static [u8]>,
    mode: PartitionMode,
    op: Op,
) -> Result<CommandResult, StoreError> {
    match op {
        Op::Put { key, value } => {
            kv.insert(mode.storage_key(&key).as_slice(), value);
            Ok(CommandResult::Put)
        }
        Op::Delete { key } => {
            let existed = kv.remove(mode.storage_key(&key).as_slice())?;
            Ok(CommandResult::Delete { existed })
        }
        Op::CompareAndSwap {
            key,
            expected,
            new_value,
        } => {
            let storage_key = mode.storage_key(&key);
            let current = kv.get(storage_key.as_slice())?;
            let succeeded = current == expected;
            if succeeded {
                match new_value {
                    Some(value) => {
                        kv.insert(storage_key.as_slice(), value);
                    }
                    None => {
                        kv.remove(storage_key.as_slice())?;
                    }
                }
            }
            Ok(CommandResult::CompareAndSwap { succeeded, current })
        }
        Op::Batch { ops } => {
            for op in ops {
                match op {
                    BatchOp::Put { key, value } => {
                        kv.insert(mode.storage_key(&key).as_slice(), value);
                    }
                    BatchOp::Delete { key } => {
                        kv.remove(mode.storage_key(&key).as_slice())?;
                    }
                }
            }
            Ok(CommandResult::Batch)
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = shardline_raft::SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.settle().await.map_err(StoreError::read_sm)?;
        let read = || {
            let txn = self.state.db().begin_read()?;
            let meta = txn.open_table(tables::SM_META)?;
            read_applied_state(&meta)
        };
        read().map_err(StoreError::read_sm)
    }

    /// Applies every entry the stream yields (staged, see
    /// [`super::deferred`]), then answers each entry's responder (if any)
    /// with its results.
    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        apply_and_answer(entries, |entries| self.apply_batch(entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.state.clone(), self.group_id)
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: shardline_raft::SnapshotData,
    ) -> Result<(), io::Error> {
        let (state, group_id, meta) = (self.state.clone(), self.group_id, meta.clone());
        let bytes = snapshot.into_inner();
        // Deferred entries are older than the snapshot; writing them first
        // keeps the queue and redb in log order whatever the install does.
        tokio::task::spawn_blocking(move || {
            state.settle()?;
            snapshot::install(state.db(), group_id, state.mode(), &meta, bytes)
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r)
        .map_err(StoreError::write_snapshot)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        tables::SNAPSHOT
            .current(self.state.db())
            .map_err(StoreError::read_snapshot)
    }
}
