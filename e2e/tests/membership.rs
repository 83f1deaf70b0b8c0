//! Membership changes on a live group: a new member joins through a
//! follower's address (following the NotLeader hint to the leader), catches
//! up as a learner, becomes a voter; a member is removed.

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
