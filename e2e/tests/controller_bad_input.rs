//! Every bad input to a 3-member controller, sent through a follower (so the
//! rejection also crosses the forwarding path), returns its typed error —
//! the gRPC code of its `ControllerError` variant, and for malformed input
//! the `InvalidArgument` detail naming the field — and changes nothing: the
//! latest config and the whole history are identical afterwards. Load
//! reports and `ClusterStatus` are checked at the end.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use shardline_client::controller::ControllerClient;
use shardline_client::ClientError;
use shardline_e2e::controller::TestController;
use shardline_proto::pb;
use shardline_proto::shardmap::Config;
use tonic::Code;

/// What a case must fail with.
enum Expect {
    Rejected(Code, &'static str),
    Invalid(&'static str, &'static str),
}

fn check(what: &str, result: &Result<Config, ClientError>, expect: &Expect) -> Result<()> {
    let err = match result {
        Ok(c) => bail!("{what}: accepted, made config {}", c.num),
        Err(e) => e,
    };
    match (expect, &err) {
        (
            Expect::Rejected(code, text),
            ClientError::Rejected {
                code: got, message, ..
            },
        ) => {
            ensure!(got == code && message.contains(text), "{what}: {err}");
        }
        (Expect::Invalid(field, text), ClientError::InvalidArgument { field: got, reason }) => {
            ensure!(got == field && reason.contains(text), "{what}: {err}");
        }
        _ => bail!("{what}: unexpected error {err:?}"),
    }
    Ok(())
}

async fn history(client: &ControllerClient, latest: u64) -> Result<Vec<Config>> {
    let mut out = Vec::new();
    for n in 0..=latest {
        out.push(client.query(Some(n)).await?);
    }
    Ok(out)
}

fn addrs(gid: u64) -> Vec<String> {
    vec![format!("10.1.{gid}.1:7400"), format!("10.1.{gid}.2:7400")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_typed_errors_and_change_nothing() -> Result<()> {
    let ctl = TestController::start(3, &["--initial-ranges", "8"])?;
    let result = scenario(&ctl).await;
    ctl.logs_on_error(result)
}

async fn scenario(ctl: &TestController) -> Result<()> {
    let leader = ctl.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = ctl
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    let client = ctl.client_via(follower).await?;
    client.join(vec![(1, addrs(1)), (2, addrs(2))]).await?;
    let before = client.query(None).await?;
    let before_history = history(&client, before.num).await?;
    let r1 = before
        .ranges
        .iter()
        .find(|r| r.gid == 1)
        .context("range of group 1")?
        .clone();
    let inside = |r: &shardline_proto::keyspace::KeyRange| {
        let mut k = r.start.clone();
        k.resize(8, 0);
        k[7] = k[7].wrapping_add(1);
        k
    };
    let outside = before
        .ranges
        .iter()
        .find(|r| r.gid == 2)
        .map(inside)
        .context("range of group 2")?;

    use Expect::*;
    let cases: Vec<(&str, Result<Config, ClientError>, Expect)> = vec![
        (
            "join an existing group",
            client.join(vec![(1, vec!["10.9.9.9:1".into()])]).await,
            Rejected(Code::AlreadyExists, "already joined"),
        ),
        (
            "join gid 0",
            client.join(vec![(0, addrs(5))]).await,
            Invalid("gid", "reserved"),
        ),
        (
            "join nothing",
            client.join(vec![]).await,
            Invalid("gid", "names no groups"),
        ),
        (
            "join twice in one request",
            client.join(vec![(5, addrs(5)), (5, addrs(6))]).await,
            Invalid("gid", "more than once"),
        ),
        (
            "join without addresses",
            client.join(vec![(5, vec![])]).await,
            Invalid("addresses", "no member addresses"),
        ),
        (
            "join with a bad address",
            client.join(vec![(5, vec!["no-port".into()])]).await,
            Invalid("addresses", "host:port"),
        ),
        (
            "join with a used address",
            client.join(vec![(5, addrs(1))]).await,
            Rejected(Code::AlreadyExists, "already used by group 1"),
        ),
        (
            "leave an unknown group",
            client.leave(&[9]).await,
            Rejected(Code::NotFound, "group 9"),
        ),
        (
            "leave every group",
            client.leave(&[1, 2]).await,
            Rejected(Code::FailedPrecondition, "every group"),
        ),
        (
            "move an unknown range",
            client.move_range(999, 1).await,
            Rejected(Code::NotFound, "range 999"),
        ),
        (
            "move to an unknown group",
            client.move_range(r1.id, 9).await,
            Rejected(Code::NotFound, "group 9"),
        ),
        (
            "move to its owner",
            client.move_range(r1.id, 1).await,
            Rejected(Code::AlreadyExists, "already owned"),
        ),
        (
            "split an unknown range",
            client.split(999, inside(&r1)).await,
            Rejected(Code::NotFound, "range 999"),
        ),
        (
            "split on the boundary",
            client.split(r1.id, r1.end.clone()).await,
            Invalid("key", "boundary"),
        ),
        (
            "split outside the range",
            client.split(r1.id, outside).await,
            Invalid("key", "outside range"),
        ),
        (
            "split with a short key",
            client.split(r1.id, vec![1, 2]).await,
            Invalid("key", "8"),
        ),
        (
            "query a future config",
            client.query(Some(before.num + 10)).await,
            Rejected(Code::OutOfRange, "does not exist yet"),
        ),
    ];
    for (what, result, expect) in &cases {
        check(what, result, expect)?;
    }
    let unknown_load = client.report_load(9, vec![]).await;
    ensure!(
        matches!(
            &unknown_load,
            Err(ClientError::Rejected {
                code: Code::NotFound,
                ..
            })
        ),
        "load of an unknown group: {unknown_load:?}"
    );

    // Nothing changed, on any member.
    let after = client.query(None).await?;
    ensure!(
        after == before,
        "latest moved from {} to {}",
        before.num,
        after.num
    );
    for id in ctl.running() {
        let member = ctl.member_client(id).await?;
        ensure!(
            history(&member, before.num).await? == before_history,
            "member {id} history changed"
        );
    }

    // A valid load report shows up in the status, from any member.
    let load = pb::RangeLoad {
        range_id: r1.id,
        epoch: r1.epoch,
        ops_per_sec: 42.0,
        bytes: 1000,
        keys: 10,
        sample_keys: vec![],
    };
    client.report_load(1, vec![load]).await?;
    let status = ctl.client_via(follower).await?.status().await?;
    ensure!(
        status.leader_id == Some(leader),
        "status leader {:?}",
        status.leader_id
    );
    ensure!(status.members.len() == 3, "members {:?}", status.members);
    ensure!(
        status.members.iter().filter(|m| m.role == "leader").count() == 1,
        "one leader in {:?}",
        status.members
    );
    ensure!(
        status.latest.as_ref().map(|c| c.num) == Some(before.num),
        "status latest"
    );
    let g1 = status
        .groups
        .iter()
        .find(|g| g.gid == 1)
        .context("group 1 load")?;
    ensure!(
        g1.ops_per_sec == 42.0 && g1.bytes == 1000 && g1.report_age_secs.is_some(),
        "group 1 load {g1:?}"
    );
    ensure!(
        g1.range_count == 4,
        "group 1 owns {} of 8 ranges",
        g1.range_count
    );
    let g2 = status
        .groups
        .iter()
        .find(|g| g.gid == 2)
        .context("group 2 load")?;
    ensure!(
        g2.report_age_secs.is_none(),
        "group 2 never reported: {g2:?}"
    );
    Ok(())
}
