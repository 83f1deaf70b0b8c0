//! A 3-member controller as real processes. Configs are made, the leader is
//! killed (`kill -9`), and the next Join goes through the client; the time
//! it takes is printed. The killed member restarts from its data directory
//! (snapshots are frequent, so catching up may install one), after which
//! every member returns the same history for every `Query(n)`, and watchers
//! opened on each member before the kill have received every config exactly
//! once, in order — including the watcher whose member was killed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use shardline_e2e::controller::{three_member_group as group, TestController};
use shardline_e2e::wait_until;
use shardline_proto::shardmap::Config;

/// Collects every config a watch from 0 yields, until aborted.
fn spawn_watcher(
    client: shardline_client::controller::ControllerClient,
) -> (Arc<Mutex<Vec<Config>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        let mut watch = client.watch(0);
        loop {
            match watch.next().await {
                Ok(c) => sink.lock().unwrap().push(c),
                Err(e) => eprintln!("watch error (retrying): {e}"),
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_next_join_succeeds_and_history_and_watches_agree() -> Result<()> {
    let mut ctl = TestController::start(3, &["--snapshot-every", "4", "--keep-logs", "1"])?;
    let result = scenario(&mut ctl).await;
    ctl.logs_on_error(result)
}

async fn scenario(ctl: &mut TestController) -> Result<()> {
    let leader = ctl.wait_for_leader(Duration::from_secs(20)).await?;
    let client = ctl.client().await?;

    // One watcher per member, each opened on that member first.
    let mut watchers = Vec::new();
    for id in 1..=3 {
        watchers.push(spawn_watcher(ctl.client_via(id).await?));
    }

    let c1 = client.join(vec![group(1), group(2)]).await?;
    ensure!(c1.num == 1 && c1.groups.len() == 2, "first join: {c1:?}");
    let range = c1
        .ranges
        .iter()
        .find(|r| r.gid == 1)
        .context("a range of group 1")?
        .clone();
    let mid = midpoint(&range.start, &range.end);
    let c2 = client.split(range.id, mid).await?;
    let c3 = client.move_range(range.id, 2).await?;
    ensure!(
        c2.num == 2 && c3.num == 3,
        "split/move made configs {} and {}",
        c2.num,
        c3.num
    );

    ctl.kill(leader);
    let killed_at = Instant::now();
    let c4 = client
        .join(vec![group(3)])
        .await
        .context("the first Join after killing the leader")?;
    let took = killed_at.elapsed();
    eprintln!(
        "Join after kill -9 of controller leader {leader}: succeeded in {took:?} (config {})",
        c4.num
    );
    ensure!(
        c4.num == 4 && c4.groups.contains_key(&3),
        "join after kill: {c4:?}"
    );

    let new_leader = ctl.wait_for_leader(Duration::from_secs(10)).await?;
    ensure!(new_leader != leader, "the killed member cannot lead");
    // More history while the old leader is down: it must catch up on it.
    let c5 = client.leave(&[1]).await?;
    let c6 = client.join(vec![group(4)]).await?;
    ensure!(
        c5.num == 5 && c6.num == 6,
        "configs {} and {}",
        c5.num,
        c6.num
    );

    ctl.restart(leader)?;
    for id in 1..=3 {
        ctl.wait_config(id, c6.num, Duration::from_secs(30)).await?;
    }
    ensure!(
        ctl.log_text(leader)
            .contains("recovered existing state from the data directory"),
        "member {leader} restarted from its data directory"
    );

    // Every member answers every Query(n) with the same config.
    let mut history: Vec<Config> = Vec::new();
    for n in 0..=c6.num {
        let mut answers = Vec::new();
        for id in 1..=3 {
            let c = ctl
                .member_client(id)
                .await?
                .query(Some(n))
                .await
                .with_context(|| format!("member {id} Query({n})"))?;
            ensure!(
                c.num == n,
                "member {id} answered Query({n}) with config {}",
                c.num
            );
            answers.push(c);
        }
        ensure!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "members disagree on config {n}: {answers:?}"
        );
        history.push(answers.remove(0));
    }
    ensure!(
        history[1..] == [c1, c2, c3, c4, c5, c6.clone()],
        "history matches what the writes returned"
    );
    let latest = client.query(None).await?;
    ensure!(latest == c6, "latest is config {}", latest.num);

    // Every watcher saw configs 1..=6 exactly once, in order.
    for (i, (seen, task)) in watchers.into_iter().enumerate() {
        wait_until(
            &format!("watcher {} to reach config {}", i + 1, c6.num),
            Duration::from_secs(30),
            || {
                let n = seen.lock().unwrap().last().map(|c| c.num);
                async move { (n >= Some(c6.num)).then_some(()) }
            },
        )
        .await?;
        task.abort();
        let seen = seen.lock().unwrap().clone();
        let nums: Vec<u64> = seen.iter().map(|c| c.num).collect();
        ensure!(
            nums == (1..=c6.num).collect::<Vec<_>>(),
            "watcher {} saw {nums:?}",
            i + 1
        );
        ensure!(
            seen == history[1..],
            "watcher {} configs differ from the history",
            i + 1
        );
    }
    Ok(())
}

/// A hash routing key halfway between `start` and `end` (8-byte big-endian;
/// empty means 0 at the start and 2^64 at the end).
fn midpoint(start: &[u8], end: &[u8]) -> Vec<u8> {
    let as_u128 = |b: &[u8], empty: u128| {
        if b.is_empty() {
            empty
        } else {
            u128::from(u64::from_be_bytes(b.try_into().expect("8-byte key")))
        }
    };
    let (lo, hi) = (as_u128(start, 0), as_u128(end, 1 << 64));
    (((lo + hi) / 2) as u64).to_be_bytes().to_vec()
}
