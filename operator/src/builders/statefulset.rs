//! StatefulSets: one for the controller group, one per shard group.
//!
//! Pods start in parallel (a Raft group needs a quorum before any member is
//! ready, so ordered start would deadlock) and update `OnDelete`: the
//! operator decides which pod restarts next (see [`crate::decide::rollout`]).
//! PVCs are retained by the StatefulSet controller; the operator deletes them
//! itself according to `spec.pvcRetention`.
//!
//! `spec.replicas` is what the membership plan decided (see
//! [`crate::decide::membership`]), and the annotation
//! [`names::ANNOTATION_INITIAL_REPLICAS`] records the voters the group was
//! created with (its pods' `--peers`), which never changes afterwards.

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

use super::pod::{pod_template, DATA_VOLUME};
use super::BuildCtx;
use crate::names::{self, Member};

/// The StatefulSet of one member group.
pub fn statefulset(cx: &BuildCtx, member: Member) -> StatefulSet {
    let name = member.object_name(&cx.name);
    let storage = match member {
        Member::Controller => &cx.spec.controller.storage,
        Member::Group(_) => &cx.spec.groups.storage,
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(member.labels(&cx.name)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), storage.size.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut metadata = cx.meta(name.clone(), member.labels(&cx.name));
    metadata.annotations = Some(BTreeMap::from([(
        names::ANNOTATION_INITIAL_REPLICAS.into(),
        cx.initial_replicas(member).to_string(),
    )]));
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(cx.sts_replicas(member)),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(member.selector_labels(&cx.name)),
                ..Default::default()
            },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..Default::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: pod_template(cx, member),
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::ctx;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn group_statefulset_shape() {
        let cx = ctx(2, 3);
        let s = statefulset(&cx, Member::Group(2));
        assert_eq!(s.metadata.name.as_deref(), Some("kv-g2"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.controller, owner.uid.as_str()),
            (Some(true), "uid-1")
        );
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("kv-g2"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(
            spec.update_strategy.unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        let sel = spec.selector.match_labels.unwrap();
        let tpl_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert!(
            sel.iter().all(|(k, v)| tpl_labels.get(k) == Some(v)),
            "selector matches template"
        );
        let vct = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(vct.metadata.name.as_deref(), Some("data"));
        let req = vct
            .spec
            .clone()
            .unwrap()
            .resources
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(req["storage"], Quantity("10Gi".into()));
        let ret = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(ret.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(
            s.metadata.annotations.unwrap()[names::ANNOTATION_INITIAL_REPLICAS],
            "3"
        );
    }

    #[test]
    fn size_follows_the_plan_and_initial_members_stay() {
        let mut cx = ctx(2, 5);
        cx.initial_replicas.insert(Member::Group(1), 3);
        cx.sts_replicas.insert(Member::Group(1), 4);
        let s = statefulset(&cx, Member::Group(1));
        assert_eq!(s.spec.unwrap().replicas, Some(4));
        assert_eq!(
            s.metadata.annotations.unwrap()[names::ANNOTATION_INITIAL_REPLICAS],
            "3"
        );
        let fresh = statefulset(&cx, Member::Group(2));
        assert_eq!(fresh.spec.unwrap().replicas, Some(5));
    }

    #[test]
    fn controller_statefulset_uses_controller_settings() {
        let mut cx = ctx(2, 3);
        cx.spec.controller.replicas = 5;
        cx.spec.controller.storage.storage_class_name = Some("fast".into());
        let s = statefulset(&cx, Member::Controller);
        assert_eq!(s.metadata.name.as_deref(), Some("kv-ctrl"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(5));
        let vct = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(
            vct.spec.as_ref().unwrap().storage_class_name.as_deref(),
            Some("fast")
        );
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(args[1], "shard-controller");
    }
}
