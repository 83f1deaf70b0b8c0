//! Load reporting end to end: a 3-member controller and a 3-member shard
//! group started with `--controller`; once the group has joined, load
//! driven at one key makes the group's leader report it, and the
//! controller's `ClusterStatus` shows that key's range with ops > 0 and
//! lists it as hot under a low threshold (and not under a high one), with
//! the group's stored keys spread over its ranges.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use shardline_e2e::controller::TestController;
use shardline_e2e::{wait_until, TestGroup};
use shardline_proto::keyspace::PartitionMode;
use shardline_proto::pb;
use shardline_proto::pb::controller_client::ControllerClient;
use tonic::transport::Channel;

/// Keys written before the load, so every range stores some.
const PRELOAD: usize = 320;

async fn cluster_status(
    client: &mut ControllerClient<Channel>,
    hot_ops_per_sec: f64,
) -> Result<pb::ClusterStatusResponse> {
    let call = client.cluster_status(pb::ClusterStatusRequest {
        hot_ops_per_sec: Some(hot_ops_per_sec),
    });
    Ok(tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .context("ClusterStatus timed out")??
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_reports_range_load_and_the_controller_lists_the_hot_range() -> Result<()> {
    let ctl = TestController::start(3, &[])?;
    ctl.wait_for_leader(Duration::from_secs(30)).await?;
    let controllers = ctl
        .members
        .iter()
        .map(|m| m.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let group = TestGroup::start(
        3,
        &[
            "--controller",
            &controllers,
            "--load-report-interval",
            "500ms",
        ],
    )?;
    group.wait_for_leader(Duration::from_secs(30)).await?;
    let config = ctl
        .client()
        .await?
        .join(vec![(1, group.endpoints())])
        .await?;
    ensure!(config.ranges.len() == 16, "16 hash ranges: {config:?}");

    let kv = group.client().await?;
    for i in 0..PRELOAD {
        kv.put(format!("preload-{i}"), "v").await?;
    }
    let hot_key = b"the-hot-key";
    let hot_range = config
        .range_for(&PartitionMode::Hash.routing_key(hot_key))
        .ok_or_else(|| anyhow!("no range holds the hot key"))?
        .id;

    let mut status_client = ControllerClient::connect(format!("http://{}", ctl.addr(1))).await?;
    // Drive load at the hot key between looks at ClusterStatus until the
    // controller has a fresh report showing it as the hottest range (an
    // earlier report may still count the preload in its window).
    let status = wait_until(
        "the hot range in ClusterStatus",
        Duration::from_secs(60),
        || {
            let kv = &kv;
            let mut status_client = status_client.clone();
            async move {
                for i in 0..40 {
                    kv.put(hot_key, format!("v{i}")).await.ok()?;
                    kv.get(hot_key).await.ok()?;
                }
                let status = cluster_status(&mut status_client, 1.0).await.ok()?;
                let hottest = status
                    .hot_ranges
                    .first()
                    .is_some_and(|r| r.range_id == hot_range);
                hottest.then_some(status)
            }
        },
    )
    .await?;

    ensure!(
        status.hot_ops_per_sec == 1.0,
        "threshold echoed: {status:?}"
    );
    ensure!(status.ranges.len() == 16, "every range listed: {status:?}");
    let range = status
        .ranges
        .iter()
        .find(|r| r.range_id == hot_range)
        .context("hot range listed among ranges")?;
    ensure!(range.gid == 1 && range.ops_per_sec > 1.0, "{range:?}");
    ensure!(
        range.report_age_secs.is_some_and(|age| age < 30.0),
        "fresh report: {range:?}"
    );
    // Every range was reported, and the group's keys (the preload plus the
    // hot key) are shared among them.
    ensure!(
        status.ranges.iter().all(|r| r.report_age_secs.is_some()),
        "every range reported: {:?}",
        status.ranges
    );
    let keys: u64 = status.ranges.iter().map(|r| r.keys).sum();
    let stored = (PRELOAD + 1) as u64;
    ensure!(
        keys.abs_diff(stored) <= 16,
        "keys over ranges {keys} vs stored {stored}"
    );
    // So are their stored bytes: each pair is an 8-byte hash prefix, the
    // key and the value ("v" for the preload, "v0".."v39" for the hot key).
    let bytes: u64 = status.ranges.iter().map(|r| r.bytes).sum();
    let stored_bytes = (0..PRELOAD)
        .map(|i| 8 + format!("preload-{i}").len() as u64 + 1)
        .sum::<u64>()
        + 8
        + hot_key.len() as u64
        + 3;
    ensure!(
        bytes.abs_diff(stored_bytes) <= 20 && status.groups[0].bytes.abs_diff(stored_bytes) <= 20,
        "bytes over ranges {bytes}, group {:?} vs stored {stored_bytes}",
        status.groups
    );
    ensure!(
        status.groups[0].ops_per_sec >= range.ops_per_sec,
        "group load includes the range: {:?}",
        status.groups
    );

    // Under a threshold far above the load nothing is hot; a bad one is refused.
    let calm = cluster_status(&mut status_client, 1e9).await?;
    ensure!(calm.hot_ranges.is_empty(), "{:?}", calm.hot_ranges);
    let err = cluster_status(&mut status_client, -1.0)
        .await
        .expect_err("negative threshold");
    let code = err
        .downcast_ref::<tonic::Status>()
        .map(|s| s.code())
        .context("a gRPC status")?;
    ensure!(code == tonic::Code::InvalidArgument, "{err}");
    Ok(())
}
