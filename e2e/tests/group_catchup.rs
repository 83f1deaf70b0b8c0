//! Catch-up of a member that was down: from the log after a short outage,
//! and by snapshot after the rest of the group compacted its log past the
//! member's position (while it is down, the leader retries it with a
//! backoff, not in a tight loop).

use std::time::Duration;

use anyhow::{ensure, Result};
use shardline_client::{AdminClient, ReadMode};
use shardline_e2e::{http_get, metric, quick_options, TestGroup};

async fn write_range(client: &shardline_client::KvClient, from: u64, to: u64) -> Result<()> {
    for i in from..to {
        client.put(format!("k{i}"), format!("v{i}")).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_kept_down_past_compaction_catches_up_by_snapshot() -> Result<()> {
    let mut group = TestGroup::start(3, &["--keep-logs", "0"])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = group
        .members
        .iter()
        .map(|m| m.id)
        .find(|id| *id != leader)
        .expect("a follower");
    let client = group.client().await?;
    write_range(&client, 0, 200).await?;
    let before = group.status(leader).await?.last_applied;
    group
        .wait_applied(follower, before, Duration::from_secs(20))
        .await?;

    group.kill(follower);
    // While the follower is down the leader keeps trying it, with a backoff:
    // heartbeats every 100 ms and replication every 200 ms fail, not a
    // connection attempt in a tight loop (that spun a core and wrote
    // thousands of log lines a second).
    let failures = format!(
        "shardline_raft_replication_stream_failures_total{{peer=\"{follower}\",reason=\"status\"}}"
    );
    let http = group
        .members
        .iter()
        .find(|m| m.id == leader)
        .unwrap()
        .http
        .clone();
    let failed = || async {
        let text = http_get(&http, "/metrics").await?;
        anyhow::Ok(metric(&text, &failures).unwrap_or(0.0))
    };
    let (before_failures, since) = (failed().await?, std::time::Instant::now());
    write_range(&client, 200, 600).await?;
    // Compact every running member so the follower's next entry is gone.
    for m in group.members.iter().filter(|m| m.is_running()) {
        // Building a snapshot takes longer than a status poll.
        let opts = quick_options()
            .with_total_timeout(Duration::from_secs(10))
            .with_call_timeout(Duration::from_secs(5));
        let admin = AdminClient::connect(vec![m.addr.clone()], opts).await?;
        let idx = admin.compact().await?;
        ensure!(
            idx > before,
            "member {} compacted to {idx}, not past {before}",
            m.id
        );
    }
    let leader_st = shardline_e2e::wait_until(
        "the leader to purge past the follower",
        Duration::from_secs(20),
        || {
            let g = &group;
            async move {
                g.status(leader)
                    .await
                    .ok()
                    .filter(|s| s.purged_index > before)
            }
        },
    )
    .await?;

    let rate = (failed().await? - before_failures) / since.elapsed().as_secs_f64();
    ensure!(
        rate < 100.0,
        "the leader failed {rate:.0} connections a second to the dead follower"
    );

    group.restart(follower)?;
    let st = group
        .wait_applied(follower, leader_st.last_applied, Duration::from_secs(30))
        .await?;
    ensure!(
        st.snapshot_index > before,
        "follower caught up without a snapshot (snapshot index {})",
        st.snapshot_index
    );
    ensure!(st.key_count == 600, "follower holds {} keys", st.key_count);
    // Its own state serves the newest data.
    let local =
        shardline_client::KvClient::connect(vec![group.addr(follower)], Default::default()).await?;
    ensure!(local.get_with("k599", ReadMode::Stale).await? == Some(b"v599".to_vec()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_recovers_from_its_directory() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    write_range(&client, 0, 100).await?;

    // Graceful stop of the leader: SIGTERM drains and exits cleanly.
    ensure!(
        group.terminate(leader, Duration::from_secs(15))?,
        "leader exited with an error on SIGTERM"
    );
    write_range(&client, 100, 150).await?;
    group.restart(leader)?;
    let new_leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let target = group.status(new_leader).await?.last_applied;
    let st = group
        .wait_applied(leader, target, Duration::from_secs(20))
        .await?;
    ensure!(
        st.key_count == 150,
        "restarted member holds {} keys",
        st.key_count
    );
    Ok(())
}

/// A member whose data directory is wiped (a re-created volume) and that is
/// restarted with the same flags must not come back as the voter it was:
/// with an empty log it could vote in a leader that lacks writes it had
/// acknowledged. It has itself removed, rejoins as a learner, catches up
/// and is a voter again; no write is lost and the group keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_a_wiped_directory_rejoins_as_a_new_member() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let result = wiped_member_rejoins(&mut group).await;
    group.logs_on_error(result)?;
    Ok(())
}

async fn wiped_member_rejoins(group: &mut TestGroup) -> Result<()> {
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    write_range(&client, 0, 200).await?;
    let wiped = group
        .members
        .iter()
        .map(|m| m.id)
        .find(|id| *id != leader)
        .expect("a follower");
    let before = group.status(leader).await?.last_applied;
    group
        .wait_applied(wiped, before, Duration::from_secs(20))
        .await?;

    group.wipe_and_restart(wiped)?;
    write_range(&client, 200, 300).await?;
    group
        .wait_voter_holding(wiped, 300, Duration::from_secs(60))
        .await?;
    let log = group.log_text(wiped);
    ensure!(
        log.contains("joining it as a new member") && log.contains("removed from group"),
        "the wiped member did not go through removal and rejoin"
    );
    let local =
        shardline_client::KvClient::connect(vec![group.addr(wiped)], Default::default()).await?;
    ensure!(local.get_with("k0", ReadMode::Stale).await? == Some(b"v0".to_vec()));
    ensure!(local.get_with("k299", ReadMode::Stale).await? == Some(b"v299".to_vec()));
    // Still a working three-voter group: writes go on.
    write_range(&client, 300, 310).await?;
    Ok(())
}
