//! Membership changes on a live group: a new member joins through a
//! follower's address (following the NotLeader hint to the leader), catches
//! up as a learner, becomes a voter; a member is removed. A member that waits
//! to be added (as the operator starts later pods) and whose directory is
//! then wiped has itself removed before it takes Raft traffic, and is added
//! back afresh.

use std::time::Duration;

use anyhow::{ensure, Result};
use shardline_client::AdminClient;
use shardline_e2e::{wait_until, TestGroup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_joins_through_any_member_and_can_be_removed() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    for i in 0..50 {
        client.put(format!("k{i}"), "v").await?;
    }
    let follower = group
        .members
        .iter()
        .map(|m| m.id)
        .find(|id| *id != leader)
        .expect("follower");
    let via = group.addr(follower);
    let new = group.add_joining_member(&via)?;

    let st = wait_until(
        "the new member to be a voter",
        Duration::from_secs(30),
        || {
            let g = &group;
            async move {
                let st = g.status(leader).await.ok()?;
                st.members
                    .iter()
                    .any(|m| m.id == new && m.role == "follower")
                    .then_some(st)
            }
        },
    )
    .await?;
    ensure!(st.members.len() == 4, "members: {:?}", st.members);
    let applied = group
        .wait_applied(new, st.last_applied, Duration::from_secs(20))
        .await?;
    ensure!(
        applied.key_count == 50,
        "new member holds {} keys",
        applied.key_count
    );

    // Remove the member again through the admin API.
    let admin = AdminClient::connect(group.endpoints(), Default::default()).await?;
    let members = admin.remove_member(new).await?;
    ensure!(
        members.iter().all(|m| m.id != new),
        "still a member: {members:?}"
    );
    client.put("after", "removal").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_member_with_a_wiped_directory_is_removed_and_added_back_afresh() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let result = wiped_waiting_member(&mut group).await;
    group.logs_on_error(result)?;
    Ok(())
}

async fn wiped_waiting_member(group: &mut TestGroup) -> Result<()> {
    group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    for i in 0..50 {
        client.put(format!("k{i}"), "v").await?;
    }
    let seeds = group.endpoints().join(",");
    let new = group.add_waiting_member(&seeds)?;
    let address = group.addr(new);
    // The operator's part: add the member once it runs.
    let admin = AdminClient::connect(group.endpoints(), Default::default()).await?;
    admin.add_member(new, &address).await?;
    let patience = Duration::from_secs(60);
    group.wait_voter_holding(new, 50, patience).await?;

    group.wipe_and_restart(new)?;
    // It has itself removed; the operator then sees it missing and adds it.
    wait_until(
        "the wiped member to be removed",
        Duration::from_secs(30),
        || {
            let g = &*group;
            async move {
                let st = g.leader_status_except(new).await?;
                st.members.iter().all(|m| m.id != new).then_some(())
            }
        },
    )
    .await?;
    for i in 50..60 {
        client.put(format!("k{i}"), "v").await?;
    }
    admin.add_member(new, &address).await?;
    group.wait_voter_holding(new, 60, patience).await?;
    let log = group.log_text(new);
    ensure!(
        log.matches("having it removed").count() == 1,
        "the member should ask to be removed once (after the wipe), not when first added"
    );
    client.put("after", "rejoin").await?;
    Ok(())
}
