//! The generated CRD: checked-in copies are fresh and identical, the schema
//! is structural, every example validates against it (OpenAPI schema and
//! CEL rules), and the schema's own validation catches bad specs.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::{json, Value};
use shardline_operator::crd::{crd_yaml, ShardedCluster, CHART_CRD_PATH, CRD_PATH};
use shardline_operator::decide::validation;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> Value {
    let crd = serde_json::to_value(ShardedCluster::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn checked_in_crd_is_fresh() {
    let want = crd_yaml().unwrap();
    let have = std::fs::read_to_string(root().join(CRD_PATH)).unwrap_or_default();
    assert!(
        have == want,
        "{CRD_PATH} is stale: run `cargo run -p shardline-operator --bin crdgen -- --write` and commit the result"
    );
}

#[test]
fn chart_crd_is_identical() {
    let a = std::fs::read(root().join(CRD_PATH)).unwrap();
    let b = std::fs::read(root().join(CHART_CRD_PATH)).unwrap();
    assert!(
        a == b,
        "{CHART_CRD_PATH} differs from {CRD_PATH}: run crdgen -- --write"
    );
}

#[test]
fn crd_metadata() {
    let crd = ShardedCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("shardedclusters.shardline.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["shc".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["shardline".to_string()])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.groups.count");
    assert_eq!(scale.status_replicas_path, ".status.readyGroups");
    let cols: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        cols,
        ["Groups", "Ready", "Ranges", "Config", "Phase", "Age"]
    );
}

// ---- structural schema ----

/// Keywords a CRD's JSONSchemaProps accepts (apiextensions.k8s.io/v1), minus
/// the ones v1 forbids ($ref, definitions, id, $schema, dependencies,
/// patternProperties, additionalItems).
const ALLOWED: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "externalDocs",
    "example",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];
/// Not allowed inside allOf/anyOf/oneOf/not.
const NOT_IN_JUNCTORS: &[&str] = &[
    "type",
    "description",
    "default",
    "additionalProperties",
    "nullable",
];

fn check_node(path: &str, node: &Value, in_junctor: bool, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: not an object"));
        return;
    };
    for k in obj.keys() {
        if !ALLOWED.contains(&k.as_str()) {
            errors.push(format!("{path}: unsupported keyword {k}"));
        }
        if in_junctor && NOT_IN_JUNCTORS.contains(&k.as_str()) {
            errors.push(format!("{path}: {k} inside a logical junctor"));
        }
    }
    let exempt = obj.get("x-kubernetes-int-or-string") == Some(&json!(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if !in_junctor
        && !exempt
        && obj
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errors.push(format!("{path}: no type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!("{path}: both properties and additionalProperties"));
    }
    if obj.get("uniqueItems") == Some(&json!(true)) {
        errors.push(format!("{path}: uniqueItems true is forbidden"));
    }
    if obj.get("x-kubernetes-list-type") == Some(&json!("map")) {
        let required: Vec<&Value> = node["items"]["required"]
            .as_array()
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        for key in obj["x-kubernetes-list-map-keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let has_default = node["items"]["properties"][key.as_str().unwrap()]
                .get("default")
                .is_some();
            if !required.contains(&&key) && !has_default {
                errors.push(format!(
                    "{path}: list-map key {key} neither required nor defaulted"
                ));
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_node(&format!("{path}.{k}"), v, in_junctor, errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_node(&format!("{path}[]"), items, in_junctor, errors);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_node(&format!("{path}{{}}"), ap, in_junctor, errors);
    }
    for j in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in obj
            .get(j)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_node(&format!("{path}/{j}[{i}]"), sub, true, errors);
        }
    }
    if let Some(sub) = obj.get("not") {
        check_node(&format!("{path}/not"), sub, true, errors);
    }
}

#[test]
fn schema_is_structural() {
    let mut errors = Vec::new();
    check_node("", &schema(), false, &mut errors);
    assert!(
        errors.is_empty(),
        "schema is not structural:\n{}",
        errors.join("\n")
    );
}

#[test]
fn structural_check_catches_violations() {
    let mut errors = Vec::new();
    let bad = json!({"type": "object", "properties": {
        "a": {"description": "untyped"},
        "b": {"type": "string", "$ref": "#/x"},
        "c": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
        "d": {"type": "string", "anyOf": [{"type": "string"}]}
    }});
    check_node("", &bad, false, &mut errors);
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn schema_has_cel_rules_and_enums() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    let rules = |v: &Value| {
        v["x-kubernetes-validations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let part = rules(&spec["partitioning"]);
    assert!(
        part.iter().any(|r| r["rule"] == "self == oldSelf"),
        "{part:?}"
    );
    assert!(
        part.iter()
            .any(|r| r["rule"].as_str().unwrap().contains("initialRanges == 1")),
        "{part:?}"
    );
    assert_eq!(
        rules(&spec["groups"]["properties"]["replicas"])[0]["rule"],
        "self % 2 == 1"
    );
    assert_eq!(
        rules(&spec["controller"]["properties"]["replicas"])[0]["rule"],
        "self % 2 == 1"
    );
    assert_eq!(
        spec["partitioning"]["properties"]["mode"]["enum"],
        json!(["hash", "range"])
    );
    assert_eq!(
        spec["placement"]["properties"]["antiAffinity"]["enum"],
        json!(["preferred", "required"])
    );
    assert_eq!(
        spec["groups"]["properties"]["count"]["minimum"].as_f64(),
        Some(1.0)
    );
    let conds = &s["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conds["x-kubernetes-list-type"], "map");
    assert_eq!(conds["x-kubernetes-list-map-keys"], json!(["type"]));
    assert!(rules(&s)
        .iter()
        .any(|r| r["rule"].as_str().unwrap().contains("metadata.name.size()")));
}

// ---- examples ----

/// Rewrites OpenAPI's `nullable: true` as JSON Schema's `type: [T, "null"]`.
fn to_json_schema(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        if obj.remove("nullable") == Some(json!(true)) {
            if let Some(t) = obj.get("type").cloned() {
                obj.insert("type".into(), json!([t, "null"]));
            }
        }
        for child in obj.values_mut() {
            to_json_schema(child);
        }
    } else if let Some(arr) = v.as_array_mut() {
        arr.iter_mut().for_each(to_json_schema);
    }
}

fn validator() -> jsonschema::Validator {
    let mut s = schema();
    to_json_schema(&mut s);
    jsonschema::validator_for(&s).expect("schema compiles")
}

fn errors_of(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(doc).unwrap();
            if v["kind"] == "ShardedCluster" {
                out.push((format!("{}#{i}", p.display()), v));
            }
        }
    }
    out
}

#[test]
fn every_example_validates_against_the_crd() {
    let v = validator();
    let ex = examples();
    assert!(ex.len() >= 2, "minimal and production examples");
    for (name, doc) in ex {
        assert_eq!(doc["apiVersion"], "shardline.dev/v1alpha1", "{name}");
        let errs = errors_of(&v, &doc);
        assert!(errs.is_empty(), "{name}: {errs:?}");
        let typed: ShardedCluster =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        kube::core::cel::validate_cel(&typed).unwrap_or_else(|e| panic!("{name}: CEL: {e:?}"));
        let n = typed.metadata.name.clone().unwrap();
        validation::validate(&n, &typed.spec, None).unwrap_or_else(|p| panic!("{name}: {p:?}"));
    }
}

fn minimal() -> Value {
    json!({
        "apiVersion": "shardline.dev/v1alpha1", "kind": "ShardedCluster",
        "metadata": {"name": "x"},
        "spec": {"groups": {"count": 2}}
    })
}

#[test]
fn schema_rejects_bad_specs() {
    let v = validator();
    assert!(errors_of(&v, &minimal()).is_empty());
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut d = minimal();
        f(&mut d);
        !errors_of(&v, &d).is_empty()
    };
    assert!(
        bad(&|d| d["spec"]["groups"]["count"] = json!(0)),
        "zero groups"
    );
    assert!(
        bad(&|d| d["spec"]["groups"]["replicas"] = json!(7)),
        "more than 5 replicas"
    );
    assert!(
        bad(&|d| d["spec"]["partitioning"] = json!({"mode": "ordered"})),
        "unknown mode"
    );
    assert!(
        bad(&|d| d["spec"]["placement"] = json!({"antiAffinity": "sometimes"})),
        "unknown anti-affinity"
    );
    assert!(
        bad(&|d| d["spec"]["pvcRetention"] = json!({"onDelete": "Shred"})),
        "unknown retention"
    );
    assert!(
        bad(&|d| d["spec"]["groups"] = json!({})),
        "count is required"
    );
}

fn typed(doc: Value) -> ShardedCluster {
    serde_json::from_value(doc).unwrap()
}

#[test]
fn cel_rules_reject_even_replicas_long_names_and_partitioning_changes() {
    let ok = typed(minimal());
    kube::core::cel::validate_cel(&ok).expect("minimal passes CEL");
    let mut even = minimal();
    even["spec"]["groups"]["replicas"] = json!(4);
    assert!(
        kube::core::cel::validate_cel(&typed(even)).is_err(),
        "even group replicas"
    );
    let mut even = minimal();
    even["spec"]["controller"] = json!({"replicas": 2});
    assert!(
        kube::core::cel::validate_cel(&typed(even)).is_err(),
        "even controller replicas"
    );
    let mut long = minimal();
    long["metadata"]["name"] = json!("x".repeat(41));
    assert!(
        kube::core::cel::validate_cel(&typed(long)).is_err(),
        "long name"
    );

    let mut changed = minimal();
    changed["spec"]["partitioning"] = json!({"mode": "range"});
    assert!(
        kube::core::cel::validate_cel_update(&typed(changed), &ok).is_err(),
        "partitioning is immutable"
    );
    let mut range16 = minimal();
    range16["spec"]["partitioning"] = json!({"mode": "range", "initialRanges": 16});
    assert!(
        kube::core::cel::validate_cel(&typed(range16)).is_err(),
        "range mode starts from one range"
    );
    let mut hash64 = minimal();
    hash64["spec"]["partitioning"] = json!({"mode": "hash", "initialRanges": 64});
    kube::core::cel::validate_cel(&typed(hash64)).expect("hash mode takes initialRanges");
    let mut scaled = minimal();
    scaled["spec"]["groups"]["count"] = json!(5);
    kube::core::cel::validate_cel_update(&typed(scaled), &ok).expect("scaling is allowed");
}
