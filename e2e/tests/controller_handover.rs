//! A 3-member controller as real processes: the leader stopped with SIGTERM
//! hands leadership to another member before it exits, so the next Join
//! through the client succeeds without waiting for an election timeout; the
//! stopped member restarts from its data directory and catches up.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use shardline_e2e::controller::{three_member_group as group, TestController};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_leader_stopped_with_sigterm_hands_over_before_it_exits() -> Result<()> {
    let mut ctl = TestController::start(3, &[])?;
    let result = scenario(&mut ctl).await;
    ctl.logs_on_error(result)
}

async fn scenario(ctl: &mut TestController) -> Result<()> {
    let leader = ctl.wait_for_leader(Duration::from_secs(20)).await?;
    let client = ctl.client().await?;
    let c1 = client.join(vec![group(1)]).await?;
    ensure!(c1.num == 1, "first join made config {}", c1.num);

    ensure!(
        ctl.terminate(leader, Duration::from_secs(15))?,
        "controller {leader} did not exit after SIGTERM"
    );
    let stopped_at = Instant::now();
    let log = ctl.log_text(leader);
    ensure!(
        log.contains("leadership handed over before stopping"),
        "controller {leader} stopped without handing over leadership:\n{log}"
    );
    let c2 = client.join(vec![group(2)]).await?;
    eprintln!(
        "Join after SIGTERM of controller leader {leader}: succeeded {:?} after its exit",
        stopped_at.elapsed()
    );
    ensure!(
        c2.num == 2 && c2.groups.contains_key(&2),
        "join after hand-over: {c2:?}"
    );
    let now = ctl.wait_for_leader(Duration::from_secs(10)).await?;
    ensure!(now != leader, "the stopped controller {leader} still leads");

    ctl.restart(leader)?;
    ctl.wait_config(leader, c2.num, Duration::from_secs(30))
        .await?;
    let c = ctl.member_client(leader).await?.query(Some(2)).await?;
    ensure!(c == c2, "restarted member's config 2 differs: {c:?}");
    Ok(())
}
