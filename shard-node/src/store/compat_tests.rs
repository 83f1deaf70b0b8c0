//! A member file written by the openraft 0.9 build (before commit 3a7746f)
//! opens and reads on this one: upgraded pods keep their PVCs.
//!
//! The fixture is the redb file of a single-member group (group 1, hash
//! mode) that served `put keyN valueN` for N in 1..=30 and `delete key7`
//! with `--snapshot-every 20 --keep-logs 5`, then stopped on SIGTERM.

use std::io::Read;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use shardline_proto::keyspace::PartitionMode;

use super::open;

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/openraft-0.9-member.redb.gz");

#[tokio::test]
async fn a_member_file_from_the_openraft_0_9_build_opens_and_reads() {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(FIXTURE)
        .read_to_end(&mut raw)
        .expect("decompress the fixture");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.redb");
    std::fs::write(&path, raw).unwrap();
    let mut s = open(&path, 1, PartitionMode::Hash).expect("open the 0.9 file");

    // Log: the initial membership (index 0), the leader's blank entry, 30
    // puts and one delete (index 32); purged behind the snapshot except the
    // entries kept for slow followers.
    let state = s.log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(32));
    let purged = state
        .last_purged_log_id
        .expect("purged behind the snapshot");
    let entries = s.log.try_get_log_entries(purged.index + 1..).await.unwrap();
    assert_eq!(entries.len() as u64, 32 - purged.index);
    assert_eq!(entries.last().map(|e| e.log_id.index), Some(32));
    let vote = s.log.read_vote().await.unwrap().expect("a vote");
    assert_eq!(vote.leader_id.term, 1);
    assert!(vote.committed);

    // State machine and snapshot.
    let snapshot =
        s.sm.get_current_snapshot()
            .await
            .unwrap()
            .expect("a snapshot");
    // Built after 20 entries (indexes 0..=19).
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(19));
    assert_eq!(s.reader.last_applied().unwrap().map(|l| l.index), Some(32));
    for i in 1..=30 {
        let got = s.reader.get(format!("key{i}").as_bytes()).unwrap();
        let want = (i != 7).then(|| format!("value{i}").into_bytes());
        assert_eq!(got, want, "key{i}");
    }
    assert_eq!(s.reader.key_count().unwrap(), 29);
}
