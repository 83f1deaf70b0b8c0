//! Services: a headless Service per member group (stable pod DNS for Raft
//! peers, published before pods are ready so a group can elect its first
//! leader) and the client Service in front of the controller's gRPC API.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::BuildCtx;
use crate::names::{self, Member};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The headless Service of one member group.
pub fn headless(cx: &BuildCtx, member: Member) -> Service {
    Service {
        metadata: cx.meta(member.object_name(&cx.name), member.labels(&cx.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(member.selector_labels(&cx.name)),
            ports: Some(vec![
                port("grpc", member.grpc_port()),
                port("http", member.http_port()),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The client Service: ready controller pods' gRPC port.
pub fn client(cx: &BuildCtx) -> Service {
    let mut labels = names::instance_labels(&cx.name);
    labels.insert(names::LABEL_COMPONENT.into(), "client".into());
    labels.insert(names::LABEL_MANAGED_BY.into(), names::FIELD_MANAGER.into());
    Service {
        metadata: cx.meta(names::client_service(&cx.name), labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(Member::Controller.selector_labels(&cx.name)),
            ports: Some(vec![port("grpc", names::CONTROLLER_GRPC_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::ctx;

    #[test]
    fn headless_publishes_unready_pods() {
        let s = headless(&ctx(2, 3), Member::Group(1));
        assert_eq!(s.metadata.name.as_deref(), Some("kv-g1"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(
            spec.selector.unwrap(),
            Member::Group(1).selector_labels("kv")
        );
        let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![7401, 7501]);
    }

    #[test]
    fn client_service_targets_controller_grpc() {
        let s = client(&ctx(2, 3));
        assert_eq!(s.metadata.name.as_deref(), Some("kv"));
        let spec = s.spec.unwrap();
        assert_eq!(
            spec.selector.unwrap(),
            Member::Controller.selector_labels("kv")
        );
        assert_eq!(spec.ports.unwrap()[0].port, 7400);
        assert_ne!(spec.cluster_ip.as_deref(), Some("None"));
    }
}
