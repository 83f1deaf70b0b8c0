//! `shardline-operator render`: the objects the operator would create for a
//! ShardedCluster file, printed as YAML without a Kubernetes cluster. Useful
//! to review a spec, and used by `.ci/chart-check` to validate the generated
//! workloads offline against the Kubernetes schemas.

use serde::Deserialize;
use serde_json::Value;

use crate::builders::{initial_objects, BuildCtx};
use crate::crd::ShardedCluster;
use crate::decide::validation;
use crate::error::{Error, Result};

/// Owner uid used when the input has none (it never came from a server).
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Renders every ShardedCluster in the YAML stream `text` (other kinds are
/// skipped). Clusters without a namespace get `namespace`.
pub fn render(text: &str, namespace: &str) -> Result<String> {
    let mut out = String::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| Error::Yaml(e.to_string()))?;
        if v.get("kind").and_then(Value::as_str) != Some("ShardedCluster") {
            continue;
        }
        let mut cluster: ShardedCluster = serde_json::from_value(v)?;
        cluster
            .metadata
            .namespace
            .get_or_insert_with(|| namespace.to_string());
        cluster
            .metadata
            .uid
            .get_or_insert_with(|| PLACEHOLDER_UID.to_string());
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name"))?;
        validation::validate(&name, &cluster.spec, None).map_err(|p| Error::InvalidSpec {
            reason: p.reason,
            message: p.message,
        })?;
        for obj in initial_objects(&BuildCtx::new(&cluster)?)? {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(&obj).map_err(|e| Error::Yaml(e.to_string()))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_clusters_and_skips_other_kinds() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n\
                    apiVersion: shardline.dev/v1alpha1\nkind: ShardedCluster\n\
                    metadata: {name: kv}\nspec: {groups: {count: 1, replicas: 1}}\n";
        let out = render(text, "ns").unwrap();
        assert_eq!(out.matches("---\n").count(), 7, "{out}");
        assert!(out.contains("namespace: ns"));
        assert!(out.contains(PLACEHOLDER_UID));
        assert!(
            out.contains("name: kv-ctrl\n"),
            "controller PDB (3 replicas) is rendered"
        );
        let pdbs = out.matches("kind: PodDisruptionBudget").count();
        assert_eq!(pdbs, 1, "no PDB for the single-replica group");
    }

    #[test]
    fn refuses_invalid_specs() {
        let text = "apiVersion: shardline.dev/v1alpha1\nkind: ShardedCluster\n\
                    metadata: {name: kv}\nspec: {groups: {count: 1, replicas: 2}}\n";
        assert!(matches!(
            render(text, "ns"),
            Err(Error::InvalidSpec {
                reason: "EvenReplicas",
                ..
            })
        ));
    }
}
