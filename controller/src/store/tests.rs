//! Unit tests of the controller store: applying proposals (accepted and
//! rejected), restart from the file, bootstrap checks, snapshots.

use std::collections::BTreeSet;
use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::testing::membership_ent;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use shardline_raft::store::StoreError;
use tempfile::TempDir;

use super::{open, OpenedStore};
use crate::command::{Bootstrap, Command, Group};
use crate::error::ControllerError;
use crate::types::{Entry, Outcome, Proposal, TypeConfig};

const BOOT: Bootstrap = Bootstrap {
    mode: shardline_proto::keyspace::PartitionMode::Hash,
    initial_ranges: 6,
};

fn fresh() -> (TempDir, OpenedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("c.redb"), BOOT).expect("open");
    (dir, store)
}

fn join(gid: u64) -> Command {
    Command::Join {
        groups: vec![Group {
            gid,
            addresses: vec![format!("10.0.0.{gid}:7400")],
        }],
    }
}

fn log_id(term: u64, node_id: u64, index: u64) -> shardline_raft::LogId {
    openraft::testing::log_id::<crate::types::TypeConfig>(term, node_id, index)
}

fn entry(index: u64, bootstrap: Bootstrap, command: Command) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal { bootstrap, command }),
    }
}

async fn apply(store: &mut OpenedStore, first: u64, commands: Vec<Command>) -> Vec<Outcome> {
    let entries = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| entry(first + i as u64, BOOT, c))
        .collect::<Vec<_>>();
    store.sm.apply_batch(entries).await.expect("apply")
}

#[tokio::test]
async fn accepted_commands_append_configs_and_rejected_ones_change_nothing() {
    let (_dir, mut store) = fresh();
    let mut changes = store.map.subscribe();
    let out = apply(&mut store, 1, vec![join(1), join(1), join(2)]).await;
    assert!(matches!(&out[0], Outcome::Config(c) if c.num == 1));
    assert_eq!(
        out[1],
        Outcome::Rejected(ControllerError::GroupAlreadyJoined { gid: 1 })
    );
    assert!(matches!(&out[2], Outcome::Config(c) if c.num == 2 && c.groups.len() == 2));
    assert_eq!(store.map.latest().num, 2);
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), 2);
    assert_eq!(store.map.since(0, 10).len(), 2);
    assert_eq!(store.map.since(0, 1).len(), 1);
    assert!(store.map.since(2, 10).is_empty());
    let (applied, _) = store.sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(3));
}

#[tokio::test]
async fn history_and_applied_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let history = {
        let mut store = open(&path, BOOT).unwrap();
        let members = membership_ent::<TypeConfig>(1, 1, 1, vec![BTreeSet::from([1, 2, 3])]);
        store.sm.apply_batch(vec![members]).await.unwrap();
        apply(&mut store, 2, vec![join(1), join(2), join(3)]).await;
        store.map.since(0, 100)
    };
    let mut store = open(&path, BOOT).unwrap();
    assert_eq!(store.map.since(0, 100), history);
    assert_eq!(store.map.query(Some(0)).unwrap().num, 0);
    let (applied, membership) = store.sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(4));
    assert_eq!(membership.voter_ids().count(), 3);
}

#[tokio::test]
async fn a_different_bootstrap_is_refused_on_open_and_in_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let mut store = open(&path, BOOT).unwrap();
    // The log entry of a leader started with other parameters must not be
    // applied with this member's.
    let foreign = entry(1, Bootstrap::hash(7), join(1));
    assert!(store.sm.apply_batch(vec![foreign]).await.is_err());
    drop(store);
    for other in [Bootstrap::hash(7), Bootstrap::range()] {
        assert!(matches!(
            open(&path, other),
            Err(StoreError::Mismatch {
                field: "bootstrap",
                ..
            })
        ));
    }
    assert!(open(&dir.path().join("bad.redb"), Bootstrap::hash(0)).is_err());
}

#[tokio::test]
async fn snapshot_round_trips_into_a_fresh_member() {
    let (_dir, mut store) = fresh();
    apply(&mut store, 1, vec![join(1), join(2), join(3)]).await;
    let mut builder = store.sm.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));
    let current = store.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);

    let (_dir2, mut other) = fresh();
    let watch = other.map.subscribe();
    let bytes = snap.snapshot.into_inner();
    other
        .sm
        .install_snapshot(&snap.meta, Cursor::new(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(other.map.since(0, 100), store.map.since(0, 100));
    assert!(watch.has_changed().unwrap());
    // Applying continues from the snapshot.
    let out = apply(&mut other, 4, vec![join(4)]).await;
    assert!(matches!(&out[0], Outcome::Config(c) if c.num == 4));

    // A member bootstrapped differently refuses the snapshot.
    let dir3 = tempfile::tempdir().unwrap();
    let mut range_mode = open(&dir3.path().join("c.redb"), Bootstrap::range()).unwrap();
    assert!(range_mode
        .sm
        .install_snapshot(&snap.meta, Cursor::new(bytes))
        .await
        .is_err());
    assert_eq!(range_mode.map.latest().num, 0);
}
