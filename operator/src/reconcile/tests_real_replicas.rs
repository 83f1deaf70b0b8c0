//! Replica changes against real Raft groups on loopback: a shard group of
//! `shard-node` members grows 3 -> 5 and shrinks back, and the controller's
//! group grows 1 -> 3 and shrinks back, driven by the reconciler through the
//! real gRPC client (`Admin.AddMember` / `Admin.RemoveMember` on the real
//! leader); and a rollout of a real shard group moves its leadership
//! (`Admin.TransferLeader`) before restarting the leader's pod. The
//! Kubernetes API is the fake one; in-cluster names are mapped to the
//! loopback members (see [`crate::fixtures::real`]).

use std::sync::Arc;
use std::time::Duration;

use crate::cluster_api::grpc::GrpcClusterApi;
use crate::cluster_api::{ClusterApi, Target};
use crate::decide::conditions::PROGRESSING;
use crate::fixtures::real::{start_group, wait_for_voters, Kind, Mapped, RealMember};
use crate::fixtures::{
    cluster, cond, deletes, edit_spec as edit, event_notes, event_reasons, sts_applies, Call,
    FakeController, Harness,
};
use crate::names::Member;

fn mapped(real_controller: bool, real_groups: &[u64]) -> Mapped {
    Mapped {
        grpc: GrpcClusterApi::new(Duration::from_secs(3))
            .with_membership_timeout(Duration::from_secs(20)),
        fake: FakeController::new(),
        dns: Default::default(),
        real_controller,
        real_groups: real_groups.iter().copied().collect(),
    }
}

/// `spec.replicas` of the one apply of StatefulSet `name` in `calls`.
fn sts_applied(calls: &[Call], name: &str) -> i64 {
    let applies = sts_applies(calls, name);
    assert_eq!(applies.len(), 1, "{name} applied once per reconcile");
    applies[0]
}

/// Voter ids of the group `member` belongs to, as its leader says.
async fn voter_ids(member: &RealMember, voters: usize) -> Vec<u64> {
    wait_for_voters(&member.endpoint(), voters)
        .await
        .into_iter()
        .filter(|m| m.is_voter())
        .map(|m| m.id)
        .collect()
}

async fn shutdown(members: Vec<RealMember>) {
    for m in members {
        m.shutdown().await;
    }
}

#[tokio::test]
async fn shard_group_grows_3_to_5_and_back_through_its_real_raft_membership() {
    let nodes = start_group(Kind::Node { gid: 1 }, 5, 3).await;
    assert_eq!(voter_ids(&nodes[0], 3).await, [1, 2, 3]);
    let api = mapped(false, &[1]).with_members("kv", Member::Group(1), &nodes);
    let h = Harness::with_api(cluster(1, true), move |fake| {
        Arc::new(Mapped { fake, ..api })
    });
    h.bring_up().await;

    edit(&h, |c| c.spec.groups.replicas = 5);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-g1"), 5);
    assert_eq!(
        cond(&h.api.cluster(), PROGRESSING),
        ("True", "ReplicasChanging")
    );
    // The new pods run; nodes 4 and 5 (already started, waiting) are added
    // one per reconcile, each once the previous one is ready.
    h.api.set_running("kv-g1");
    let calls = h.reconcile().await;
    assert!(
        event_reasons(&calls).contains(&"MemberAdded".to_string()),
        "{:#?}",
        event_notes(&calls)
    );
    assert_eq!(voter_ids(&nodes[0], 4).await, [1, 2, 3, 4]);
    h.api.set_pod_ready("kv-g1-3", true);
    h.reconcile().await;
    assert_eq!(voter_ids(&nodes[0], 5).await, [1, 2, 3, 4, 5]);
    // The new members replicate: they report the group's leader themselves.
    wait_for_voters(&nodes[4].endpoint(), 5).await;
    h.api.set_ready("kv-g1");
    let calls = h.reconcile().await;
    assert!(deletes(&calls).is_empty());
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");
    let st = h.api.cluster().status.unwrap();
    assert_eq!(st.groups[0].voters, Some(5));

    // Back to 3: node 5 leaves the membership before any pod goes.
    edit(&h, |c| c.spec.groups.replicas = 3);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-g1"), 5, "members first");
    assert!(event_reasons(&calls).contains(&"MemberRemoved".to_string()));
    assert_eq!(voter_ids(&nodes[0], 4).await, [1, 2, 3, 4]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-g1"), 4, "node 5 gone, its pod goes");
    assert_eq!(voter_ids(&nodes[0], 3).await, [1, 2, 3]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-g1"), 3);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-g1"), 3);
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");
    assert_eq!(h.api.cluster().status.unwrap().groups[0].voters, Some(3));
    shutdown(nodes).await;
}

#[tokio::test]
async fn controller_grows_1_to_3_and_back_through_its_real_raft_membership() {
    let ctrl = start_group(Kind::Controller, 3, 1).await;
    assert_eq!(voter_ids(&ctrl[0], 1).await, [1]);
    let api = mapped(true, &[]).with_members("kv", Member::Controller, &ctrl);
    let mut c = cluster(1, true);
    c.spec.controller.replicas = 1;
    let h = Harness::with_api(c, move |fake| Arc::new(Mapped { fake, ..api }));
    h.bring_up().await;
    let joined = h.api.cluster().status.unwrap().config_num.unwrap();

    edit(&h, |c| c.spec.controller.replicas = 3);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-ctrl"), 3);
    h.api.set_running("kv-ctrl");
    h.reconcile().await;
    assert_eq!(voter_ids(&ctrl[0], 2).await, [1, 2]);
    h.api.set_pod_ready("kv-ctrl-1", true);
    h.reconcile().await;
    assert_eq!(voter_ids(&ctrl[0], 3).await, [1, 2, 3]);
    h.api.set_ready("kv-ctrl");
    h.reconcile().await;
    let st = h.api.cluster().status.unwrap();
    assert_eq!(st.controller.as_ref().unwrap().voters, Some(3));
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");
    // The new member holds the shard map: it answers with the same config.
    let direct = GrpcClusterApi::new(Duration::from_secs(3));
    let v = direct
        .cluster_status(
            &Target {
                key: "direct".into(),
                endpoints: vec![ctrl[2].endpoint()],
            },
            5000.0,
        )
        .await
        .unwrap();
    assert_eq!(v.config_num as i64, joined);
    assert!(v.has_group(1));

    edit(&h, |c| c.spec.controller.replicas = 1);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-ctrl"), 3, "members first");
    assert_eq!(voter_ids(&ctrl[0], 2).await, [1, 2]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-ctrl"), 2);
    assert_eq!(voter_ids(&ctrl[0], 1).await, [1]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applied(&calls, "kv-ctrl"), 1);
    h.reconcile().await;
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");
    shutdown(ctrl).await;
}

#[tokio::test]
async fn a_rollout_moves_the_real_leadership_before_restarting_the_leader() {
    let nodes = start_group(Kind::Node { gid: 1 }, 3, 3).await;
    let leader_of = |members: &[crate::cluster_api::RaftMember]| {
        members
            .iter()
            .find(|m| m.role == "leader")
            .map(|m| m.id)
            .expect("a leader")
    };
    let leader = leader_of(&wait_for_voters(&nodes[0].endpoint(), 3).await);
    let api = mapped(false, &[1]).with_members("kv", Member::Group(1), &nodes);
    let h = Harness::with_api(cluster(1, true), move |fake| {
        Arc::new(Mapped { fake, ..api })
    });
    h.bring_up().await;

    h.api.set_update_revision("kv-g1", "rev2");
    let mut order = Vec::new();
    let mut events = Vec::new();
    for _ in 0..5 {
        let calls = h.reconcile().await;
        order.extend(deletes(&calls));
        if event_reasons(&calls).contains(&"LeaderMoved".to_string()) {
            order.push("LeaderMoved".to_string());
        }
        events.extend(event_notes(&calls));
        h.api.set_ready("kv-g1");
    }
    // Leader last, and its leadership moved (for real) just before its pod
    // went, to the lowest updated ordinal.
    let pod = |id: u64| format!("/api/v1/namespaces/ns/pods/kv-g1-{}", id - 1);
    let expected: Vec<String> = (1..=3)
        .rev()
        .filter(|id| *id != leader)
        .map(pod)
        .chain(["LeaderMoved".to_string(), pod(leader)])
        .collect();
    assert_eq!(order, expected, "events: {events:#?}");
    let successor = if leader == 1 { 2 } else { 1 };
    assert_eq!(
        leader_of(&wait_for_voters(&nodes[0].endpoint(), 3).await),
        successor
    );
    shutdown(nodes).await;
}
