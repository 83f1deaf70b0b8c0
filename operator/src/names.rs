//! Names, labels, ports and DNS addresses of the objects one ShardedCluster
//! owns. Every builder and the reconciler derive names from here, so the
//! layout is defined once:
//!
//! | object | name |
//! | --- | --- |
//! | controller StatefulSet, headless Service, PDB | `<name>-ctrl` |
//! | shard group `g` StatefulSet, headless Service, PDB | `<name>-g<g>` |
//! | client Service (controller gRPC) | `<name>` |
//! | ConfigMap (node settings, entrypoint) | `<name>-config` |

use std::collections::BTreeMap;

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "shardline-operator";
/// Finalizer that orders deletion.
pub const FINALIZER: &str = "shardline.dev/cleanup";

/// gRPC port of controller pods.
pub const CONTROLLER_GRPC_PORT: i32 = 7400;
/// HTTP port (/metrics, /healthz, /readyz) of controller pods.
pub const CONTROLLER_HTTP_PORT: i32 = 7500;
/// gRPC port of shard-node pods.
pub const NODE_GRPC_PORT: i32 = 7401;
/// HTTP port (/metrics, /healthz, /readyz) of shard-node pods.
pub const NODE_HTTP_PORT: i32 = 7501;
/// Where the data volume is mounted.
pub const DATA_DIR: &str = "/data";
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/shardline";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Shard group id on a group's objects and pods.
pub const LABEL_GROUP: &str = "shardline.dev/group";
/// Hash of the ConfigMap data on pod templates, so a settings change rolls.
pub const ANNOTATION_CONFIG_HASH: &str = "shardline.dev/config-hash";
/// On a StatefulSet: the voters its Raft group was created with (the
/// members its pods list in `--peers`).
pub const ANNOTATION_INITIAL_REPLICAS: &str = "shardline.dev/initial-replicas";

/// Which Raft group an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// The controller group.
    Controller,
    /// Shard group with this id (1-based).
    Group(u64),
}

impl Member {
    /// `app.kubernetes.io/component` value.
    pub fn component(self) -> &'static str {
        match self {
            Member::Controller => "controller",
            Member::Group(_) => "shard-group",
        }
    }

    /// StatefulSet, headless Service and PDB name.
    pub fn object_name(self, cluster: &str) -> String {
        match self {
            Member::Controller => format!("{cluster}-ctrl"),
            Member::Group(g) => format!("{cluster}-g{g}"),
        }
    }

    /// gRPC port of this group's pods.
    pub fn grpc_port(self) -> i32 {
        match self {
            Member::Controller => CONTROLLER_GRPC_PORT,
            Member::Group(_) => NODE_GRPC_PORT,
        }
    }

    /// HTTP port of this group's pods.
    pub fn http_port(self) -> i32 {
        match self {
            Member::Controller => CONTROLLER_HTTP_PORT,
            Member::Group(_) => NODE_HTTP_PORT,
        }
    }

    /// Labels selecting exactly this group's pods.
    pub fn selector_labels(self, cluster: &str) -> BTreeMap<String, String> {
        let mut l = instance_labels(cluster);
        l.insert(LABEL_COMPONENT.into(), self.component().into());
        if let Member::Group(g) = self {
            l.insert(LABEL_GROUP.into(), g.to_string());
        }
        l
    }

    /// Labels put on this group's objects and pods.
    pub fn labels(self, cluster: &str) -> BTreeMap<String, String> {
        let mut l = self.selector_labels(cluster);
        l.insert(LABEL_MANAGED_BY.into(), FIELD_MANAGER.into());
        l
    }

    /// `host:port` of pod `ordinal`, through the headless Service.
    pub fn pod_address(self, cluster: &str, namespace: &str, ordinal: u32) -> String {
        let name = self.object_name(cluster);
        format!(
            "{name}-{ordinal}.{name}.{namespace}.svc:{}",
            self.grpc_port()
        )
    }

    /// Raft peers: node id (ordinal + 1) to address, for `--peers`.
    pub fn peers(self, cluster: &str, namespace: &str, replicas: i32) -> Vec<(u64, String)> {
        (0..replicas.max(0) as u32)
            .map(|o| (u64::from(o) + 1, self.pod_address(cluster, namespace, o)))
            .collect()
    }

    /// The `--peers` flag value: `1=host:port,2=host:port,...`.
    pub fn peers_flag(self, cluster: &str, namespace: &str, replicas: i32) -> String {
        self.peers(cluster, namespace, replicas)
            .into_iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Labels every object of one cluster carries (and selects on).
pub fn instance_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), "shardline".into()),
        (LABEL_INSTANCE.into(), cluster.into()),
    ])
}

/// Label selector string matching every object of one cluster.
pub fn instance_selector(cluster: &str) -> String {
    format!("{LABEL_NAME}=shardline,{LABEL_INSTANCE}={cluster}")
}

/// Client Service name.
pub fn client_service(cluster: &str) -> String {
    cluster.to_string()
}

/// `host:port` of the client Service (controller gRPC) inside the cluster.
pub fn client_address(cluster: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{CONTROLLER_GRPC_PORT}",
        client_service(cluster)
    )
}

/// ConfigMap name.
pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// gRPC endpoints (`http://host:port`) of every controller pod.
pub fn controller_endpoints(cluster: &str, namespace: &str, replicas: i32) -> Vec<String> {
    Member::Controller
        .peers(cluster, namespace, replicas)
        .into_iter()
        .map(|(_, a)| format!("http://{a}"))
        .collect()
}

/// gRPC endpoints (`http://host:port`) of every member of shard group `gid`.
pub fn group_endpoints(cluster: &str, namespace: &str, gid: u64, replicas: i32) -> Vec<String> {
    Member::Group(gid)
        .peers(cluster, namespace, replicas)
        .into_iter()
        .map(|(_, a)| format!("http://{a}"))
        .collect()
}

/// The shard group id encoded in a group StatefulSet's name, if it is one of
/// this cluster's.
pub fn group_of_statefulset(cluster: &str, sts_name: &str) -> Option<u64> {
    sts_name
        .strip_prefix(cluster)?
        .strip_prefix("-g")?
        .parse()
        .ok()
        .filter(|g| *g > 0)
}

/// The ordinal at the end of a StatefulSet pod's name.
pub fn pod_ordinal(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_peers() {
        assert_eq!(Member::Controller.object_name("kv"), "kv-ctrl");
        assert_eq!(Member::Group(3).object_name("kv"), "kv-g3");
        assert_eq!(
            Member::Group(2).peers_flag("kv", "ns", 3),
            "1=kv-g2-0.kv-g2.ns.svc:7401,2=kv-g2-1.kv-g2.ns.svc:7401,3=kv-g2-2.kv-g2.ns.svc:7401"
        );
        assert_eq!(
            controller_endpoints("kv", "ns", 1),
            vec!["http://kv-ctrl-0.kv-ctrl.ns.svc:7400".to_string()]
        );
    }

    #[test]
    fn parse_back_group_and_ordinal() {
        assert_eq!(group_of_statefulset("kv", "kv-g12"), Some(12));
        assert_eq!(group_of_statefulset("kv", "kv-ctrl"), None);
        assert_eq!(group_of_statefulset("kv", "kvx-g1"), None);
        assert_eq!(group_of_statefulset("kv", "kv-g0"), None);
        assert_eq!(pod_ordinal("kv-g2-10"), Some(10));
        assert_eq!(pod_ordinal("nohyphen"), None);
    }

    #[test]
    fn selectors_distinguish_groups() {
        let a = Member::Group(1).selector_labels("kv");
        let b = Member::Group(2).selector_labels("kv");
        assert_ne!(a, b);
        assert!(!Member::Controller
            .selector_labels("kv")
            .contains_key(LABEL_GROUP));
        assert_eq!(
            Member::Group(1).labels("kv")[LABEL_MANAGED_BY],
            FIELD_MANAGER
        );
    }
}
