//! `kubectl shardline status` with a live view from a real controller: a
//! 3-member `shard-controller` group on loopback, a fake Kubernetes API
//! server (`client/tests/support/fake_kube.rs`) holding the ShardedCluster
//! and forwarding its controller pods' port 7400 to the members, and the
//! `shardline` binary linked as `kubectl-shardline`.
//!
//! The live view is fetched both ways: from `--controller ADDR`, and
//! through the API server's port-forward (pod `kv-ctrl-0` refuses, so the
//! plugin moves on to `kv-ctrl-1`). Group 1 reports load on one range
//! (above the controller's `--hot-threshold-ops`), so the live view has a
//! reported group and a hot range. A controller that is not there leaves
//! the resource's status printed with the reason beside it.

#[path = "../../client/tests/support/fake_kube.rs"]
mod fake_kube;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use fake_kube::{sample_cluster, FakeKube};
use serde_json::Value;
use shardline_e2e::binaries;
use shardline_e2e::controller::TestController;
use shardline_proto::pb;

/// `kubectl-shardline`, a link to the built `shardline`, in `dir`.
fn plugin(dir: &Path) -> Result<PathBuf> {
    let link = dir.join("kubectl-shardline");
    std::os::unix::fs::symlink(&binaries().shardline, &link).context("link the plugin")?;
    Ok(link)
}

async fn run(program: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .context("the plugin did not finish within 60s")?
        .context("run the plugin")
}

fn json_of(out: &Output) -> Result<Value> {
    ensure!(
        out.status.code() == Some(0),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("stdout is one JSON document")
}

/// Checks the live view against what the controller itself says; range
/// `hot_range` of group 1 is the one hot range.
fn check_live(
    live: &Value,
    source: &str,
    leader: u64,
    leader_addr: &str,
    config_num: u64,
    hot_range: u64,
) -> Result<()> {
    ensure!(live["source"] == source, "source: {live}");
    ensure!(live["leader"]["id"] == leader, "leader: {live}");
    ensure!(live["leader"]["address"] == leader_addr, "leader: {live}");
    ensure!(live["leader"]["role"] == "leader", "leader: {live}");
    ensure!(
        live["members"].as_array().map(Vec::len) == Some(3),
        "members: {live}"
    );
    ensure!(
        live["term"].as_u64().is_some_and(|t| t >= 1),
        "term: {live}"
    );
    ensure!(live["configNum"] == config_num, "config: {live}");
    ensure!(live["partitioning"] == "hash", "partitioning: {live}");
    ensure!(live["rangeCount"] == 16, "ranges: {live}");
    let groups = live["groups"].as_array().context("groups")?;
    let gids: Vec<u64> = groups.iter().filter_map(|g| g["gid"].as_u64()).collect();
    ensure!(gids == [1, 2], "groups: {live}");
    let ranges: u64 = groups.iter().filter_map(|g| g["rangeCount"].as_u64()).sum();
    ensure!(ranges == 16, "every range is owned: {live}");
    ensure!(
        groups[0]["addresses"][0] == "10.2.1.1:7401",
        "addresses: {live}"
    );
    ensure!(groups[0]["opsPerSec"] == 5000.0, "group 1's report: {live}");
    ensure!(
        groups[0]["reportAgeSecs"].is_f64(),
        "group 1 reported: {live}"
    );
    ensure!(
        groups[1]["reportAgeSecs"].is_null(),
        "group 2 never reported: {live}"
    );
    ensure!(live["hotOpsPerSec"] == 100.0, "threshold: {live}");
    let hot = live["hotRanges"].as_array().context("hotRanges")?;
    ensure!(hot.len() == 1, "one hot range: {live}");
    ensure!(
        hot[0]["rangeId"] == hot_range && hot[0]["gid"] == 1,
        "hot range: {live}"
    );
    ensure!(
        hot[0]["opsPerSec"] == 5000.0 && hot[0]["keys"] == 42,
        "hot range: {live}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_controllers_live_view() -> Result<()> {
    let ctl = TestController::start(
        3,
        &["--hot-threshold-ops", "100", "--load-report-max-age", "10m"],
    )?;
    let leader = ctl.wait_for_leader(Duration::from_secs(30)).await?;
    let client = ctl.client().await?;
    let config = client
        .join(vec![
            (1, vec!["10.2.1.1:7401".into()]),
            (2, vec!["10.2.2.1:7401".into()]),
        ])
        .await?;
    for id in 1..=3 {
        ctl.wait_config(id, config.num, Duration::from_secs(20))
            .await?;
    }
    let hot = config
        .ranges
        .iter()
        .find(|r| r.gid == 1)
        .context("group 1 owns a range")?
        .clone();
    client
        .report_load(
            1,
            vec![pb::RangeLoad {
                range_id: hot.id,
                epoch: hot.epoch,
                ops_per_sec: 5000.0,
                keys: 42,
                ..Default::default()
            }],
        )
        .await?;

    let kube = FakeKube::start().await;
    kube.add_cluster("shop", "kv", sample_cluster("shop", "kv", 3));
    // kv-ctrl-0 forwards to a port nobody listens on; the others to members
    // 2 and 3.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    kube.add_forward("shop", "kv-ctrl-0", 7400, closed);
    kube.add_forward("shop", "kv-ctrl-1", 7400, ctl.addr(2).parse()?);
    kube.add_forward("shop", "kv-ctrl-2", 7400, ctl.addr(3).parse()?);
    let dir = tempfile::tempdir()?;
    let kc = kube.write_kubeconfig(dir.path(), Some("shop"));
    let kc = kc.to_str().context("utf-8 path")?;
    let plugin = plugin(dir.path())?;
    let leader_addr = ctl.addr(leader);

    // --controller: straight to member 1.
    let direct = ctl.addr(1);
    let out = run(
        &plugin,
        &[
            "status",
            "kv",
            "--kubeconfig",
            kc,
            "--controller",
            &direct,
            "-o",
            "json",
        ],
    )
    .await?;
    let doc = json_of(&out)?;
    ensure!(doc["resource"]["phase"] == "Running", "{doc}");
    ensure!(doc["liveError"].is_null(), "{doc}");
    check_live(
        &doc["live"],
        &format!("controller {direct}"),
        leader,
        &leader_addr,
        config.num,
        hot.id,
    )?;
    ensure!(
        !kube.requests().iter().any(|r| r.contains("/portforward")),
        "no port-forward with --controller: {:?}",
        kube.requests()
    );

    // Port-forward: kv-ctrl-0 refuses, kv-ctrl-1 answers.
    let out = run(&plugin, &["status", "kv", "--kubeconfig", kc, "-o", "json"]).await?;
    let doc = json_of(&out)?;
    ensure!(doc["liveError"].is_null(), "{doc}");
    check_live(
        &doc["live"],
        "pod kv-ctrl-1 (port-forward)",
        leader,
        &leader_addr,
        config.num,
        hot.id,
    )?;
    let forwards: Vec<String> = kube
        .requests()
        .into_iter()
        .filter(|r| r.contains("/portforward"))
        .collect();
    ensure!(
        forwards
            .first()
            .is_some_and(|r| r.contains("/pods/kv-ctrl-0/"))
            && forwards.iter().any(|r| r.contains("/pods/kv-ctrl-1/"))
            && !forwards.iter().any(|r| r.contains("/pods/kv-ctrl-2/")),
        "tried in order, stopped at the first answer: {forwards:?}"
    );

    // The same for people.
    let out = run(&plugin, &["status", "kv", "--kubeconfig", kc]).await?;
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.code() == Some(0),
        "{human}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{human}"); // shown with --nocapture
    let live_line = format!(
        "Live view from pod kv-ctrl-1 (port-forward): leader {leader_addr} (id {leader}), term "
    );
    ensure!(human.contains(&live_line), "{human}");
    ensure!(
        human.contains(&format!(", config {}, 16 ranges\n", config.num)),
        "{human}"
    );
    let group1: Vec<&str> = human
        .lines()
        .skip_while(|l| !l.starts_with("GID"))
        .find(|l| l.starts_with("1 "))
        .context("group 1 row")?
        .split_whitespace()
        .collect();
    // Resource columns, then the controller's: ranges, ops/s, report age.
    ensure!(group1[..3] == ["1", "Serving", "3/3"], "{human}");
    let n = group1.len();
    ensure!(
        group1[n - 3] == "5000.0" && group1[n - 2].ends_with('s') && group1[n - 1] == "ago",
        "group 1's live load and report age: {human}"
    );
    ensure!(
        human.contains("\nHot ranges (live, above 100.0 ops/s):\nRANGE  GID  START"),
        "{human}"
    );

    // A controller that is not there: the resource still shows, exit 0.
    let out = run(
        &plugin,
        &[
            "status",
            "kv",
            "--kubeconfig",
            kc,
            "--controller",
            &closed.to_string(),
            "--timeout",
            "2s",
            "-o",
            "json",
        ],
    )
    .await?;
    let doc = json_of(&out)?;
    ensure!(doc["live"].is_null(), "{doc}");
    ensure!(doc["resource"]["configNum"] == 3, "{doc}");
    let why = doc["liveError"].as_str().context("liveError")?;
    ensure!(why.starts_with(&format!("controller {closed}")), "{why}");
    Ok(())
}
