//! Planned leadership hand-over (`Admin.TransferLeader`) in a 3-member group
//! of real processes: leadership lands on the chosen voter, writes continue
//! and every acknowledged write stays readable; a target that is not a voter
//! is refused and the leader stays; a leader stopped with SIGTERM hands
//! leadership over before it exits.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use shardline_client::{AdminClient, ClientError, ClientOptions, ReadMode};
use shardline_e2e::TestGroup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_chosen_voter_and_writes_continue() -> Result<()> {
    let group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let others: Vec<u64> = group
        .members
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != leader)
        .collect();
    let (target, via) = (others[0], others[1]);
    let client = group.client().await?;
    for i in 0..50 {
        client.put(format!("k{i}"), format!("v{i}")).await?;
    }
    let term_before = group.status(leader).await?.term;

    // Asked through a member that does not lead: the client follows its
    // NotLeader hint to the leader.
    let admin = AdminClient::connect(vec![group.addr(via)], ClientOptions::default()).await?;
    let started = Instant::now();
    let term = admin.transfer_leader(target).await?;
    let took = started.elapsed();
    ensure!(
        term > term_before,
        "new term {term} not above {term_before}"
    );
    let now = group.wait_for_leader(Duration::from_secs(10)).await?;
    ensure!(now == target, "node {now} leads, expected {target}");
    println!("leadership moved {leader} -> {target} in {took:?}");

    for i in 50..100 {
        client.put(format!("k{i}"), format!("v{i}")).await?;
    }
    for i in 0..100 {
        let got = client
            .get_with(format!("k{i}"), ReadMode::Linearizable)
            .await?;
        ensure!(
            got.as_deref() == Some(format!("v{i}").as_bytes()),
            "k{i} reads {got:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_not_a_voter_is_refused_and_the_leader_stays() -> Result<()> {
    let group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let admin = AdminClient::connect(group.endpoints(), ClientOptions::default()).await?;
    match admin.transfer_leader(99).await {
        Err(ClientError::InvalidArgument { field, .. }) => {
            ensure!(field == "node_id", "refused on field {field:?}")
        }
        other => bail!("expected InvalidArgument(node_id), got {other:?}"),
    }
    let st = group.status(leader).await?;
    ensure!(
        st.state == "leader",
        "node {leader} is {} after a refused transfer",
        st.state
    );
    // Asking for the current leader is a no-op that reports it.
    let term = admin.transfer_leader(leader).await?;
    ensure!(term == st.term, "term moved from {} to {term}", st.term);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_hands_over_before_it_exits() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    for i in 0..20 {
        client.put(format!("k{i}"), format!("v{i}")).await?;
    }
    ensure!(
        group.terminate(leader, Duration::from_secs(15))?,
        "node {leader} did not exit after SIGTERM"
    );
    let log = group.log_text(leader);
    ensure!(
        log.contains("leadership handed over before stopping"),
        "node {leader} stopped without handing over leadership:\n{log}"
    );
    let now = group.wait_for_leader(Duration::from_secs(10)).await?;
    ensure!(now != leader, "the stopped node {leader} still leads");
    for i in 20..40 {
        client.put(format!("k{i}"), format!("v{i}")).await?;
    }
    for i in 0..40 {
        let got = client.get(format!("k{i}")).await?;
        ensure!(
            got.as_deref() == Some(format!("v{i}").as_bytes()),
            "k{i} reads {got:?}"
        );
    }
    Ok(())
}
