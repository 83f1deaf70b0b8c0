//! Unit tests of [`LogStore`]'s asynchronous append: entries readable before
//! they are durable, completion only after the commit and in order,
//! truncation of queued appends, failures reaching every waiter, and what a
//! reopened store keeps.
//!
//! The writer thread is held at a known point without sleeping: the test
//! holds the writer's gate, so the writer waits before its next batch until
//! the test drops the hold.

use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::EntryPayload;
use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tokio::sync::oneshot;

use super::log_writer::Done;
use super::wal::WalReader;
use super::{open_database, wal_dir, LogStore, LogTables, StoreError};
use crate::{LogId, Vote};

use crate::test_types::TestTypes;

type Entry<C> = <C as openraft::RaftTypeConfig>::Entry;

fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TestTypes>(term, node_id, index)
}

type Store = LogStore<TestTypes>;
type Outcome = oneshot::Receiver<Result<(), StoreError>>;

fn entry(term: u64, index: u64) -> Entry<TestTypes> {
    openraft::Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(format!("{term}-{index}")),
    }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry<TestTypes>> {
    indexes.map(|i| entry(term, i)).collect()
}

/// A [`Done`] and the receiver of its outcome.
fn outcome() -> (Done, Outcome) {
    let (tx, rx) = oneshot::channel();
    let done: Done = Box::new(move |r| {
        let _ = tx.send(r);
    });
    (done, rx)
}

fn open(path: &Path) -> (Arc<Database>, Store) {
    let db = open_database(path).expect("open database");
    let store = Store::open(db.clone(), LogTables::DEFAULT, path).expect("open log store");
    (db, store)
}

/// `(term, index)` of every entry `store` serves.
async fn visible(store: &mut Store) -> Vec<(u64, u64)> {
    store
        .try_get_log_entries(0..)
        .await
        .expect("read entries")
        .iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect()
}

/// Number of durable entries (ignoring the overlay).
fn durable_len(wal: &WalReader) -> u64 {
    wal.read(..).expect("read the log").len() as u64
}

async fn last_index(store: &mut Store) -> Option<u64> {
    let state = store.get_log_state().await.expect("log state");
    state.last_log_id.map(|id| id.index)
}

#[tokio::test]
async fn appended_entries_are_readable_before_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut store) = open(&dir.path().join("log.redb"));

    let blocker = store.hold_writer();
    let (done, mut rx) = outcome();
    store.enqueue_append(entries(1, 1..=3), done).unwrap();

    assert_eq!(visible(&mut store).await, vec![(1, 1), (1, 2), (1, 3)]);
    assert_eq!(last_index(&mut store).await, Some(3));
    assert_eq!(durable_len(&store.wal()), 0);
    assert!(rx.try_recv().is_err(), "completion before the commit");

    drop(blocker);
    rx.await.unwrap().unwrap();
    assert_eq!(durable_len(&store.wal()), 3);
    assert_eq!(visible(&mut store).await, vec![(1, 1), (1, 2), (1, 3)]);
}

#[tokio::test]
async fn queued_appends_complete_in_order_after_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut store) = open(&dir.path().join("log.redb"));
    let order = Arc::new(Mutex::new(Vec::new()));

    let blocker = store.hold_writer();
    let mut waits = Vec::new();
    for (n, first) in [1u64, 3, 5].into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let (order, wal) = (order.clone(), store.wal());
        let done: Done = Box::new(move |r| {
            // Durable by the time completion is reported.
            order.lock().unwrap().push((n, durable_len(&wal)));
            let _ = tx.send(r);
        });
        store
            .enqueue_append(entries(1, first..=first + 1), done)
            .unwrap();
        waits.push(rx);
    }
    drop(blocker);
    for rx in waits {
        rx.await.unwrap().unwrap();
    }

    assert_eq!(*order.lock().unwrap(), vec![(0, 6), (1, 6), (2, 6)]);
    assert_eq!(last_index(&mut store).await, Some(6));
}

#[tokio::test]
async fn truncate_after_pending_appends_leaves_nothing_from_since() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let (db, mut store) = open(&path);

    let blocker = store.hold_writer();
    let (done_a, rx_a) = outcome();
    let (done_b, rx_b) = outcome();
    store.enqueue_append(entries(1, 1..=5), done_a).unwrap();
    store.enqueue_append(entries(1, 6..=10), done_b).unwrap();
    let truncated = store.enqueue_truncate(5).unwrap();
    assert_eq!(last_index(&mut store).await, Some(4));
    assert_eq!(visible(&mut store).await.len(), 4);

    drop(blocker);
    rx_a.await.unwrap().unwrap();
    rx_b.await.unwrap().unwrap();
    truncated.await.unwrap().unwrap();
    assert_eq!(durable_len(&store.wal()), 4);

    store.blocking_append(entries(2, 5..=6)).await.unwrap();
    let expected = vec![(1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (2, 6)];
    assert_eq!(visible(&mut store).await, expected);

    drop((store, db));
    let (_db, mut store) = open(&path);
    assert_eq!(visible(&mut store).await, expected);
}

#[tokio::test]
async fn truncation_in_flight_hides_durable_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut store) = open(&dir.path().join("log.redb"));
    store.blocking_append(entries(1, 1..=10)).await.unwrap();

    let blocker = store.hold_writer();
    let truncated = store.enqueue_truncate(5).unwrap();
    assert_eq!(durable_len(&store.wal()), 10);
    assert_eq!(visible(&mut store).await.len(), 4);
    assert_eq!(last_index(&mut store).await, Some(4));
    // A new append after the truncation is visible while both are queued.
    let (done, rx) = outcome();
    store.enqueue_append(entries(2, 5..=5), done).unwrap();
    assert_eq!(visible(&mut store).await.last(), Some(&(2, 5)));
    assert_eq!(last_index(&mut store).await, Some(5));

    drop(blocker);
    truncated.await.unwrap().unwrap();
    rx.await.unwrap().unwrap();
    assert_eq!(durable_len(&store.wal()), 5);
    assert_eq!(visible(&mut store).await.last(), Some(&(2, 5)));
}

#[tokio::test]
async fn reopen_after_drop_keeps_every_completed_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let (db, mut store) = open(&path);
    let vote = Vote::new(3, 1);

    store.blocking_append(entries(1, 1..=4)).await.unwrap();
    store.save_vote(&vote).await.unwrap();
    store.purge(log_id(1, 1, 2)).await.unwrap();
    store.save_committed(Some(log_id(1, 1, 3))).await.unwrap();
    // Queued but not awaited: dropping the store flushes it.
    let (done, mut rx) = outcome();
    store.enqueue_append(entries(1, 5..=6), done).unwrap();
    drop((store, db));
    rx.try_recv().unwrap().unwrap();

    let (_db, mut store) = open(&path);
    assert_eq!(
        visible(&mut store).await,
        vec![(1, 3), (1, 4), (1, 5), (1, 6)]
    );
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 3)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 6)));
}

#[tokio::test]
async fn a_failed_write_reaches_its_callback_and_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let (_db, mut store) = open(&path);
    // The log's directory vanishes: the first append cannot create a segment.
    std::fs::remove_dir_all(wal_dir(&path)).unwrap();

    let (done, rx) = outcome();
    store.enqueue_append(entries(1, 1..=2), done).unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::LogWrite(_)), "{err}");

    // The writer refuses everything after a failure, even once the
    // directory is back.
    std::fs::create_dir_all(wal_dir(&path)).unwrap();
    store.save_vote(&Vote::new(1, 1)).await.unwrap_err();
    let (done, rx) = outcome();
    store.enqueue_append(entries(1, 1..=1), done).unwrap();
    assert!(matches!(rx.await.unwrap(), Err(StoreError::LogWrite(_))));
}

/// The committed id as written in redb (not the pending one).
fn stored_committed(db: &Database) -> Option<LogId> {
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(LogTables::DEFAULT.meta).unwrap();
    super::records::get_record(&meta, super::log_store::COMMITTED).unwrap()
}

#[tokio::test]
async fn a_checkpoint_writes_the_committed_id_only_once_the_log_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut store) = open(&dir.path().join("log.redb"));
    store.blocking_append(entries(1, 1..=2)).await.unwrap();
    // Committed by a quorum before this member's own append is durable.
    store.save_committed(Some(log_id(1, 1, 3))).await.unwrap();
    store.checkpoint().unwrap();
    assert_eq!(stored_committed(&db), None);
    assert_eq!(
        store.read_committed().await.unwrap(),
        Some(log_id(1, 1, 3)),
        "the newest id is read from memory"
    );

    store.blocking_append(entries(1, 3..=3)).await.unwrap();
    store.checkpoint().unwrap();
    assert_eq!(stored_committed(&db), Some(log_id(1, 1, 3)));
}

/// Writes `indexes` into the redb log table, as builds before the
/// write-ahead log kept them.
fn write_legacy_log(db: &Database, indexes: std::ops::RangeInclusive<u64>) {
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(LogTables::DEFAULT.log).unwrap();
        for e in entries(1, indexes) {
            let bytes = super::codec::encode("log entry", &e).unwrap();
            table.insert(e.log_id.index, bytes.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_log_kept_in_redb_moves_into_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let db = open_database(&path).unwrap();
    write_legacy_log(&db, 1..=50);
    // An earlier move that crashed before it emptied the table left some
    // entries in the write-ahead log: the move starts over.
    let (mut wal, reader) = super::wal::open(&wal_dir(&path), None, Default::default()).unwrap();
    wal.append([(1u64, &b"partial"[..])]).unwrap();
    wal.sync().unwrap();
    drop((wal, reader));

    let mut store = Store::open(db.clone(), LogTables::DEFAULT, &path).unwrap();
    let want: Vec<(u64, u64)> = (1..=50).map(|i| (1, i)).collect();
    assert_eq!(visible(&mut store).await, want);
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(LogTables::DEFAULT.log).unwrap();
    assert_eq!(table.len().unwrap(), 0, "the redb table is emptied");
    drop((table, txn));
    store.blocking_append(entries(1, 51..=51)).await.unwrap();
    drop((store, db));

    let (_db, mut store) = open(&path);
    assert_eq!(visible(&mut store).await.len(), 51);
}
