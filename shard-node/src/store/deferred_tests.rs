//! Tests of deferred applies: applies are staged, every read and every
//! later apply sees them, staging gives the same answers and state as
//! writing each apply at once, snapshots hold them, and a restart that lost
//! them finds redb at the last written entry (openraft re-applies the rest
//! from the log).

use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use redb::ReadableDatabase;
use shardline_proto::keyspace::PartitionMode;
use tempfile::TempDir;

use super::deferred::{MAX_BYTES, MAX_ENTRIES};
use super::{open, tables, OpenedStore};
use crate::types::{
    BatchOp, Command, CommandResult, Entry, LogId, Op, Proposal, Session, SessionClock, TypeConfig,
};
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

fn delete(index: u64, key: &str) -> Entry {
    entry(index, Op::Delete { key: key.into() })
}

/// `(key, value)` pairs as a scan returns them.
fn pairs(kvs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    kvs.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[tokio::test]
async fn applies_are_staged_reads_see_them_and_key_counts_write_them_first() {
    let (_dir, mut s) = fresh();
    apply_unanswered(&mut s, vec![put(1, "a", "1"), put(2, "c", "1")]).await;
    s.sm.deferred().settle().unwrap();
    apply_unanswered(&mut s, vec![put(3, "b", "2"), put(4, "a", "3")]).await;
    apply_unanswered(&mut s, vec![delete(5, "c")]).await;
    assert_eq!(s.sm.deferred().len(), 3);
    assert_eq!(written_applied(&s), Some(log_id(2)), "3..5 only staged");

    // Point reads and scans lay the staged changes over redb, unwritten.
    assert_eq!(s.reader.get(b"a").unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.reader.get(b"c").unwrap(), None, "staged delete");
    assert_eq!(
        s.reader.scan(b"", b"", 10).unwrap(),
        (pairs(&[("a", "3"), ("b", "2")]), false)
    );
    assert_eq!(s.reader.last_applied().unwrap(), Some(log_id(5)));
    assert_eq!(s.sm.deferred().len(), 3, "reads wrote nothing");

    assert_eq!(s.reader.key_count().unwrap(), 2);
    assert_eq!(s.sm.deferred().len(), 0);
    assert_eq!(written_applied(&s), Some(log_id(5)));
}

#[tokio::test]
async fn hash_mode_scans_merge_staged_changes_in_user_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir.path().join("shard.redb"), GROUP, PartitionMode::Hash).unwrap();
    let keys = ["k1", "k2", "k3", "k4", "k5"];
    let written: Vec<Entry> = (1..).zip(keys).map(|(i, k)| put(i, k, "old")).collect();
    apply_unanswered(&mut s, written).await;
    s.sm.deferred().settle().unwrap();
    apply_unanswered(
        &mut s,
        vec![put(6, "k0", "new"), put(7, "k3", "new"), delete(8, "k4")],
    )
    .await;
    assert_eq!(
        s.reader.scan(b"k0", b"k5", 3).unwrap(),
        (pairs(&[("k0", "new"), ("k1", "old"), ("k2", "old")]), true)
    );
    assert_eq!(
        s.reader.scan(b"k3", b"", 10).unwrap(),
        (pairs(&[("k3", "new"), ("k5", "old")]), false)
    );
    assert_eq!(s.sm.deferred().len(), 3, "reads wrote nothing");
}

#[tokio::test]
async fn an_answered_apply_sees_the_staged_applies_before_it() {
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
    assert_eq!(
        s.sm.deferred().len(),
        2,
        "answered or not, applies are staged"
    );
    assert_eq!(written_applied(&s), None);
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
        s.sm.deferred().settle().unwrap();
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

/// A deterministic pseudo-random sequence (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `count` proposals mixing every operation, retries of earlier seqs (some
/// below the client's floor), acknowledgements and a clock that lets
/// sessions expire, over a few keys so operations interfere.
fn mixed_workload(count: u64) -> Vec<Entry> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut next_seq = [1u64; 5];
    let mut now_ms = 1_000;
    let key = |rng: &mut Rng| format!("k{}", rng.below(12)).into_bytes();
    let value = |rng: &mut Rng| format!("v{}", rng.below(4)).into_bytes();
    (1..=count)
        .map(|index| {
            now_ms += rng.below(40);
            let commands = (0..1 + rng.below(3))
                .map(|_| {
                    let client = rng.below(5) as usize;
                    let seq = if rng.below(6) == 0 && next_seq[client] > 1 {
                        1 + rng.below(next_seq[client] - 1)
                    } else {
                        next_seq[client] += 1;
                        next_seq[client] - 1
                    };
                    let ack_below = seq.saturating_sub(rng.below(4)).max(1);
                    let op = match rng.below(5) {
                        0 => Op::Delete { key: key(&mut rng) },
                        1 => Op::CompareAndSwap {
                            key: key(&mut rng),
                            expected: (rng.below(3) > 0).then(|| value(&mut rng)),
                            new_value: (rng.below(4) > 0).then(|| value(&mut rng)),
                        },
                        2 => Op::Batch {
                            ops: vec![
                                BatchOp::Put {
                                    key: key(&mut rng),
                                    value: value(&mut rng),
                                },
                                BatchOp::Delete { key: key(&mut rng) },
                            ],
                        },
                        _ => Op::Put {
                            key: key(&mut rng),
                            value: value(&mut rng),
                        },
                    };
                    Command {
                        session: (rng.below(8) > 0).then_some(Session {
                            client_id: [client as u8; 16],
                            seq,
                            ack_below,
                        }),
                        op,
                    }
                })
                .collect();
            Entry {
                log_id: log_id(index),
                payload: EntryPayload::Normal(Proposal {
                    commands,
                    clock: SessionClock {
                        now_ms,
                        session_ttl_ms: 300,
                    },
                }),
            }
        })
        .collect()
}

/// Every state-machine table, as (table, key, value) bytes.
fn dump(store: &OpenedStore) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    use redb::ReadableTable;
    let txn = store.sm.deferred().read_txn().unwrap();
    let mut rows = Vec::new();
    for (name, table) in [("kv", tables::KV), ("dedup", tables::DEDUP)] {
        for item in txn.open_table(table).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            rows.push((name, k.value().to_vec(), v.value().to_vec()));
        }
    }
    for (name, table) in [("floor", tables::DEDUP_FLOOR), ("seen", tables::DEDUP_SEEN)] {
        for item in txn.open_table(table).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            rows.push((name, k.value().to_vec(), v.value().to_be_bytes().to_vec()));
        }
    }
    for item in txn
        .open_table(tables::DEDUP_EXPIRY)
        .unwrap()
        .iter()
        .unwrap()
    {
        rows.push(("expiry", item.unwrap().0.value().to_vec(), Vec::new()));
    }
    rows
}

#[tokio::test]
async fn staged_applies_answer_and_leave_the_same_state_as_applies_written_at_once() {
    let entries = mixed_workload(700);
    let (_dir_a, a) = fresh();
    let (_dir_b, b) = fresh();
    let mut rng = Rng(77);
    let mut rest = entries.as_slice();
    let mut kinds = std::collections::HashSet::new();
    let mut replays = 0;
    while !rest.is_empty() {
        let take = (1 + rng.below(6) as usize).min(rest.len());
        let (batch, tail) = rest.split_at(take);
        rest = tail;
        // `a` writes after every entry; `b` stages up to the bounds.
        let mut answers_a = Vec::new();
        for e in batch {
            answers_a.extend(a.sm.apply_batch(vec![e.clone()]).await.unwrap());
            a.sm.deferred().settle().unwrap();
        }
        let answers_b = b.sm.apply_batch(batch.to_vec()).await.unwrap();
        assert_eq!(answers_a, answers_b, "answers up to {:?}", batch[0].log_id);
        for (e, answers) in batch.iter().zip(&answers_b) {
            for answer in answers {
                kinds.insert(std::mem::discriminant(&answer.result));
                replays += usize::from(answer.index < e.log_id.index);
            }
        }
    }
    // Every kind of answer occurred: put, delete, cas, batch and duplicates
    // below the floor; and replays.
    assert_eq!(kinds.len(), 5, "the workload covers every answer kind");
    assert!(replays > 10, "retries answered from the session table");
    assert!(b.sm.deferred().len() > 0, "b ends with staged applies");
    assert_eq!(
        a.reader.scan(b"", b"", 100).unwrap(),
        b.reader.scan(b"", b"", 100).unwrap(),
        "a scan over staged changes"
    );
    let (dump_a, dump_b) = (dump(&a), dump(&b));
    assert!(dump_a.iter().any(|r| r.0 == "expiry"), "sessions recorded");
    assert_eq!(dump_a, dump_b);
    assert_eq!(written_applied(&a), written_applied(&b));
    assert_eq!(written_applied(&b), Some(log_id(700)));
}

/// Waits until `cond` holds, failing after ten seconds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_keep_staging_while_a_checkpoint_holds_the_write_lock() {
    let (_dir, mut s) = fresh();
    // Holds redb's write lock as a checkpoint's flush would; the checkpoint
    // started below waits for it, marked busy.
    let flush = s.sm.db().begin_write().unwrap();
    let log = s.log.clone();
    let checkpoint = std::thread::spawn(move || log.checkpoint());
    let busy = s.log.checkpoint_busy();
    eventually("the checkpoint to start", || busy.is_busy()).await;

    // Past the bound that writes staged changes: an apply that waited for
    // the lock would never finish.
    let n = MAX_ENTRIES as u64 * 3;
    let applied = tokio::spawn(async move {
        let entries = (1..=n).map(|i| put(i, &format!("k{i}"), "v")).collect();
        apply_unanswered(&mut s, entries).await;
        s
    });
    let mut s = tokio::time::timeout(std::time::Duration::from_secs(10), applied)
        .await
        .expect("applies waited for the checkpoint's lock")
        .unwrap();
    assert_eq!(
        written_applied(&s),
        None,
        "nothing written while the lock is held"
    );
    assert_eq!(
        s.reader.get(format!("k{n}").as_bytes()).unwrap(),
        Some(b"v".to_vec()),
        "reads see the staged applies"
    );

    drop(flush);
    checkpoint.join().unwrap().unwrap();
    assert!(!busy.is_busy());
    apply_unanswered(&mut s, vec![put(n + 1, "last", "v")]).await;
    assert_eq!(
        written_applied(&s),
        Some(log_id(n + 1)),
        "written once the lock is free"
    );
}

/// `apply_may_write` (which decides whether an apply leaves the async
/// worker) predicts exactly the applies that write to redb.
#[tokio::test]
async fn an_apply_may_write_exactly_when_it_takes_the_staged_changes_past_the_bounds() {
    let (_dir, mut s) = fresh();
    assert!(!s.sm.deferred().apply_may_write(&[put(1, "a", "1")]));
    let bound = MAX_ENTRIES as u64;
    let staged: Vec<Entry> = (1..=bound).map(|i| put(i, "k", "v")).collect();
    assert!(!s.sm.deferred().apply_may_write(&staged));
    apply_unanswered(&mut s, staged).await;
    let before = written_applied(&s);
    assert_ne!(before, Some(log_id(bound)), "staged only");
    assert!(s.sm.deferred().apply_may_write(&[put(bound + 1, "k", "v")]));
    apply_unanswered(&mut s, vec![put(bound + 1, "k", "v")]).await;
    assert_eq!(written_applied(&s), Some(log_id(bound + 1)));
    // One apply with more payload than the byte bound writes at once.
    let big = "x".repeat(MAX_BYTES + 1);
    assert!(s
        .sm
        .deferred()
        .apply_may_write(&[put(bound + 2, "b", &big)]));
    assert!(!s
        .sm
        .deferred()
        .apply_may_write(&[put(bound + 2, "b", "small")]));
}
