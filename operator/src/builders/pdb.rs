//! PodDisruptionBudgets: at most one member of a Raft group down by
//! voluntary disruption, so a 3- or 5-member group keeps its quorum. A
//! single-replica group gets none (a budget would block node drains forever).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::replicas;
use super::BuildCtx;
use crate::names::Member;

/// The budget of one member group, or `None` for a single replica.
pub fn pdb(cx: &BuildCtx, member: Member) -> Option<PodDisruptionBudget> {
    if replicas(cx, member) <= 1 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: cx.meta(member.object_name(&cx.name), member.labels(&cx.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(member.selector_labels(&cx.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::ctx;

    #[test]
    fn max_unavailable_one() {
        let p = pdb(&ctx(2, 3), Member::Group(2)).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("kv-g2"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert!(spec.min_available.is_none());
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap(),
            Member::Group(2).selector_labels("kv")
        );
    }

    #[test]
    fn none_for_single_replica() {
        assert!(pdb(&ctx(2, 1), Member::Group(1)).is_none());
        let mut cx = ctx(2, 1);
        cx.spec.controller.replicas = 1;
        assert!(pdb(&cx, Member::Controller).is_none());
        cx.spec.controller.replicas = 3;
        assert!(pdb(&cx, Member::Controller).is_some());
    }
}
