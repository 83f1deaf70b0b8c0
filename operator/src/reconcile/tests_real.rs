//! The reconciler and the gRPC client against real servers on loopback: a
//! `shard-controller` member (the controller crate's `node::run`, one voter)
//! and a `shard-node` member (`shard_node::node::run`) for the Admin
//! `Status` call. In the reconcile scenario the Kubernetes API is the fake
//! one and so are the shard groups' Status answers (their key counts are
//! set by the test); the controller's shard map is the real thing.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use shardline_proto::pb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::cluster_api::grpc::GrpcClusterApi;
use crate::cluster_api::{ClusterApi, ClusterView, Target};
use crate::crd::GroupState;
use crate::fixtures::real::{start_group, Kind, Mapped, RealMember};
use crate::fixtures::{cluster, deletes, Harness};
use crate::names::Member;

/// A one-member controller group running in this process.
struct RealController {
    endpoint: String,
    member: RealMember,
}

impl RealController {
    async fn start() -> Self {
        let member = start_group(Kind::Controller, 1, 1).await.remove(0);
        Self {
            endpoint: member.endpoint(),
            member,
        }
    }

    async fn shutdown(self) {
        self.member.shutdown().await;
    }
}

async fn wait_for_leader(api: &GrpcClusterApi, endpoint: &str) -> ClusterView {
    let target = Target {
        key: "probe".into(),
        endpoints: vec![endpoint.into()],
    };
    for _ in 0..100 {
        if let Ok(v) = api.cluster_status(&target, 5000.0).await {
            if v.leader_id.is_some() {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("controller elected no leader");
}

#[tokio::test]
async fn grpc_client_joins_and_leaves_on_a_real_controller() {
    let ctl = RealController::start().await;
    let api = GrpcClusterApi::new(Duration::from_secs(3));
    let v = wait_for_leader(&api, &ctl.endpoint).await;
    assert_eq!((v.leader_id, v.config_num, v.range_count), (Some(1), 0, 0));
    let target = Target {
        key: "ns/kv".into(),
        endpoints: vec![ctl.endpoint.clone()],
    };
    let members = |gid: u64| pb::GroupMembers {
        gid,
        addresses: vec![format!("g{gid}-0:7401")],
    };
    let num = api
        .join(&target, vec![members(1), members(2)])
        .await
        .unwrap();
    let v = api.cluster_status(&target, 5000.0).await.unwrap();
    assert_eq!(v.config_num, num);
    assert_eq!(v.groups.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((v.range_count, v.ranges_of(1), v.ranges_of(2)), (8, 4, 4));
    api.leave(&target, vec![2]).await.unwrap();
    let v = api.cluster_status(&target, 5000.0).await.unwrap();
    assert!(!v.has_group(2));
    // The real controller reassigns a leaving group's ranges in the config at
    // once; the operator therefore also waits for the group's own key count.
    assert_eq!((v.ranges_of(1), v.ranges_of(2)), (8, 0));
    assert!(
        api.leave(&target, vec![7]).await.is_err(),
        "unknown group is refused"
    );
    ctl.shutdown().await;
}

#[tokio::test]
async fn reconciler_drives_a_real_controller_through_create_scale_down_and_up() {
    let ctl = RealController::start().await;
    wait_for_leader(&GrpcClusterApi::new(Duration::from_secs(3)), &ctl.endpoint).await;
    // One controller voter, as the real group has.
    let mut c = cluster(2, true);
    c.spec.controller.replicas = 1;
    let mapped = Mapped {
        grpc: GrpcClusterApi::new(Duration::from_secs(3)),
        fake: crate::fixtures::FakeController::new(),
        dns: Default::default(),
        real_controller: true,
        real_groups: Default::default(),
    }
    .with_members("kv", Member::Controller, std::slice::from_ref(&ctl.member));
    let h = Harness::with_api(c, move |groups| {
        Arc::new(Mapped {
            fake: groups,
            ..mapped
        })
    });
    h.bring_up().await;
    let st = h.api.cluster().status.unwrap();
    assert_eq!((st.ready_groups, st.range_count), (2, Some(8)));
    assert!(st
        .groups
        .iter()
        .all(|g| g.state == GroupState::Serving && g.range_count == 4));
    let joined_at = st.config_num.unwrap();
    assert!(st.hot_ranges.is_empty(), "no load reported yet");

    // Group 1's leader reports load (as a shard node's reporter does) for
    // its 4 ranges: the first above the spec's threshold, the second hotter
    // still, the third below it, the fourth hot but at an old epoch.
    let owned = report_load(&ctl.endpoint, 1, |i, epoch| match i {
        0 => (9000.0, epoch),
        1 => (12000.0, epoch),
        2 => (10.0, epoch),
        _ => (50000.0, epoch + 1),
    })
    .await;
    assert_eq!(owned.len(), 4);
    h.reconcile().await;
    let st = h.api.cluster().status.unwrap();
    let threshold = f64::from(h.api.cluster().spec.rebalancing.hot_threshold_ops_per_sec);
    assert!(threshold < 9000.0 && threshold > 10.0, "{threshold}");
    assert_eq!(
        st.hot_ranges
            .iter()
            .map(|r| (r.range_id, r.ops_per_sec))
            .collect::<Vec<_>>(),
        [(owned[1].id as i64, 12000.0), (owned[0].id as i64, 9000.0)]
    );
    let first = &owned[1];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(st.hot_ranges[0].gid, 1);
    assert_eq!(
        (&st.hot_ranges[0].start, &st.hot_ranges[0].end),
        (&hex(&first.start), &hex(&first.end))
    );

    // Scale down: Leave on the real controller; the group still stores keys.
    h.controller.set_group_keys(2, 100);
    h.api.edit(|c| c.spec.groups.count = 1);
    h.reconcile().await;
    let calls = h.reconcile().await;
    assert!(deletes(&calls).is_empty(), "group 2 still holds data");
    let st = h.api.cluster().status.unwrap();
    assert!(st.config_num.unwrap() > joined_at);
    let g2 = st.groups.iter().find(|g| g.gid == 2).unwrap();
    assert_eq!((g2.state, g2.range_count), (GroupState::Draining, 0));
    // Its data has been handed off: removed.
    h.controller.set_group_keys(2, 0);
    let calls = h.reconcile().await;
    assert!(deletes(&calls).contains(&"/apis/apps/v1/namespaces/ns/statefulsets/kv-g2".to_string()));

    // Scale up again: the same gid rejoins once its new pods are ready.
    h.api.edit(|c| c.spec.groups.count = 2);
    h.reconcile().await;
    h.api.set_ready("kv-g2");
    h.reconcile().await;
    h.reconcile().await;
    let st = h.api.cluster().status.unwrap();
    assert_eq!(st.ready_groups, 2);
    assert!(st
        .groups
        .iter()
        .all(|g| g.state == GroupState::Serving && g.range_count == 4));
    ctl.shutdown().await;
}

/// Sends group `gid`'s load report for every range it owns in the latest
/// config: `load(i, epoch)` gives the i-th owned range's (ops/s, reported
/// epoch). Returns the owned ranges, in config order.
async fn report_load(
    endpoint: &str,
    gid: u64,
    load: impl Fn(usize, u64) -> (f64, u64),
) -> Vec<pb::Range> {
    let mut client = pb::controller_client::ControllerClient::connect(endpoint.to_string())
        .await
        .unwrap();
    let latest = client
        .query(pb::QueryRequest { num: None })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let owned: Vec<pb::Range> = latest.ranges.into_iter().filter(|r| r.gid == gid).collect();
    let ranges = owned
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (ops_per_sec, epoch) = load(i, r.epoch);
            pb::RangeLoad {
                range_id: r.id,
                epoch,
                ops_per_sec,
                ..Default::default()
            }
        })
        .collect();
    client
        .report_load(pb::ReportLoadRequest { gid, ranges })
        .await
        .unwrap();
    owned
}

#[tokio::test]
async fn group_status_reads_a_real_shard_node() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let args = shard_node::config::NodeArgs::try_parse_from([
        "shard-node".to_string(),
        "--node-id=1".into(),
        "--group-id=3".into(),
        format!("--peers=1={addr}"),
        format!("--listen={addr}"),
        format!("--http-listen={}", http.local_addr().unwrap()),
        format!("--data-dir={}", dir.path().display()),
    ])
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let node = tokio::spawn(shard_node::node::run(args, grpc, http, async {
        let _ = stopped.await;
    }));
    let api = GrpcClusterApi::new(Duration::from_secs(3));
    let target = Target {
        key: "ns/kv/g3".into(),
        endpoints: vec![format!("http://{addr}")],
    };
    let mut report = None;
    for _ in 0..100 {
        match api.group_status(&target).await {
            Ok(r) if r.leader.is_some() => {
                report = Some(r);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let report = report.expect("the node elected itself");
    let leader = report.leader.unwrap();
    assert_eq!(leader.id, 1);
    assert_eq!(leader.address, addr.to_string());
    assert_eq!(report.key_count, 0);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), node).await;
}
