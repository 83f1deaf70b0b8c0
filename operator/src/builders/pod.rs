//! The pod template shared by controller and shard-node StatefulSets:
//! container command line (the flag contract of `shard-node` and
//! `shard-controller`), probes on the HTTP endpoints, placement and security.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, TopologySpreadConstraint, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::ENTRYPOINT_KEY;
use super::BuildCtx;
use crate::crd::AntiAffinity;
use crate::names::{self, Member};

/// Name of the data volume (and its claim template).
pub const DATA_VOLUME: &str = "data";
/// Name of the ConfigMap volume.
pub const CONFIG_VOLUME: &str = "config";
/// UID/GID the image's user has (distroless-style `nonroot`).
pub const RUN_AS: i64 = 65532;

/// The program a member runs and its arguments after `--node-id`.
pub fn command_args(cx: &BuildCtx, member: Member) -> Vec<String> {
    let grpc = format!("0.0.0.0:{}", member.grpc_port());
    let http = format!("0.0.0.0:{}", member.http_port());
    // Only the initial members bootstrap from --peers; the entrypoint turns
    // the flag into --seeds for any later member, which waits to be added.
    // Listing the initial members (not `replicas`) keeps the template, and
    // so the pods, unchanged when `replicas` changes.
    let peers = member.peers_flag(&cx.name, &cx.namespace, cx.initial_replicas(member));
    let mode = cx.spec.partitioning.mode.as_flag().to_string();
    let mut args = match member {
        Member::Controller => vec!["shard-controller".to_string()],
        Member::Group(g) => vec!["shard-node".to_string(), "--group-id".into(), g.to_string()],
    };
    args.extend([
        "--listen".into(),
        grpc,
        "--http-listen".into(),
        http,
        "--data-dir".into(),
        names::DATA_DIR.into(),
        "--peers".into(),
        peers,
        "--partitioning".into(),
        mode,
    ]);
    if let (Member::Controller, Some(n)) = (member, cx.spec.partitioning.initial_ranges) {
        args.extend(["--initial-ranges".into(), n.to_string()]);
    }
    if let Member::Group(_) = member {
        // The group's leader reports per-range load to the controller,
        // through the client Service (any controller member forwards to the
        // leader), so the controller's size is not part of this template.
        args.extend([
            "--controller".into(),
            names::client_address(&cx.name, &cx.namespace),
        ]);
    }
    args
}

/// Desired replicas (voters) of a member group.
pub fn replicas(cx: &BuildCtx, member: Member) -> i32 {
    cx.desired_replicas(member)
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The one container of a member pod.
pub fn container(cx: &BuildCtx, member: Member) -> Container {
    let name = member.object_name(&cx.name);
    let resources = match member {
        Member::Controller => cx.spec.controller.resources.clone(),
        Member::Group(_) => cx.spec.groups.resources.clone(),
    };
    let mut args = vec![format!("{}/{ENTRYPOINT_KEY}", names::CONFIG_DIR)];
    args.extend(command_args(cx, member));
    Container {
        name: member.component().into(),
        image: Some(cx.spec.image.clone()),
        image_pull_policy: Some(cx.spec.image_pull_policy.as_str().into()),
        command: Some(vec!["/bin/sh".into()]),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "SHARDLINE_ADVERTISE".into(),
                value: Some(format!(
                    "$(POD_NAME).{name}.{}.svc:{}",
                    cx.namespace,
                    member.grpc_port()
                )),
                ..Default::default()
            },
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names::config_map(&cx.name),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".into()),
                container_port: member.grpc_port(),
                ..Default::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: member.http_port(),
                ..Default::default()
            },
        ]),
        startup_probe: Some(http_probe("/healthz", 2, 150)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        resources,
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: names::DATA_DIR.into(),
                ..Default::default()
            },
            VolumeMount {
                name: CONFIG_VOLUME.into(),
                mount_path: names::CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Anti-affinity keeping a Raft group's members on different nodes.
pub fn anti_affinity(kind: AntiAffinity, selector: &BTreeMap<String, String>) -> Affinity {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            ..Default::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..Default::default()
    };
    let anti = match kind {
        AntiAffinity::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                },
            ]),
            ..Default::default()
        },
        AntiAffinity::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..Default::default()
        },
    };
    Affinity {
        pod_anti_affinity: Some(anti),
        ..Default::default()
    }
}

/// The user's spread constraints, scoped to this Raft group when they name
/// no selector.
pub fn spread_constraints(
    user: &[TopologySpreadConstraint],
    selector: &BTreeMap<String, String>,
) -> Option<Vec<TopologySpreadConstraint>> {
    if user.is_empty() {
        return None;
    }
    Some(
        user.iter()
            .cloned()
            .map(|mut c| {
                if c.label_selector.is_none() {
                    c.label_selector = Some(LabelSelector {
                        match_labels: Some(selector.clone()),
                        ..Default::default()
                    });
                }
                c
            })
            .collect(),
    )
}

/// The pod template of a member group.
pub fn pod_template(cx: &BuildCtx, member: Member) -> PodTemplateSpec {
    let selector = member.selector_labels(&cx.name);
    let placement = &cx.spec.placement;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(member.labels(&cx.name)),
            annotations: Some(BTreeMap::from([(
                names::ANNOTATION_CONFIG_HASH.into(),
                cx.config_hash.clone(),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(cx, member)],
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            affinity: Some(anti_affinity(placement.anti_affinity, &selector)),
            topology_spread_constraints: spread_constraints(
                &placement.topology_spread_constraints,
                &selector,
            ),
            node_selector: (!placement.node_selector.is_empty())
                .then(|| placement.node_selector.clone()),
            tolerations: (!placement.tolerations.is_empty()).then(|| placement.tolerations.clone()),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            volumes: Some(vec![Volume {
                name: CONFIG_VOLUME.into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names::config_map(&cx.name),
                    default_mode: Some(0o444),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::ctx;

    #[test]
    fn shard_node_flags_follow_the_contract() {
        let cx = ctx(2, 3);
        let args = command_args(&cx, Member::Group(2));
        assert_eq!(
            args.join(" "),
            "shard-node --group-id 2 --listen 0.0.0.0:7401 --http-listen 0.0.0.0:7501 --data-dir /data \
             --peers 1=kv-g2-0.kv-g2.ns.svc:7401,2=kv-g2-1.kv-g2.ns.svc:7401,3=kv-g2-2.kv-g2.ns.svc:7401 \
             --partitioning hash --controller kv.ns.svc:7400"
        );
    }

    #[test]
    fn template_does_not_change_with_replicas() {
        let mut cx = ctx(2, 3);
        let before = pod_template(&cx, Member::Group(1));
        let controller = pod_template(&cx, Member::Controller);
        cx.initial_replicas.insert(Member::Group(1), 3);
        cx.initial_replicas.insert(Member::Controller, 3);
        cx.spec.groups.replicas = 5;
        cx.spec.controller.replicas = 1;
        assert_eq!(pod_template(&cx, Member::Group(1)), before);
        assert_eq!(pod_template(&cx, Member::Controller), controller);
        // A group created after the change starts with the new size.
        let args = command_args(&cx, Member::Group(2)).join(" ");
        assert!(args.contains(",5=kv-g2-4.kv-g2.ns.svc:7401 "), "{args}");
    }

    #[test]
    fn controller_flags_follow_the_contract() {
        let mut cx = ctx(1, 1);
        cx.spec.controller.replicas = 1;
        cx.spec.partitioning.initial_ranges = Some(8);
        let args = command_args(&cx, Member::Controller);
        assert_eq!(
            args.join(" "),
            "shard-controller --listen 0.0.0.0:7400 --http-listen 0.0.0.0:7500 --data-dir /data \
             --peers 1=kv-ctrl-0.kv-ctrl.ns.svc:7400 --partitioning hash --initial-ranges 8"
        );
    }

    #[test]
    fn container_runs_entrypoint_with_probes_on_http_port() {
        let c = container(&ctx(2, 3), Member::Group(1));
        assert_eq!(c.command.as_deref(), Some(&["/bin/sh".to_string()][..]));
        let args = c.args.unwrap();
        assert_eq!(args[0], "/etc/shardline/entrypoint.sh");
        assert_eq!(args[1], "shard-node");
        let live = c.liveness_probe.unwrap().http_get.unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(live.port, IntOrString::String("http".into()));
        let ready = c.readiness_probe.unwrap().http_get.unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        let ports = c.ports.unwrap();
        assert!(ports
            .iter()
            .any(|p| p.name.as_deref() == Some("http") && p.container_port == 7501));
        let env = c.env.unwrap();
        let adv = env
            .iter()
            .find(|e| e.name == "SHARDLINE_ADVERTISE")
            .unwrap();
        assert_eq!(adv.value.as_deref(), Some("$(POD_NAME).kv-g1.ns.svc:7401"));
        assert_eq!(env[0].name, "POD_NAME", "POD_NAME must precede its use");
    }

    #[test]
    fn anti_affinity_defaults_to_preferred() {
        let t = pod_template(&ctx(2, 3), Member::Group(1));
        let anti = t.spec.unwrap().affinity.unwrap().pod_anti_affinity.unwrap();
        let pref = anti
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(
            pref[0].pod_affinity_term.topology_key,
            "kubernetes.io/hostname"
        );
        let sel = pref[0]
            .pod_affinity_term
            .label_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(sel, Member::Group(1).selector_labels("kv"));
        assert!(anti
            .required_during_scheduling_ignored_during_execution
            .is_none());
        let req = anti_affinity(AntiAffinity::Required, &sel)
            .pod_anti_affinity
            .unwrap();
        assert_eq!(
            req.required_during_scheduling_ignored_during_execution
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn spread_constraints_get_group_selector() {
        let sel = Member::Group(1).selector_labels("kv");
        assert!(spread_constraints(&[], &sel).is_none());
        let c = TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            ..Default::default()
        };
        let out = spread_constraints(&[c], &sel).unwrap();
        assert_eq!(
            out[0].label_selector.clone().unwrap().match_labels.unwrap(),
            sel
        );
    }

    #[test]
    fn template_carries_config_hash_and_placement() {
        let mut cx = ctx(2, 3);
        cx.spec
            .placement
            .node_selector
            .insert("disk".into(), "ssd".into());
        let t = pod_template(&cx, Member::Controller);
        let meta = t.metadata.unwrap();
        assert_eq!(
            meta.annotations.unwrap()[names::ANNOTATION_CONFIG_HASH],
            cx.config_hash
        );
        let spec = t.spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["disk"], "ssd");
        assert!(spec.tolerations.is_none());
        assert_eq!(spec.security_context.unwrap().fs_group, Some(RUN_AS));
    }
}
