//! Every malformed request gets its typed error, and the node keeps serving.
//! Requests go over raw gRPC so the server's checks (not the client
//! library's) are what is tested.

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use shardline_e2e::{status_kind, TestGroup};
use shardline_proto::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use shardline_proto::pb::{self, error_detail::Kind, kv_client::KvClient as RawKv};
use tonic::Code;

fn header(seq: u64) -> Option<pb::RequestHeader> {
    Some(pb::RequestHeader {
        client_id: vec![7; 16],
        seq,
        ack_below: 0,
    })
}

fn expect_invalid<T: std::fmt::Debug>(
    res: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
) -> Result<()> {
    let status = match res {
        Ok(r) => bail!("expected InvalidArgument({field}), got {r:?}"),
        Err(s) => s,
    };
    ensure!(
        status.code() == Code::InvalidArgument,
        "code {:?} for {field}",
        status.code()
    );
    match status_kind(&status)? {
        Kind::InvalidArgument(a) => {
            ensure!(a.field == field, "field {:?}, expected {field:?}", a.field)
        }
        other => bail!("detail {other:?} for {field}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_node_keeps_serving() -> Result<()> {
    let group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let mut kv = RawKv::connect(format!("http://{}", group.addr(leader)))
        .await?
        .max_encoding_message_size(4 * MAX_VALUE_BYTES)
        .max_decoding_message_size(4 * MAX_VALUE_BYTES);

    let put = |key: Vec<u8>, value: Vec<u8>, seq| pb::PutRequest {
        header: header(seq),
        key,
        value,
    };
    expect_invalid(kv.put(put(vec![], b"v".to_vec(), 1)).await, "key")?;
    expect_invalid(
        kv.put(put(vec![b'k'; MAX_KEY_BYTES + 1], b"v".to_vec(), 2))
            .await,
        "key",
    )?;
    expect_invalid(
        kv.put(put(b"k".to_vec(), vec![0; MAX_VALUE_BYTES + 1], 3))
            .await,
        "value",
    )?;
    expect_invalid(
        kv.put(pb::PutRequest {
            header: None,
            key: b"k".to_vec(),
            value: vec![],
        })
        .await,
        "header",
    )?;
    expect_invalid(
        kv.get(pb::GetRequest {
            key: vec![],
            options: None,
        })
        .await,
        "key",
    )?;
    expect_invalid(
        kv.scan(pb::ScanRequest {
            start: b"z".to_vec(),
            end: b"a".to_vec(),
            limit: 10,
            options: None,
        })
        .await,
        "scan",
    )?;
    expect_invalid(
        kv.batch(pb::BatchRequest {
            header: header(4),
            ops: vec![],
        })
        .await,
        "ops",
    )?;
    expect_invalid(
        kv.compare_and_swap(pb::CompareAndSwapRequest {
            header: header(5),
            key: vec![],
            expected: None,
            new_value: None,
        })
        .await,
        "key",
    )?;

    // The limits themselves are accepted (through the retrying client, so a
    // leader change under load does not matter here).
    let client = group.client().await?;
    client
        .put(vec![b'k'; MAX_KEY_BYTES], vec![1; MAX_VALUE_BYTES])
        .await?;
    client.put("alive", "yes").await?;
    let got = kv
        .get(pb::GetRequest {
            key: b"alive".to_vec(),
            options: Some(pb::ReadOptions { stale: true }),
        })
        .await;
    ensure!(
        got.is_ok(),
        "the member that got the bad requests still serves: {got:?}"
    );

    // A follower answers NotLeader with the leader's address. Leadership can
    // move on a loaded machine, so compare with the leader of that moment.
    let hint_ok = shardline_e2e::wait_until(
        "a NotLeader hint naming the current leader",
        Duration::from_secs(20),
        || {
            let g = &group;
            async move {
                let leader = g.wait_for_leader(Duration::from_secs(5)).await.ok()?;
                let follower = g.members.iter().find(|m| m.id != leader)?;
                let mut fkv = RawKv::connect(format!("http://{}", follower.addr))
                    .await
                    .ok()?;
                let status = fkv.put(put(b"x".to_vec(), b"y".to_vec(), 8)).await.err()?;
                match status_kind(&status).ok()? {
                    Kind::NotLeader(nl) => {
                        (nl.leader_addr == g.addr(leader)).then_some((follower.addr.clone(), fkv))
                    }
                    _ => None,
                }
            }
        },
    )
    .await?;
    let (_, fkv) = hint_ok;
    // ...but serves a stale read from its own state.
    let stale = pb::GetRequest {
        key: b"alive".to_vec(),
        options: Some(pb::ReadOptions { stale: true }),
    };
    let got = shardline_e2e::wait_until(
        "follower applied the write",
        Duration::from_secs(10),
        || {
            let (mut fkv, stale) = (fkv.clone(), stale.clone());
            async move {
                fkv.get(stale)
                    .await
                    .ok()
                    .map(|r| r.into_inner())
                    .filter(|r| r.found)
            }
        },
    )
    .await?;
    ensure!(got.value == b"yes");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_quorum_answers_unavailable_not_silence() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let survivor = group
        .members
        .iter()
        .map(|m| m.id)
        .find(|id| *id != leader)
        .expect("follower");
    for id in [1, 2, 3] {
        if id != survivor {
            group.kill(id);
        }
    }
    let mut kv = RawKv::connect(format!("http://{}", group.addr(survivor))).await?;
    // Once the survivor notices the leader is gone it answers NoLeader
    // (Unavailable); before that, NotLeader pointing at the dead leader.
    let status = shardline_e2e::wait_until(
        "NoLeader from the survivor",
        Duration::from_secs(20),
        || {
            let mut kv = kv.clone();
            async move {
                let mut req = tonic::Request::new(pb::PutRequest {
                    header: header(1),
                    key: b"k".to_vec(),
                    value: vec![],
                });
                req.set_timeout(Duration::from_secs(3));
                match kv.put(req).await {
                    Err(s) if s.code() == Code::Unavailable => Some(s),
                    _ => None,
                }
            }
        },
    )
    .await?;
    ensure!(status.code() == Code::Unavailable);
    // The member is still alive and answers reads of its own state.
    let got = kv
        .get(pb::GetRequest {
            key: b"k".to_vec(),
            options: Some(pb::ReadOptions { stale: true }),
        })
        .await?;
    ensure!(!got.into_inner().found);
    Ok(())
}
