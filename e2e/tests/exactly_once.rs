//! A write retried with the same `(client_id, seq)` applies once, also when
//! the retry reaches a new leader after the old one was killed.

use std::time::Duration;

use anyhow::{ensure, Result};
use shardline_e2e::TestGroup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_write_after_leader_change_applies_once() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;

    // Write A with seq s, then B with a later seq on the same key.
    let first = client.begin_write();
    let idx_a = client.put_with_header(first.header(), "k", "A").await?;
    client.put("k", "B").await?;

    // The leader dies; the retry of A (same header) lands on the new leader.
    group.kill(leader);
    let new_leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    ensure!(new_leader != leader);
    let idx_retry = client.put_with_header(first.header(), "k", "A").await?;
    ensure!(
        idx_retry == idx_a,
        "the retry answered index {idx_retry}, the original applied at {idx_a}"
    );
    ensure!(
        client.get("k").await? == Some(b"B".to_vec()),
        "retry of A was applied again over B"
    );

    // The same holds across a restart of every member (dedup is persisted).
    group.restart(leader)?;
    for id in [1, 2, 3] {
        group.kill(id);
    }
    for id in [1, 2, 3] {
        group.restart(id)?;
    }
    group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = group.client().await?;
    let deleted = {
        let t = client.begin_write();
        let d1 = client.delete_with_header(t.header(), "k").await?;
        let d2 = client.delete_with_header(t.header(), "k").await?;
        (d1, d2)
    };
    ensure!(
        deleted.0.existed && deleted.1.existed,
        "a retried delete must report the original result: {deleted:?}"
    );
    let again = client.put_with_header(first.header(), "k", "A").await;
    ensure!(
        again.is_err() || client.get("k").await?.is_none(),
        "an old write must not resurrect the key"
    );
    Ok(())
}
