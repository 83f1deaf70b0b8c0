//! Unit tests of the redb store: apply semantics, exactly-once sessions,
//! snapshots, reopening, identity checks and scans.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::membership_ent;
use openraft::{EntryPayload, StorageHelper};
use shardline_proto::keyspace::{KeyRange, PartitionMode};
use tempfile::TempDir;

use super::{open, OpenedStore, StoreError};
use crate::types::{
    Applied, BatchOp, Command, CommandResult, Entry, LogId, Op, Proposal, Session, SessionClock,
    TypeConfig, Vote,
};

const GROUP: u64 = 3;

fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, node_id, index)
}

fn fresh(mode: PartitionMode) -> (TempDir, OpenedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&db_path(&dir), GROUP, mode).expect("open store");
    (dir, store)
}

fn db_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("node").join("shard.redb")
}

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(command.into()),
    }
}

fn plain(op: Op) -> Command {
    Command { session: None, op }
}

fn session(client: u8, seq: u64, ack_below: u64) -> Option<Session> {
    Some(Session {
        client_id: [client; 16],
        seq,
        ack_below,
    })
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn cas(key: &str, expected: Option<&str>, new_value: Option<&str>) -> Op {
    Op::CompareAndSwap {
        key: key.as_bytes().to_vec(),
        expected: expected.map(|v| v.as_bytes().to_vec()),
        new_value: new_value.map(|v| v.as_bytes().to_vec()),
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Applies `commands` as consecutive entries starting at `first`.
async fn apply(store: &mut OpenedStore, first: u64, commands: Vec<Command>) -> Vec<CommandResult> {
    apply_indexed(store, first, commands)
        .await
        .into_iter()
        .map(|a| a.result)
        .collect()
}

/// [`apply`], keeping the index each answer reports.
async fn apply_indexed(
    store: &mut OpenedStore,
    first: u64,
    commands: Vec<Command>,
) -> Vec<Applied> {
    let entries = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| entry(first + i as u64, c));
    let answers = store
        .sm
        .apply_batch(entries.collect::<Vec<_>>())
        .await
        .expect("apply");
    // Each entry here holds one command, so it has exactly one answer.
    answers
        .into_iter()
        .map(|mut a| {
            assert_eq!(a.len(), 1, "one answer per command");
            a.remove(0)
        })
        .collect()
}

#[tokio::test]
async fn apply_put_delete_and_read_back_in_both_modes() {
    for mode in [PartitionMode::Hash, PartitionMode::Range] {
        let (_dir, mut s) = fresh(mode);
        let results = apply(
            &mut s,
            1,
            vec![
                plain(put("a", "1")),
                plain(put("b", "2")),
                plain(Op::Delete { key: b("a") }),
                plain(Op::Delete { key: b("zz") }),
            ],
        )
        .await;
        assert_eq!(
            results,
            vec![
                CommandResult::Put,
                CommandResult::Put,
                CommandResult::Delete { existed: true },
                CommandResult::Delete { existed: false },
            ]
        );
        assert_eq!(s.reader.get(b"a").unwrap(), None);
        assert_eq!(s.reader.get(b"b").unwrap(), Some(b("2")));
        assert_eq!(s.reader.key_count().unwrap(), 1);
        assert_eq!(s.reader.last_applied().unwrap(), Some(log_id(1, 1, 4)));
        assert_eq!(s.reader.partition_mode(), mode);
        assert_eq!(s.reader.ranges().unwrap(), vec![KeyRange::full(1, GROUP)]);
    }
}

#[tokio::test]
async fn compare_and_swap_semantics() {
    let (_dir, mut s) = fresh(PartitionMode::Hash);
    let results = apply(
        &mut s,
        1,
        vec![
            plain(cas("k", None, Some("v1"))), // absent, expected absent: create
            plain(cas("k", None, Some("v2"))), // present, expected absent: fail
            plain(cas("k", Some("x"), Some("v3"))), // wrong value: fail
            plain(cas("k", Some("v1"), Some("v4"))), // right value: swap
            plain(cas("k", Some("v4"), None)), // right value, no new value: delete
            plain(cas("k", Some("v4"), Some("v5"))), // absent, expected a value: fail
        ],
    )
    .await;
    let r = |succeeded, current: Option<&str>| CommandResult::CompareAndSwap {
        succeeded,
        current: current.map(b),
    };
    assert_eq!(
        results,
        vec![
            r(true, None),
            r(false, Some("v1")),
            r(false, Some("v1")),
            r(true, Some("v1")),
            r(true, Some("v4")),
            r(false, None)
        ]
    );
    assert_eq!(s.reader.get(b"k").unwrap(), None);
}

#[tokio::test]
async fn batch_applies_all_ops_in_order() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    apply(&mut s, 1, vec![plain(put("old", "x"))]).await;
    let ops = vec![
        BatchOp::Put {
            key: b("a"),
            value: b("1"),
        },
        BatchOp::Put {
            key: b("b"),
            value: b("2"),
        },
        BatchOp::Delete { key: b("old") },
        BatchOp::Delete { key: b("a") },
    ];
    let results = apply(&mut s, 2, vec![plain(Op::Batch { ops })]).await;
    assert_eq!(results, vec![CommandResult::Batch]);
    assert_eq!(
        s.reader.scan(b"", b"", 10).unwrap(),
        (vec![(b("b"), b("2"))], false)
    );
}

#[tokio::test]
async fn a_proposal_applies_its_commands_in_order_and_answers_each() {
    let (_dir, s) = fresh(PartitionMode::Range);
    let proposal = crate::types::Proposal {
        clock: SessionClock::NONE,
        commands: vec![
            Command {
                session: session(4, 1, 0),
                op: put("k", "a"),
            },
            Command {
                session: session(5, 1, 0),
                op: cas("k", Some("a"), Some("b")),
            },
            // The same (client, seq) twice in one proposal applies once.
            Command {
                session: session(4, 1, 0),
                op: put("k", "a"),
            },
            plain(Op::Delete { key: b("missing") }),
        ],
    };
    let e = Entry {
        log_id: log_id(1, 1, 3),
        payload: EntryPayload::Normal(proposal),
    };
    let answers = s.sm.apply_batch(vec![e]).await.expect("apply");
    assert_eq!(answers.len(), 1);
    let results: Vec<CommandResult> = answers[0].iter().map(|a| a.result.clone()).collect();
    assert_eq!(
        results,
        vec![
            CommandResult::Put,
            CommandResult::CompareAndSwap {
                succeeded: true,
                current: Some(b("a"))
            },
            CommandResult::Put,
            CommandResult::Delete { existed: false },
        ]
    );
    assert!(answers[0].iter().all(|a| a.index == 3));
    assert_eq!(
        s.reader.get(b"k").unwrap(),
        Some(b("b")),
        "the replay did not overwrite the CAS"
    );
}

#[tokio::test]
async fn a_replayed_write_reports_the_index_it_was_first_applied_at() {
    let (_dir, mut s) = fresh(PartitionMode::Hash);
    let write = Command {
        session: session(3, 1, 0),
        op: put("k", "v"),
    };
    let first = apply_indexed(&mut s, 7, vec![write.clone()]).await;
    let retry = apply_indexed(&mut s, 9, vec![write]).await;
    assert_eq!(first[0].index, 7);
    assert_eq!(
        retry, first,
        "the retry at index 9 answers as the original at 7"
    );
}

#[tokio::test]
async fn same_session_seq_is_applied_once_and_answers_the_stored_result() {
    let (_dir, mut s) = fresh(PartitionMode::Hash);
    let first = Command {
        session: session(1, 5, 0),
        op: cas("k", None, Some("v1")),
    };
    let results = apply(&mut s, 1, vec![first.clone(), first.clone()]).await;
    let created = CommandResult::CompareAndSwap {
        succeeded: true,
        current: None,
    };
    assert_eq!(
        results,
        vec![created.clone(), created.clone()],
        "retry in the same batch"
    );

    // A retry with a different payload is still answered from the table, not applied.
    let retry = Command {
        session: session(1, 5, 0),
        op: put("k", "other"),
    };
    assert_eq!(apply(&mut s, 3, vec![retry]).await, vec![created]);
    assert_eq!(s.reader.get(b"k").unwrap(), Some(b("v1")));

    // Another client with the same seq is independent; commands without a session always apply.
    let other = Command {
        session: session(2, 5, 0),
        op: put("k", "v2"),
    };
    assert_eq!(
        apply(&mut s, 4, vec![other, plain(put("k", "v3"))]).await,
        vec![CommandResult::Put; 2]
    );
    assert_eq!(s.reader.get(b"k").unwrap(), Some(b("v3")));
}

#[tokio::test]
async fn floor_prunes_results_and_expires_old_seqs() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    let cmds = (1..=3)
        .map(|seq| Command {
            session: session(9, seq, 0),
            op: put("k", &seq.to_string()),
        })
        .collect();
    apply(&mut s, 1, cmds).await;

    // seq 4 acknowledges everything below 3: results of 1 and 2 are forgotten.
    apply(
        &mut s,
        4,
        vec![Command {
            session: session(9, 4, 3),
            op: put("k", "4"),
        }],
    )
    .await;
    let retries = vec![
        Command {
            session: session(9, 1, 3),
            op: put("k", "again"),
        },
        Command {
            session: session(9, 2, 0),
            op: put("k", "again"),
        },
        Command {
            session: session(9, 3, 0),
            op: put("k", "again"),
        },
    ];
    let results = apply(&mut s, 5, retries).await;
    assert_eq!(
        results,
        vec![
            CommandResult::DuplicateExpired { floor: 3 },
            CommandResult::DuplicateExpired { floor: 3 },
            CommandResult::Put,
        ]
    );
    assert_eq!(
        s.reader.get(b"k").unwrap(),
        Some(b("4")),
        "no retry was re-applied"
    );

    // A lower ack_below never lowers the floor.
    apply(
        &mut s,
        8,
        vec![Command {
            session: session(9, 5, 1),
            op: put("k", "5"),
        }],
    )
    .await;
    let again = apply(
        &mut s,
        9,
        vec![Command {
            session: session(9, 2, 0),
            op: put("k", "x"),
        }],
    )
    .await;
    assert_eq!(again, vec![CommandResult::DuplicateExpired { floor: 3 }]);
}

#[tokio::test]
async fn snapshot_installed_into_a_fresh_store_reproduces_data_and_sessions() {
    let (_dir_a, mut a) = fresh(PartitionMode::Hash);
    let mut cmds: Vec<Command> = (0..50)
        .map(|i| plain(put(&format!("key-{i:02}"), &format!("v{i}"))))
        .collect();
    cmds.push(Command {
        session: session(4, 10, 0),
        op: cas("c", None, Some("1")),
    });
    cmds.push(Command {
        session: session(4, 11, 11),
        op: put("d", "1"),
    });
    apply(&mut a, 1, cmds).await;
    let members =
        membership_ent::<crate::types::TypeConfig>(1, 1, 53, vec![BTreeSet::from([1, 2, 3])]);
    a.sm.apply_batch(vec![members]).await.unwrap();

    let snap = a.sm.snapshot_now().await;
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 53)));
    let again = a.sm.snapshot_now().await;
    assert_eq!(
        snap.meta, again.meta,
        "a snapshot of unchanged state has the same meta"
    );

    let (_dir_b, mut b_store) = fresh(PartitionMode::Hash);
    apply(&mut b_store, 1, vec![plain(put("stale", "x"))]).await;
    b_store
        .sm
        .install_snapshot(&snap.meta, snap.snapshot.clone())
        .await
        .unwrap();

    assert_eq!(
        b_store.reader.get(b"stale").unwrap(),
        None,
        "install replaces the whole state"
    );
    assert_eq!(
        b_store.reader.key_count().unwrap(),
        a.reader.key_count().unwrap()
    );
    assert_eq!(
        b_store.reader.scan(b"", b"", 100).unwrap(),
        a.reader.scan(b"", b"", 100).unwrap()
    );
    assert_eq!(b_store.reader.ranges().unwrap(), a.reader.ranges().unwrap());
    assert_eq!(
        b_store.sm.applied_state().await.unwrap(),
        a.sm.applied_state().await.unwrap()
    );
    let current = b_store
        .sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot");
    assert_eq!(current.meta, snap.meta);

    // Sessions travelled: a replay answers the stored result, an acknowledged seq is expired.
    let replay = vec![
        Command {
            session: session(4, 11, 11),
            op: put("d", "2"),
        },
        Command {
            session: session(4, 10, 0),
            op: put("c", "2"),
        },
    ];
    let results = apply(&mut b_store, 54, replay).await;
    assert_eq!(
        results,
        vec![
            CommandResult::Put,
            CommandResult::DuplicateExpired { floor: 11 }
        ]
    );
    assert_eq!(b_store.reader.get(b"d").unwrap(), Some(b("1")));
}

#[tokio::test]
async fn install_rejects_other_groups_and_corrupted_bytes_without_touching_state() {
    let (_dir_a, mut a) = fresh(PartitionMode::Hash);
    apply(&mut a, 1, vec![plain(put("a", "1"))]).await;
    let snap = a.sm.snapshot_now().await;

    let dir = tempfile::tempdir().unwrap();
    let mut other = open(&db_path(&dir), GROUP + 1, PartitionMode::Hash).unwrap();
    other
        .sm
        .apply_batch(vec![entry(1, plain(put("mine", "1")))])
        .await
        .unwrap();
    let err = other
        .sm
        .install_snapshot(&snap.meta, snap.snapshot.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("group_id"), "{err}");

    let garbage = Cursor::new(vec![0xff; 7]);
    assert!(other
        .sm
        .install_snapshot(&snap.meta, garbage)
        .await
        .is_err());
    assert_eq!(other.reader.get(b"mine").unwrap(), Some(b("1")));
    assert_eq!(other.reader.get(b"a").unwrap(), None);
}

#[tokio::test]
async fn reopen_keeps_log_vote_data_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let vote = Vote::new_committed(2, 1);
    let snapshot_meta = {
        let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
        let entries: Vec<Entry> = (1..=4)
            .map(|i| entry(i, plain(put(&format!("k{i}"), "v"))))
            .collect();
        s.log.blocking_append(entries.clone()).await.unwrap();
        s.log.save_vote(&vote).await.unwrap();
        s.sm.apply_batch(entries[..2].to_vec()).await.unwrap();
        let snap = s.sm.snapshot_now().await;
        // Entries 3 and 4 are committed but not applied when the node
        // "stops"; the committed id is written with the purge that follows.
        s.log.save_committed(Some(log_id(1, 1, 4))).await.unwrap();
        s.log.purge(log_id(1, 1, 1)).await.unwrap();
        snap.meta
    };

    let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
    assert_eq!(s.log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(s.log.read_committed().await.unwrap(), Some(log_id(1, 1, 4)));
    let state = s.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 4)));
    let logs = s.log.try_get_log_entries(0..10).await.unwrap();
    assert_eq!(
        logs.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let current =
        s.sm.get_current_snapshot()
            .await
            .unwrap()
            .expect("snapshot survives restart");
    assert_eq!(current.meta, snapshot_meta);
    assert_eq!(s.reader.get(b"k2").unwrap(), Some(b("v")));

    // openraft's startup re-applies (last_applied, committed] from the log.
    StorageHelper::new(&mut s.log, &mut s.sm)
        .get_initial_state()
        .await
        .unwrap();
    assert_eq!(s.reader.last_applied().unwrap(), Some(log_id(1, 1, 4)));
    assert_eq!(s.reader.key_count().unwrap(), 4);
}

#[tokio::test]
async fn the_committed_id_is_stored_once_the_log_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
        let entries: Vec<Entry> = (1..=3)
            .map(|i| entry(i, plain(put(&format!("k{i}"), "v"))))
            .collect();
        s.log.blocking_append(entries[..2].to_vec()).await.unwrap();
        s.log.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
        // An older id never replaces a newer one.
        s.log.save_committed(Some(log_id(1, 1, 1))).await.unwrap();
        assert_eq!(s.log.read_committed().await.unwrap(), Some(log_id(1, 1, 2)));
        s.log.checkpoint().unwrap();
        s.log.blocking_append(entries[2..].to_vec()).await.unwrap();
        // Committed by a quorum past what this member's log holds: kept in
        // memory only, also by the last checkpoint when the node stops.
        s.log.save_committed(Some(log_id(1, 1, 4))).await.unwrap();
        assert_eq!(s.log.read_committed().await.unwrap(), Some(log_id(1, 1, 4)));
    }
    {
        let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
        assert_eq!(s.log.read_committed().await.unwrap(), Some(log_id(1, 1, 2)));
        // Held by the log: the checkpoint on stop stores it.
        s.log.save_committed(Some(log_id(1, 1, 3))).await.unwrap();
    }
    let mut s = open(&path, GROUP, PartitionMode::Range).unwrap();
    assert_eq!(s.log.read_committed().await.unwrap(), Some(log_id(1, 1, 3)));
}

#[test]
fn reopening_with_another_group_or_mode_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(open(&path, GROUP, PartitionMode::Hash).unwrap());
    let expect_mismatch = |path: &Path, group, mode, want: &str| match open(path, group, mode) {
        Err(StoreError::Mismatch { field, .. }) => assert_eq!(field, want),
        Err(e) => panic!("expected a {want} mismatch, got {e}"),
        Ok(_) => panic!("expected a {want} mismatch, store opened"),
    };
    expect_mismatch(&path, GROUP + 1, PartitionMode::Hash, "group_id");
    expect_mismatch(&path, GROUP, PartitionMode::Range, "mode");
    assert!(open(&path, GROUP, PartitionMode::Hash).is_ok());
}

#[tokio::test]
async fn scan_returns_user_key_order_with_limit_and_more_in_both_modes() {
    for mode in [PartitionMode::Hash, PartitionMode::Range] {
        let (_dir, mut s) = fresh(mode);
        let keys = ["g", "c", "a", "j", "e", "b", "i", "d", "h", "f"];
        apply(
            &mut s,
            1,
            keys.iter()
                .map(|k| plain(put(k, &k.to_uppercase())))
                .collect(),
        )
        .await;
        let page = |start: &str, end: &str, limit| {
            let (pairs, more) = s
                .reader
                .scan(start.as_bytes(), end.as_bytes(), limit)
                .unwrap();
            let keys: Vec<String> = pairs
                .iter()
                .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
                .collect();
            (keys.join(""), more)
        };
        assert_eq!(page("", "", 3), ("abc".to_string(), true), "{mode}");
        assert_eq!(
            page("", "", 10),
            ("abcdefghij".to_string(), false),
            "{mode}"
        );
        assert_eq!(page("c", "f", 10), ("cde".to_string(), false), "{mode}");
        assert_eq!(page("c", "f", 3), ("cde".to_string(), false), "{mode}");
        assert_eq!(page("c", "f", 2), ("cd".to_string(), true), "{mode}");
        assert_eq!(page("h", "", 5), ("hij".to_string(), false), "{mode}");
        assert_eq!(page("c", "f", 0), (String::new(), true), "{mode}");
        assert_eq!(page("f", "c", 5), (String::new(), false), "{mode}");
        let (pairs, _) = s.reader.scan(b"d", b"e", 1).unwrap();
        assert_eq!(pairs, vec![(b("d"), b("D"))], "{mode}");
    }
}

/// Applies `commands` as one proposal at `index`, stamped with a leader clock
/// of `now_ms` and a session TTL of `ttl_ms`.
async fn apply_at(
    store: &mut OpenedStore,
    index: u64,
    now_ms: u64,
    ttl_ms: u64,
    commands: Vec<Command>,
) -> Vec<Applied> {
    let e = Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal {
            commands,
            clock: SessionClock {
                now_ms,
                session_ttl_ms: ttl_ms,
            },
        }),
    };
    let mut answers = store.sm.apply_batch(vec![e]).await.expect("apply");
    answers.remove(0)
}

fn with(client: u8, seq: u64, ack_below: u64, op: Op) -> Command {
    Command {
        session: session(client, seq, ack_below),
        op,
    }
}

/// Sessions the store remembers: (client byte, last use ms), by client.
fn sessions(store: &OpenedStore) -> Vec<(u8, u64)> {
    use redb::{ReadableTable, ReadableTableMetadata};
    let txn = store.sm.deferred().read_txn().unwrap();
    let seen = txn.open_table(super::tables::DEDUP_SEEN).unwrap();
    let expiry = txn.open_table(super::tables::DEDUP_EXPIRY).unwrap();
    let out: Vec<(u8, u64)> = seen
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value()[0], v.value())
        })
        .collect();
    assert_eq!(
        expiry.len().unwrap() as usize,
        out.len(),
        "the expiry index has one entry per session"
    );
    for (client, at) in &out {
        let key = super::dedup::expiry_key(*at, &[*client; 16]);
        assert!(
            expiry.get(key.as_slice()).unwrap().is_some(),
            "index entry of {client}"
        );
    }
    out
}

#[tokio::test]
async fn an_idle_session_expires_after_the_ttl_and_an_active_one_stays() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    const TTL: u64 = 500;
    // Client 1 writes at t=1000, client 2 at t=1000 and again at t=1400.
    apply_at(
        &mut s,
        1,
        1000,
        TTL,
        vec![with(1, 5, 3, put("a", "1")), with(2, 1, 0, put("b", "1"))],
    )
    .await;
    apply_at(&mut s, 2, 1400, TTL, vec![with(2, 2, 0, put("b", "2"))]).await;
    assert_eq!(sessions(&s), vec![(1, 1000), (2, 1400)]);

    // t=1450: cutoff 950, nobody is idle long enough; a retry still replays.
    let replay = apply_at(&mut s, 3, 1450, TTL, vec![with(1, 5, 3, put("a", "other"))]).await;
    assert_eq!(replay[0].index, 1, "answered from the session table");
    assert_eq!(s.reader.get(b"a").unwrap(), Some(b("1")));

    // t=1600: cutoff 1100. Client 1 was last seen at 1450 (its retry counts
    // as use), so nothing expires yet either.
    apply_at(&mut s, 4, 1600, TTL, vec![plain(put("x", "1"))]).await;
    assert_eq!(sessions(&s), vec![(1, 1450), (2, 1400)]);

    // t=1950: cutoff 1450 — client 2 (1400) is forgotten, client 1 (1450) is not.
    apply_at(&mut s, 5, 1950, TTL, vec![plain(put("x", "2"))]).await;
    assert_eq!(sessions(&s), vec![(1, 1450)]);
    // Client 2's old write is no longer deduplicated: a retry now applies again.
    let again = apply_at(&mut s, 6, 1960, TTL, vec![with(2, 2, 0, put("b", "3"))]).await;
    assert_eq!(
        again[0].index, 6,
        "a forgotten session's write is applied as new"
    );
    assert_eq!(s.reader.get(b"b").unwrap(), Some(b("3")));

    // t=3000: client 1's results and its floor go too: seq 2 (below its old
    // floor 3) is no longer refused as expired.
    apply_at(&mut s, 7, 3000, TTL, vec![plain(put("x", "3"))]).await;
    assert_eq!(sessions(&s), vec![]);
    let fresh_again = apply_at(&mut s, 8, 3001, TTL, vec![with(1, 2, 0, put("a", "9"))]).await;
    assert_eq!(fresh_again[0].result, CommandResult::Put);
}

#[tokio::test]
async fn proposals_without_a_clock_or_ttl_neither_refresh_nor_expire_sessions() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    apply_at(&mut s, 1, 1000, 0, vec![with(1, 1, 0, put("a", "1"))]).await;
    // No TTL: nothing expires however late.
    apply_at(&mut s, 2, u64::MAX / 2, 0, vec![plain(put("x", "1"))]).await;
    // No clock (`From<Command>`): the session is not touched.
    apply(&mut s, 3, vec![with(1, 2, 0, put("a", "2"))]).await;
    assert_eq!(sessions(&s), vec![(1, 1000)]);
}

#[tokio::test]
async fn expiry_is_bounded_per_proposal_and_drains_oldest_first() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    let idle = 64 + 6; // more than one proposal expires
    for c in 0..idle {
        apply_at(
            &mut s,
            1 + u64::from(c),
            1000 + u64::from(c),
            0,
            vec![with(c, 1, 0, put("k", "v"))],
        )
        .await;
    }
    assert_eq!(sessions(&s).len(), usize::from(idle));
    apply_at(&mut s, 100, 10_000, 100, vec![plain(put("x", "1"))]).await;
    let left = sessions(&s);
    assert_eq!(left.len(), 6, "one proposal expires at most 64 sessions");
    assert_eq!(left.first(), Some(&(64, 1064)), "the oldest went first");
    apply_at(&mut s, 101, 10_001, 100, vec![plain(put("x", "2"))]).await;
    assert!(sessions(&s).is_empty());
}

#[tokio::test]
async fn session_times_travel_in_snapshots_and_expire_identically_after_install() {
    let (_dir_a, mut a) = fresh(PartitionMode::Hash);
    apply_at(&mut a, 1, 1000, 0, vec![with(1, 1, 0, put("a", "1"))]).await;
    apply_at(&mut a, 2, 2000, 0, vec![with(2, 1, 0, put("b", "1"))]).await;
    let snap = a.sm.snapshot_now().await;

    let (_dir_b, mut b_store) = fresh(PartitionMode::Hash);
    b_store
        .sm
        .install_snapshot(&snap.meta, snap.snapshot.clone())
        .await
        .unwrap();
    assert_eq!(sessions(&b_store), sessions(&a));

    // The same proposal expires the same sessions on both.
    for store in [&mut a, &mut b_store] {
        apply_at(store, 3, 2500, 1000, vec![plain(put("x", "1"))]).await;
    }
    assert_eq!(sessions(&a), vec![(2, 2000)]);
    assert_eq!(sessions(&b_store), sessions(&a));
}

#[tokio::test]
async fn a_busy_session_refreshes_its_last_use_at_most_once_per_ttl_64th() {
    let (_dir, mut s) = fresh(PartitionMode::Range);
    const TTL: u64 = 6400; // refresh resolution 100 ms
    apply_at(&mut s, 1, 1000, TTL, vec![with(1, 1, 0, put("a", "1"))]).await;
    apply_at(&mut s, 2, 1099, TTL, vec![with(1, 2, 0, put("a", "2"))]).await;
    assert_eq!(
        sessions(&s),
        vec![(1, 1000)],
        "within the resolution: not rewritten"
    );
    apply_at(&mut s, 3, 1100, TTL, vec![with(1, 3, 0, put("a", "3"))]).await;
    assert_eq!(sessions(&s), vec![(1, 1100)]);
}
