//! Replica changes of running Raft groups, against the fake API server and
//! the in-process stand-in for the controller and the groups' Admin
//! service: growth raises the StatefulSet and adds members once their pods
//! run; shrinking removes members before the StatefulSet shrinks; a change
//! that cannot be made leaves everything running and says why.

use crate::crd::{Phase, RetentionPolicy};
use crate::decide::conditions::{DEGRADED, PROGRESSING, READY};
use crate::fixtures::{
    cluster, cond, deletes, edit_spec as edit, event_reasons, sts_applies, Call, Harness,
};

/// The pod template of the last apply of StatefulSet `name`.
fn template(calls: &[Call], name: &str) -> serde_json::Value {
    calls
        .iter()
        .rev()
        .find(|c| c.is_apply() && c.path.ends_with(&format!("/statefulsets/{name}")))
        .map(|c| c.body.as_ref().unwrap()["spec"]["template"].clone())
        .expect("StatefulSet applied")
}

/// Membership calls the stand-in saw since `from`.
fn membership_calls(h: &Harness, from: usize) -> Vec<String> {
    h.controller.calls()[from..]
        .iter()
        .filter(|c| c.starts_with("AddMember") || c.starts_with("RemoveMember"))
        .cloned()
        .collect()
}

fn status_of(h: &Harness) -> crate::crd::ShardedClusterStatus {
    h.api.cluster().status.expect("status")
}

#[tokio::test]
async fn group_growth_raises_the_statefulset_then_adds_members_once_their_pods_run() {
    let h = Harness::new(cluster(1, true));
    h.bring_up().await;
    let before = {
        // The template as applied at steady state.
        let calls = h.reconcile().await;
        template(&calls, "kv-g1")
    };
    edit(&h, |c| c.spec.groups.replicas = 5);

    let calls = h.reconcile().await;
    assert_eq!(sts_applies(&calls, "kv-g1"), [5]);
    assert_eq!(
        template(&calls, "kv-g1"),
        before,
        "the pod template does not change, so no pod restarts"
    );
    assert!(deletes(&calls).is_empty());
    assert!(event_reasons(&calls).contains(&"ScaledUp".to_string()));
    assert!(
        membership_calls(&h, 0).is_empty(),
        "new pods not running yet"
    );
    let c = h.api.cluster();
    assert_eq!(cond(&c, PROGRESSING), ("True", "ReplicasChanging"));
    assert_eq!(cond(&c, READY).0, "True", "the group keeps serving");
    assert_eq!(cond(&c, DEGRADED).0, "False");
    assert_eq!(status_of(&h).groups[0].voters, Some(3));

    // The new pods run (not ready: they wait to be added): lowest id first.
    h.api.set_running("kv-g1");
    let mark = h.controller.calls().len();
    let calls = h.reconcile().await;
    assert_eq!(
        membership_calls(&h, mark),
        ["AddMember 1/4 kv-g1-3.kv-g1.ns.svc:7401"]
    );
    assert!(event_reasons(&calls).contains(&"MemberAdded".to_string()));
    assert!(deletes(&calls).is_empty());
    let c = h.api.cluster();
    let progressing = c
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|x| x.type_ == PROGRESSING)
        .unwrap()
        .message
        .clone();
    assert!(
        progressing.contains("kv-g1: 4 of 5 voters"),
        "{progressing}"
    );

    // Node 4 caught up and is ready: node 5 next.
    h.api.set_pod_ready("kv-g1-3", true);
    let mark = h.controller.calls().len();
    h.reconcile().await;
    assert_eq!(
        membership_calls(&h, mark),
        ["AddMember 1/5 kv-g1-4.kv-g1.ns.svc:7401"]
    );
    assert_eq!(h.controller.members(1), [1, 2, 3, 4, 5]);

    h.api.set_ready("kv-g1");
    let mark = h.controller.calls().len();
    let calls = h.reconcile().await;
    assert!(membership_calls(&h, mark).is_empty());
    assert!(
        deletes(&calls).is_empty(),
        "no pod was restarted on the way"
    );
    let c = h.api.cluster();
    assert_eq!(cond(&c, PROGRESSING).0, "False");
    assert_eq!(c.status.as_ref().unwrap().phase, Some(Phase::Running));
    let g = &status_of(&h).groups[0];
    assert_eq!((g.replicas, g.voters, g.ready_replicas), (5, Some(5), 5));
}

#[tokio::test]
async fn group_shrink_removes_members_before_the_statefulset_shrinks() {
    let mut c = cluster(1, true);
    c.spec.groups.replicas = 5;
    c.spec.pvc_retention.on_scale_down = RetentionPolicy::Delete;
    let h = Harness::new(c);
    h.controller
        .set_members(1, &[(1, true), (2, true), (3, true), (4, true), (5, true)]);
    h.bring_up().await;
    assert_eq!(status_of(&h).groups[0].voters, Some(5));
    edit(&h, |c| c.spec.groups.replicas = 3);

    // Each reconcile: the StatefulSet never goes below the highest member
    // it had when the reconcile started; one member leaves per reconcile.
    let mut sizes = Vec::new();
    let mut removed = Vec::new();
    let mut pvcs = Vec::new();
    for _ in 0..4 {
        let members = h.controller.members(1);
        let mark = h.controller.calls().len();
        let calls = h.reconcile().await;
        let applied = sts_applies(&calls, "kv-g1");
        assert_eq!(applied.len(), 1);
        let highest = *members.last().unwrap() as i64;
        assert!(
            applied[0] >= highest,
            "StatefulSet patched to {} while node {highest} was a member",
            applied[0]
        );
        sizes.push(applied[0]);
        removed.extend(membership_calls(&h, mark));
        pvcs.extend(
            deletes(&calls)
                .into_iter()
                .filter(|d| d.contains("persistentvolumeclaims")),
        );
        assert!(
            !deletes(&calls).iter().any(|d| d.contains("/pods/")),
            "no pod restarted"
        );
    }
    assert_eq!(sizes, [5, 4, 3, 3]);
    assert_eq!(removed, ["RemoveMember 1/5", "RemoveMember 1/4"]);
    assert_eq!(
        pvcs,
        [
            "/api/v1/namespaces/ns/persistentvolumeclaims/data-kv-g1-4",
            "/api/v1/namespaces/ns/persistentvolumeclaims/data-kv-g1-3",
        ]
    );
    assert_eq!(h.controller.members(1), [1, 2, 3]);
    let c = h.api.cluster();
    assert_eq!(cond(&c, PROGRESSING).0, "False");
    assert_eq!(cond(&c, READY).0, "True");
    assert_eq!(status_of(&h).groups[0].voters, Some(3));
}

#[tokio::test]
async fn pvcs_of_removed_members_are_kept_by_default() {
    let mut c = cluster(1, true);
    c.spec.groups.replicas = 3;
    let h = Harness::new(c);
    h.bring_up().await;
    edit(&h, |c| c.spec.groups.replicas = 1);
    let mut all = Vec::new();
    for _ in 0..3 {
        all.extend(h.reconcile().await);
    }
    assert_eq!(h.controller.members(1), [1]);
    assert_eq!(h.api.sts_replicas("kv-g1"), 1);
    assert!(deletes(&all).is_empty(), "{:?}", deletes(&all));
    assert!(event_reasons(&all).contains(&"ScaledDown".to_string()));
}

#[tokio::test]
async fn controller_grows_and_shrinks_through_its_own_raft_group() {
    let mut c = cluster(1, true);
    c.spec.controller.replicas = 1;
    let h = Harness::new(c);
    h.controller.set_members(0, &[(1, true)]);
    h.bring_up().await;
    let group_template = template(&h.reconcile().await, "kv-g1");
    edit(&h, |c| c.spec.controller.replicas = 3);
    h.reconcile().await;
    assert_eq!(h.api.sts_replicas("kv-ctrl"), 3);
    h.api.set_running("kv-ctrl");
    let mark = h.controller.calls().len();
    let calls = h.reconcile().await;
    assert_eq!(
        membership_calls(&h, mark),
        ["AddMember 0/2 kv-ctrl-1.kv-ctrl.ns.svc:7400"]
    );
    assert_eq!(
        template(&calls, "kv-g1"),
        group_template,
        "shard groups do not restart when the controller grows"
    );
    h.api.set_pod_ready("kv-ctrl-1", true);
    h.reconcile().await;
    assert_eq!(h.controller.members(0), [1, 2, 3]);
    h.api.set_ready("kv-ctrl");
    h.reconcile().await;
    let st = status_of(&h);
    assert_eq!(st.controller.as_ref().unwrap().voters, Some(3));
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");

    edit(&h, |c| c.spec.controller.replicas = 1);
    let mark = h.controller.calls().len();
    let calls = h.reconcile().await;
    assert_eq!(sts_applies(&calls, "kv-ctrl"), [3]);
    assert_eq!(membership_calls(&h, mark), ["RemoveMember 0/3"]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applies(&calls, "kv-ctrl"), [2]);
    let calls = h.reconcile().await;
    assert_eq!(sts_applies(&calls, "kv-ctrl"), [1]);
    assert_eq!(h.controller.members(0), [1]);
    assert!(!deletes(&calls).iter().any(|d| d.contains("/pods/")));
}

#[tokio::test]
async fn a_change_that_cannot_be_made_leaves_everything_running_and_says_why() {
    let h = Harness::new(cluster(1, true));
    h.bring_up().await;
    edit(&h, |c| c.spec.groups.replicas = 1);

    // No member knows a leader: nothing is removed, the StatefulSet stays.
    h.controller.set_group_leader(1, 0);
    let calls = h.reconcile().await;
    assert_eq!(sts_applies(&calls, "kv-g1"), [3]);
    assert!(membership_calls(&h, 0).is_empty());
    assert!(deletes(&calls).is_empty());
    let c = h.api.cluster();
    assert_eq!(cond(&c, PROGRESSING), ("True", "ReplicaChangeBlocked"));
    let msg = c.status.as_ref().unwrap().conditions[1].message.clone();
    assert!(msg.contains("kv-g1: MembershipUnknown"), "{msg}");

    // Two of three voters not ready: removing one would cost the quorum.
    h.controller.set_group_leader(1, 1);
    h.api.set_pod_ready("kv-g1-1", false);
    h.api.set_pod_ready("kv-g1-2", false);
    let calls = h.reconcile().await;
    assert!(membership_calls(&h, 0).is_empty());
    assert_eq!(sts_applies(&calls, "kv-g1"), [3]);
    let c = h.api.cluster();
    let msg = c.status.as_ref().unwrap().conditions[1].message.clone();
    assert!(msg.contains("QuorumAtRisk"), "{msg}");

    // The leader refuses: a Warning Event, the condition says so, retried.
    h.api.set_ready("kv-g1");
    h.controller.refuse_changes(1, true);
    let calls = h.reconcile().await;
    assert!(event_reasons(&calls).contains(&"MemberRemoveFailed".to_string()));
    assert_eq!(sts_applies(&calls, "kv-g1"), [3]);
    assert!(deletes(&calls).is_empty());
    let c = h.api.cluster();
    assert_eq!(cond(&c, PROGRESSING), ("True", "ReplicaChangeBlocked"));
    let msg = c.status.as_ref().unwrap().conditions[1].message.clone();
    assert!(msg.contains("removing node 3 failed"), "{msg}");
    assert_eq!(cond(&c, READY).0, "True", "still serving");

    h.controller.refuse_changes(1, false);
    for _ in 0..3 {
        h.reconcile().await;
    }
    assert_eq!(h.controller.members(1), [1]);
    assert_eq!(h.api.sts_replicas("kv-g1"), 1);
    assert_eq!(cond(&h.api.cluster(), PROGRESSING).0, "False");
}
