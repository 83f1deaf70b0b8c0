//! Controller start-up shapes: a single member and a 5-member group serve
//! the API; a member restarted with a different `--partitioning` or
//! `--initial-ranges` than its data directory records refuses to start (and
//! starts fine again with the original flags, history intact); a new member
//! joins a running controller with `--join` and receives the whole history.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use shardline_e2e::controller::TestController;
use shardline_e2e::{http_get, wait_until};

fn group(gid: u64) -> (u64, Vec<String>) {
    (gid, vec![format!("10.2.{gid}.1:7400")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_serves_and_refuses_a_different_bootstrap_on_restart() -> Result<()> {
    let mut ctl = TestController::start(1, &[])?;
    let leader = ctl.wait_for_leader(Duration::from_secs(20)).await?;
    ensure!(leader == 1, "the only member leads");
    let client = ctl.client().await?;
    let c1 = client.join(vec![group(1)]).await?;
    ensure!(
        c1.ranges.len() == 16 && c1.ranges.iter().all(|r| r.gid == 1),
        "16 hash ranges by default: {c1:?}"
    );
    let c2 = client.join(vec![group(2)]).await?;
    let http = ctl.members[0].http.clone();
    let ready = http_get(&http, "/readyz").await?;
    ensure!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "readyz: {ready}"
    );
    ensure!(
        http_get(&http, "/healthz").await?.contains(" 200 "),
        "healthz"
    );
    let metrics = http_get(&http, "/metrics").await?;
    ensure!(
        metrics.contains("shardline_controller_latest_config 2"),
        "metrics: {metrics}"
    );
    ensure!(
        metrics.contains("shardline_controller_raft_is_leader 1"),
        "metrics: {metrics}"
    );

    ensure!(
        ctl.terminate(1, Duration::from_secs(15))?,
        "clean exit on SIGTERM"
    );
    for flags in [
        &["--partitioning", "range"][..],
        &["--initial-ranges", "32"][..],
    ] {
        ctl.restart_with(1, flags)?;
        let exit = ctl.wait_exit(1, Duration::from_secs(20))?;
        ensure!(!exit.success(), "restart with {flags:?} must fail");
        ensure!(
            ctl.log_text(1).contains("bootstrap mismatch"),
            "the log says why: {flags:?}"
        );
    }

    ctl.restart(1)?;
    ctl.wait_for_leader(Duration::from_secs(20)).await?;
    let latest = client.query(None).await?;
    ensure!(
        latest == c2,
        "history survives: latest is config {}",
        latest.num
    );
    ensure!(client.query(Some(1)).await? == c1, "config 1 unchanged");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_agree_and_a_joining_member_gets_the_history() -> Result<()> {
    let mut ctl = TestController::start(5, &["--partitioning", "range"])?;
    let result = five_members(&mut ctl).await;
    ctl.logs_on_error(result)
}

async fn five_members(ctl: &mut TestController) -> Result<()> {
    let leader = ctl.wait_for_leader(Duration::from_secs(30)).await?;
    let client = ctl.client().await?;
    let c1 = client.join(vec![group(1), group(2)]).await?;
    ensure!(
        c1.ranges.len() == 1 && c1.mode.as_str() == "range",
        "range mode starts with one range: {c1:?}"
    );
    let c2 = client.split(1, b"m".to_vec()).await?;
    let c3 = client.move_range(2, 2).await?;
    for id in 1..=5 {
        ctl.wait_config(id, c3.num, Duration::from_secs(20)).await?;
        let member = ctl.member_client(id).await?;
        ensure!(member.query(Some(2)).await? == c2, "member {id} config 2");
        ensure!(member.query(Some(3)).await? == c3, "member {id} config 3");
    }
    let status = client.status().await?;
    ensure!(
        status.members.len() == 5 && status.leader_id == Some(leader),
        "status: {status:?}"
    );

    // A sixth member joins through a follower and catches up.
    let follower = ctl
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    let via = ctl.addr(follower);
    let new = ctl.add_joining_member(&via)?;
    ctl.wait_config(new, c3.num, Duration::from_secs(30))
        .await?;
    let ctl_ref: &TestController = ctl;
    wait_until(
        "the joining member to become a voter",
        Duration::from_secs(30),
        || async move {
            let st = ctl_ref.status(leader).await.ok()?;
            st.members
                .iter()
                .any(|m| m.id == new && m.role == "follower")
                .then_some(())
        },
    )
    .await?;
    ensure!(
        ctl.member_client(new).await?.query(Some(1)).await? == c1,
        "new member holds config 1"
    );
    Ok(())
}
