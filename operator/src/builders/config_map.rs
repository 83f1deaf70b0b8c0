//! The ConfigMap holding node settings and the pod entrypoint.
//!
//! Settings are environment variables (`envFrom` on every pod) named like
//! the binaries' flags (`SHARDLINE_<FLAG>`), so the controller reads the
//! rebalancing settings through clap's `env` fallback and nodes ignore what
//! they do not use. `entrypoint.sh` derives the Raft node id from the
//! StatefulSet pod ordinal (`<sts>-<ordinal>` → `--node-id <ordinal + 1>`)
//! and replaces `--peers` with `--seeds` (the same addresses) when that id
//! is not among them: such a pod is a member added after its group was
//! created, so it must not bootstrap a group of its own; it starts empty
//! and waits for the operator to add it (`Admin.AddMember`). The seeds let
//! a member whose volume was wiped have itself removed first (see
//! `shardline_raft::bootstrap`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::BuildCtx;
use crate::crd::ShardedClusterSpec;
use crate::names;

/// Key of the entrypoint script in the ConfigMap.
pub const ENTRYPOINT_KEY: &str = "entrypoint.sh";

/// The entrypoint every Shardline pod runs: `sh entrypoint.sh PROGRAM ARGS...`
/// execs `PROGRAM --node-id <ordinal+1> ARGS...`, with `--seeds ADDRS`
/// instead of `--peers LIST` when `<ordinal+1>=` is not in LIST.
pub const ENTRYPOINT: &str = r#"#!/bin/sh
# Shardline pod entrypoint, written by the operator.
# A StatefulSet pod is named <statefulset>-<ordinal>; its Raft node id is
# ordinal + 1. Usage: entrypoint.sh PROGRAM [ARGS...]
# `--peers` lists the members a Raft group was created with. A node not
# listed was added later: it starts with --seeds (those members' addresses)
# instead, and waits to be added to the running group instead of
# bootstrapping a new one.
set -eu
: "${POD_NAME:?POD_NAME must come from metadata.name}"
ordinal="${POD_NAME##*-}"
case "$ordinal" in
  ''|*[!0-9]*) echo "entrypoint: no ordinal in pod name '$POD_NAME'" >&2; exit 64 ;;
esac
id=$((ordinal + 1))
program="$1"
shift
peers_next=
for arg do
  shift
  if [ -n "$peers_next" ]; then
    peers_next=
    case ",$arg" in
      *",$id="*) set -- "$@" --peers "$arg" ;;
      *)
        # Its seeds: the initial members' addresses (ids dropped). Started
        # empty while its group still lists it (a wiped volume), it has
        # itself removed, to be added back afresh.
        seeds=
        old_ifs=$IFS
        IFS=,
        for peer in $arg; do seeds="${seeds:+$seeds,}${peer#*=}"; done
        IFS=$old_ifs
        set -- "$@" --seeds "$seeds"
        echo "entrypoint: node $id is not an initial member; waiting to be added" >&2 ;;
    esac
    continue
  fi
  if [ "$arg" = "--peers" ]; then
    peers_next=1
    continue
  fi
  set -- "$@" "$arg"
done
exec "$program" --node-id "$id" "$@"
"#;

/// The ConfigMap's data: the entrypoint and the settings.
pub fn data(cluster: &str, spec: &ShardedClusterSpec) -> BTreeMap<String, String> {
    let r = &spec.rebalancing;
    let p = &spec.partitioning;
    BTreeMap::from([
        (ENTRYPOINT_KEY.into(), ENTRYPOINT.into()),
        ("SHARDLINE_CLUSTER".into(), cluster.into()),
        ("SHARDLINE_PARTITIONING".into(), p.mode.as_flag().into()),
        (
            "SHARDLINE_HOT_THRESHOLD_OPS".into(),
            r.hot_threshold_ops_per_sec.to_string(),
        ),
        (
            "SHARDLINE_MAX_RANGE_SIZE".into(),
            r.max_range_size.0.clone(),
        ),
        (
            "SHARDLINE_MAX_CONCURRENT_MIGRATIONS".into(),
            r.max_concurrent_migrations.to_string(),
        ),
        (
            "SHARDLINE_MIGRATION_RATE_LIMIT".into(),
            r.migration_rate_limit.0.clone(),
        ),
        (
            "SHARDLINE_SPLIT_COOLDOWN".into(),
            format!("{}s", r.cooldown_seconds),
        ),
    ])
}

/// A stable hash of the data, hex-encoded.
pub fn data_hash(data: &BTreeMap<String, String>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (k, v) in data {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    format!("{:016x}", h.digest())
}

/// The ConfigMap.
pub fn config_map(cx: &BuildCtx) -> ConfigMap {
    let mut labels = names::instance_labels(&cx.name);
    labels.insert(names::LABEL_MANAGED_BY.into(), names::FIELD_MANAGER.into());
    ConfigMap {
        metadata: cx.meta(names::config_map(&cx.name), labels),
        data: Some(data(&cx.name, &cx.spec)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::ctx;

    #[test]
    fn holds_entrypoint_and_settings() {
        let cm = config_map(&ctx(2, 3));
        assert_eq!(cm.metadata.name.as_deref(), Some("kv-config"));
        let d = cm.data.unwrap();
        assert!(d[ENTRYPOINT_KEY].contains("id=$((ordinal + 1))"));
        assert_eq!(d["SHARDLINE_PARTITIONING"], "hash");
        assert!(
            !d.contains_key("SHARDLINE_INITIAL_RANGES"),
            "passed as a flag only when set"
        );
        assert_eq!(d["SHARDLINE_SPLIT_COOLDOWN"], "300s");
        assert_eq!(
            cm.metadata.owner_references.unwrap()[0].kind,
            "ShardedCluster"
        );
    }

    #[test]
    fn hash_changes_with_settings_only() {
        let mut spec = ctx(2, 3).spec;
        let a = data_hash(&data("kv", &spec));
        spec.groups.count = 5;
        assert_eq!(
            a,
            data_hash(&data("kv", &spec)),
            "group count is not a node setting"
        );
        spec.rebalancing.cooldown_seconds = 10;
        assert_ne!(a, data_hash(&data("kv", &spec)));
    }

    #[test]
    fn entrypoint_derives_node_id_from_ordinal() {
        let dir = std::env::temp_dir().join(format!("shardline-ep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("entrypoint.sh");
        std::fs::write(&script, ENTRYPOINT).unwrap();
        let run = |pod: &str, args: &[&str]| {
            std::process::Command::new("sh")
                .arg(&script)
                .arg("echo")
                .args(args)
                .env("POD_NAME", pod)
                .output()
                .unwrap()
        };
        let out = run("kv-g2-4", &["--peers", "1=a:1,5=e:1", "--listen", "x y"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "--node-id 5 --peers 1=a:1,5=e:1 --listen x y"
        );
        // Node 4 is not an initial member (and "14=" must not match "4="):
        // --peers becomes --seeds (addresses only), in its place.
        let out = run("kv-g2-3", &["--peers", "1=a:1,14=n:1", "--listen", "x y"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "--node-id 4 --seeds a:1,n:1 --listen x y"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("waiting to be added"));
        assert!(!run("no-ordinal-x", &["--peers", "1=a:1"]).status.success());
        std::fs::remove_dir_all(&dir).ok();
    }
}
