//! Which changes of a `ShardedCluster` start a reconcile: everything but its
//! status. Every pass patches the status (stored keys and ops/s move with
//! the traffic), so a trigger on any change would run pass after pass while
//! the cluster takes writes; status-only changes are left to the periodic
//! requeue.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use kube::ResourceExt;

use crate::crd::ShardedCluster;

/// A hash of what a reconcile acts on: the spec (through `generation`),
/// deletion, finalizers, labels and annotations. Equal hashes: no trigger.
pub fn not_status(c: &ShardedCluster) -> Option<u64> {
    let mut h = DefaultHasher::new();
    c.metadata.generation.hash(&mut h);
    c.metadata.deletion_timestamp.is_some().hash(&mut h);
    c.finalizers().hash(&mut h);
    c.labels().hash(&mut h);
    c.annotations().hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cluster;

    #[test]
    fn status_changes_do_not_trigger_and_the_rest_does() {
        let base = cluster(2, true);
        let hash = not_status(&base);

        let mut status_only = base.clone();
        let mut st = status_only.status.clone().unwrap_or_default();
        st.observed_generation = Some(41);
        status_only.status = Some(st);
        status_only.metadata.resource_version = Some("999".into());
        assert_eq!(not_status(&status_only), hash, "status and version only");

        let mut edited = base.clone();
        edited.metadata.generation = Some(base.metadata.generation.unwrap_or(0) + 1);
        assert_ne!(not_status(&edited), hash, "spec edit");

        let mut deleted = base.clone();
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_ne!(not_status(&deleted), hash, "deletion");

        let mut finalized = base.clone();
        finalized.finalizers_mut().push("x".into());
        assert_ne!(not_status(&finalized), hash, "finalizer");

        let mut annotated = base;
        annotated.annotations_mut().insert("a".into(), "b".into());
        assert_ne!(not_status(&annotated), hash, "annotation");
    }
}
