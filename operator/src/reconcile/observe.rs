//! Reads what exists: the cluster's StatefulSets and pods, reduced to the
//! inputs of the pure decisions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::cluster_api::{ClusterApi, GroupReport, Target};
use crate::decide::rollout::PodObs;
use crate::decide::scale::StsObs;
use crate::error::{Error, Result};
use crate::names::{self, Member};

/// One StatefulSet as observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StsState {
    pub obs: StsObs,
    /// `status.updateRevision`: the revision pods should run.
    pub update_revision: Option<String>,
    /// Voters the group was created with: the initial-replicas annotation,
    /// else (a StatefulSet from before replica changes were supported, whose
    /// size never changed) its `spec.replicas`.
    pub initial_replicas: i32,
}

/// Everything observed about one cluster's workloads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub statefulsets: BTreeMap<Member, StsState>,
    pub pods: BTreeMap<Member, Vec<PodObs>>,
}

impl Observed {
    /// Observations of the shard groups' StatefulSets.
    pub fn groups(&self) -> BTreeMap<u64, StsObs> {
        self.statefulsets
            .iter()
            .filter_map(|(m, s)| match m {
                Member::Group(g) => Some((*g, s.obs)),
                Member::Controller => None,
            })
            .collect()
    }

    /// Pods of one member group, by ordinal.
    pub fn pods_of(&self, member: Member) -> &[PodObs] {
        self.pods
            .get(&member)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn member_of_labels(cluster: &str, labels: &BTreeMap<String, String>) -> Option<Member> {
    if labels.get(names::LABEL_INSTANCE).map(String::as_str) != Some(cluster) {
        return None;
    }
    match labels.get(names::LABEL_COMPONENT).map(String::as_str) {
        Some("controller") => Some(Member::Controller),
        Some("shard-group") => labels
            .get(names::LABEL_GROUP)?
            .parse()
            .ok()
            .map(Member::Group),
        _ => None,
    }
}

/// Reduces a StatefulSet.
pub fn sts_state(sts: &StatefulSet) -> StsState {
    let status = sts.status.as_ref();
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let initial_replicas = sts
        .annotations()
        .get(names::ANNOTATION_INITIAL_REPLICAS)
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(replicas);
    StsState {
        obs: StsObs {
            replicas,
            ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        },
        update_revision: status.and_then(|s| s.update_revision.clone()),
        initial_replicas,
    }
}

/// Reduces a pod.
pub fn pod_obs(pod: &Pod) -> Option<PodObs> {
    let ordinal = names::pod_ordinal(&pod.name_any())?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let running = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running");
    Some(PodObs {
        ordinal,
        revision: pod.labels().get("controller-revision-hash").cloned(),
        ready,
        running,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Lists the cluster's StatefulSets and pods.
pub async fn observe(client: &Client, namespace: &str, cluster: &str) -> Result<Observed> {
    let lp = ListParams::default().labels(&names::instance_selector(cluster));
    let mut out = Observed::default();
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    for sts in sts_api
        .list(&lp)
        .await
        .map_err(Error::kube("list statefulsets"))?
    {
        if let Some(m) = member_of_labels(cluster, sts.labels()) {
            out.statefulsets.insert(m, sts_state(&sts));
        }
    }
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for pod in pod_api.list(&lp).await.map_err(Error::kube("list pods"))? {
        if let (Some(m), Some(p)) = (member_of_labels(cluster, pod.labels()), pod_obs(&pod)) {
            out.pods.entry(m).or_default().push(p);
        }
    }
    for pods in out.pods.values_mut() {
        pods.sort_by_key(|p| p.ordinal);
    }
    Ok(out)
}

/// The Admin target of shard group `gid` with `replicas` pods.
pub fn group_target(
    cluster_key: &str,
    cluster: &str,
    namespace: &str,
    gid: u64,
    replicas: i32,
) -> Target {
    Target {
        key: format!("{cluster_key}/g{gid}"),
        endpoints: names::group_endpoints(cluster, namespace, gid, replicas),
    }
}

/// Asks each group in `gids` (with its pod count) for its own report
/// (leader, members, keys stored), concurrently. A group that does not
/// answer is left out.
pub async fn group_reports(
    api: &dyn ClusterApi,
    cluster_key: &str,
    cluster: &str,
    namespace: &str,
    gids: &BTreeMap<u64, i32>,
) -> BTreeMap<u64, GroupReport> {
    let asks = gids.iter().map(|(gid, replicas)| async move {
        let target = group_target(cluster_key, cluster, namespace, *gid, *replicas);
        match api.group_status(&target).await {
            Ok(report) => Some((*gid, report)),
            Err(e) => {
                tracing::debug!(gid, error = %e, "group did not answer Status");
                None
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_members() {
        let l = Member::Group(4).labels("kv");
        assert_eq!(member_of_labels("kv", &l), Some(Member::Group(4)));
        assert_eq!(member_of_labels("other", &l), None);
        assert_eq!(
            member_of_labels("kv", &Member::Controller.labels("kv")),
            Some(Member::Controller)
        );
    }

    #[test]
    fn initial_replicas_from_annotation_or_legacy_size() {
        let sts = |annotations: serde_json::Value| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "kv-g1", "annotations": annotations},
                "spec": {"replicas": 5, "selector": {}, "serviceName": "kv-g1",
                         "template": {}},
            }))
            .unwrap()
        };
        let s = sts_state(&sts(
            serde_json::json!({names::ANNOTATION_INITIAL_REPLICAS: "3"}),
        ));
        assert_eq!((s.obs.replicas, s.initial_replicas), (5, 3));
        let legacy = sts_state(&sts(serde_json::json!({})));
        assert_eq!(legacy.initial_replicas, 5);
    }

    #[test]
    fn pod_reduction() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kv-g1-2", "labels": {"controller-revision-hash": "kv-g1-abc"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let p = pod_obs(&pod).unwrap();
        assert_eq!(
            (p.ordinal, p.ready, p.running, p.terminating),
            (2, true, true, false)
        );
        assert_eq!(p.revision.as_deref(), Some("kv-g1-abc"));
    }
}
