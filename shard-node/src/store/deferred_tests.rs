//! Tests of deferred applies: a follower's applies queue up, every read and
//! every answered apply sees them, snapshots hold them, and a restart that
//! lost them finds redb at the last written entry (openraft re-applies the
//! rest from the log).

use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use redb::ReadableDatabase;
use shardline_proto::keyspace::PartitionMode;
use tempfile::TempDir;

use super::deferred::MAX_ENTRIES;
use super::{open, tables, OpenedStore};
use crate::types::{Command, CommandResult, Entry, LogId, Op, TypeConfig};
use shardline_raft::store::applied::LAST_APPLIED;
use shardline_raft::store::get_record;

const GROUP: u64 = 7;

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

fn fresh() -> (TempDir, OpenedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("shard.redb"), GROUP, PartitionMode::Range).expect("open");
    (dir, store)
}

fn entry(index: u64, op: Op) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command { session: None, op }.into()),
    }
}

fn put(index: u64, key: &str, value: &str) -> Entry {
    entry(
        index,
        Op::Put {
            key: key.into(),
            value: value.into(),
        },
    )
}

/// Applies `entries` the way openraft does on a follower: nobody waits for
/// their results.
async fn apply_unanswered(store: &mut OpenedStore, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    store.sm.apply(stream).await.expect("apply");
}

/// The last applied id as written in redb, without settling the queue.
fn written_applied(store: &OpenedStore) -> Option<LogId> {
    let txn = store.sm.db().begin_read().unwrap();
    get_record(&txn.open_table(tables::SM_META).unwrap(), LAST_APPLIED).unwrap()
}

#[tokio::test]
async fn unanswered_applies_are_queued_and_a_read_writes_them_first() {
    let (_dir, mut s) = fresh();
    apply_unanswered(&mut s, vec![put(1, "a", "1")]).await;
    apply_unanswered(&mut s, vec![put(2, "b", "2"), put(3, "a", "3")]).await;
    assert_eq!(s.sm.deferred().len(), 3);
    assert_eq!(written_applied(&s), None, "nothing written yet");

    assert_eq!(s.reader.get(b"a").unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.sm.deferred().len(), 0);
    assert_eq!(written_applied(&s), Some(log_id(3)));
    assert_eq!(s.reader.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn an_answered_apply_writes_the_queue_first_and_sees_it() {
    let (_dir, mut s) = fresh();
    apply_unanswered(&mut s, vec![put(1, "k", "old")]).await;
    let cas = entry(
        2,
        Op::CompareAndSwap {
            key: "k".into(),
            expected: Some("old".into()),
            new_value: Some("new".into()),
        },
    );
    let answers = s.sm.apply_batch(vec![cas]).await.unwrap();
    assert_eq!(answers.len(), 1, "answers only for the answered entries");
    assert_eq!(
        answers[0][0].result,
        CommandResult::CompareAndSwap {
            succeeded: true,
            current: Some(b"old".to_vec())
        }
    );
    assert_eq!(s.sm.deferred().len(), 0);
    assert_eq!(written_applied(&s), Some(log_id(2)));
    assert_eq!(s.reader.get(b"k").unwrap(), Some(b"new".to_vec()));
}

#[tokio::test]
async fn a_full_queue_is_written_with_the_next_apply() {
    let (_dir, mut s) = fresh();
    let max = MAX_ENTRIES as u64;
    for i in 1..=max {
        apply_unanswered(&mut s, vec![put(i, &format!("k{i}"), "v")]).await;
    }
    assert_eq!(s.sm.deferred().len(), MAX_ENTRIES);
    assert_eq!(written_applied(&s), None);

    apply_unanswered(&mut s, vec![put(max + 1, "last", "v")]).await;
    assert_eq!(s.sm.deferred().len(), 0);
    assert_eq!(written_applied(&s), Some(log_id(max + 1)));
}

#[tokio::test]
async fn snapshots_and_applied_state_include_queued_applies() {
    let (_dir, mut s) = fresh();
    apply_unanswered(&mut s, vec![put(1, "x", "1"), put(2, "y", "2")]).await;
    let (applied, _) = s.sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2)));

    apply_unanswered(&mut s, vec![put(3, "z", "3")]).await;
    let snap = s.sm.snapshot_now().await;
    assert_eq!(snap.meta.last_log_id, Some(log_id(3)));

    let (_dir_b, mut b) = fresh();
    apply_unanswered(&mut b, vec![put(1, "stale", "1")]).await;
    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(b.sm.deferred().len(), 0);
    assert_eq!(b.reader.get(b"z").unwrap(), Some(b"3".to_vec()));
    assert_eq!(
        b.reader.get(b"stale").unwrap(),
        None,
        "the snapshot replaces all"
    );
}

#[tokio::test]
async fn queued_applies_lost_in_a_restart_leave_redb_at_the_last_written_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.redb");
    {
        let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
        apply_unanswered(&mut s, vec![put(1, "a", "1")]).await;
        assert_eq!(s.reader.get(b"a").unwrap(), Some(b"1".to_vec()));
        apply_unanswered(&mut s, vec![put(2, "b", "2")]).await;
        // Dropped with entry 2 still queued, as a crash would lose it.
    }
    let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
    let (applied, _) = s.sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1)), "openraft re-applies from index 2");
    assert_eq!(s.reader.get(b"b").unwrap(), None);
    apply_unanswered(&mut s, vec![put(2, "b", "2")]).await;
    assert_eq!(s.reader.get(b"b").unwrap(), Some(b"2".to_vec()));
}
