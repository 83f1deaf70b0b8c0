//! `kubectl shardline status` as kubectl runs it: the built `shardline`
//! binary copied to a temporary directory as `kubectl-shardline`, against a
//! fake Kubernetes API server on loopback (`support/fake_kube.rs`) through a
//! kubeconfig that points at it.
//!
//! These tests cover reading the resource (human and JSON output, namespace
//! from the context or `-n`, not-found and unreachable API errors with their
//! exit codes) and the live view's absence: the fake server knows no
//! controller pod, so every port-forward is refused and the report says so.
//! The live view itself, over `--controller` and over a port-forward, is
//! tested against a real `shard-controller` in `e2e/tests/kubectl_status.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::fake_kube::{sample_cluster, FakeKube};

/// The `shardline` binary linked as `kubectl-shardline` into `dir` (as
/// users install it). A symlink, not a copy: a copy is a file open for
/// writing, and a child forked meanwhile by a test running in parallel
/// inherits that descriptor, so executing the copy could fail with "text
/// file busy".
fn plugin_binary(dir: &Path) -> PathBuf {
    let plugin = dir.join("kubectl-shardline");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shardline"), &plugin).expect("link the binary");
    plugin
}

/// Runs `program args...` off the async runtime (the fake server keeps
/// serving meanwhile). `KUBECONFIG` and `HOME` are cleared so only
/// `--kubeconfig` counts.
async fn run(program: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the plugin finishes within 60s")
        .expect("run the plugin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cells of the row starting with `first` in the table whose header
/// line starts with `header`.
fn row(out: &str, header: &str, first: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with(header))
        .take_while(|l| !l.is_empty())
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in table {header:?} in:\n{out}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_resource_and_why_the_live_view_is_missing() {
    let kube = FakeKube::start().await;
    kube.add_cluster("shop", "kv", sample_cluster("shop", "kv", 3));
    let dir = tempfile::tempdir().unwrap();
    // The context's namespace is used when -n is not given.
    let kubeconfig = kube.write_kubeconfig(dir.path(), Some("shop"));
    let plugin = plugin_binary(dir.path());
    let kc = kubeconfig.to_str().unwrap();

    let out = run(
        &plugin,
        &["status", "kv", "--kubeconfig", kc, "--timeout", "5s"],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}"); // shown with --nocapture
    assert!(stdout.starts_with("ShardedCluster shop/kv\n"), "{stdout}");
    assert!(stdout.contains("Phase:        Running\n"), "{stdout}");
    assert!(
        stdout.contains("Config:       3 (hash), 16 ranges, 0 moving\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Ready groups: 2 of 2\n"), "{stdout}");
    assert!(
        stdout.contains("Controller:   3/3 ready, leader kv-ctrl-0 (id 1), term 3\n"),
        "{stdout}"
    );
    assert_eq!(
        row(&stdout, "CONDITION", "Ready"),
        ["Ready", "True", "AllGroupsReady", "2/2", "groups", "ready"]
    );
    assert_eq!(row(&stdout, "CONDITION", "Degraded")[1], "False");
    assert_eq!(
        row(&stdout, "GID", "1"),
        ["1", "Serving", "3/3", "kv-g1-1", "(id", "2)", "8", "1200", "41.5", "-", "-", "-"]
    );
    assert_eq!(
        row(&stdout, "GID", "2")[..4],
        ["2", "Serving", "3/3", "kv-g2-0"]
    );
    // No controller pod exists behind the fake API server: all three are
    // tried, in order, and the one line says why.
    let live = stdout
        .lines()
        .find(|l| l.starts_with("Live view"))
        .unwrap_or_else(|| panic!("no live view line: {stdout}"));
    assert_eq!(
        live,
        "Live view unavailable: no controller pod answered: \
         port-forward to pod kv-ctrl-0 port 7400: no such pod (404 Not Found); \
         port-forward to pod kv-ctrl-1 port 7400: no such pod (404 Not Found); \
         port-forward to pod kv-ctrl-2 port 7400: no such pod (404 Not Found)"
    );
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");

    let requests = kube.requests();
    assert_eq!(
        requests[0],
        "GET /apis/shardline.dev/v1alpha1/namespaces/shop/shardedclusters/kv"
    );
    let forwards: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("/portforward"))
        .collect();
    assert_eq!(forwards.len(), 3, "{requests:?}");
    assert!(
        forwards[0].starts_with("GET /api/v1/namespaces/shop/pods/kv-ctrl-0/portforward?"),
        "{forwards:?}"
    );
    assert!(forwards[0].contains("ports=7400"), "{forwards:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_the_stable_shape() {
    let kube = FakeKube::start().await;
    kube.add_cluster("db", "orders", sample_cluster("db", "orders", 1));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube.write_kubeconfig(dir.path(), None);
    let plugin = plugin_binary(dir.path());
    let kc = kubeconfig.to_str().unwrap();

    let out = run(
        &plugin,
        &[
            "status",
            "orders",
            "-n",
            "db",
            "--kubeconfig",
            kc,
            "-o",
            "json",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["live", "liveError", "resource"]);
    let r = &doc["resource"];
    assert_eq!(r["name"], "orders");
    assert_eq!(r["namespace"], "db");
    assert_eq!(r["generation"], 2);
    assert_eq!(r["observedGeneration"], 2);
    assert_eq!(r["phase"], "Running");
    assert_eq!(r["conditions"].as_array().unwrap().len(), 3);
    assert_eq!(r["conditions"][0]["type"], "Ready");
    assert_eq!(r["partitioning"]["mode"], "hash");
    assert_eq!(r["controller"]["replicas"], 1);
    assert_eq!(r["controller"]["reachable"], true);
    assert_eq!(r["groups"][1]["gid"], 2);
    assert_eq!(r["groups"][1]["keyCount"], 1187);
    assert_eq!(r["configNum"], 3);
    assert_eq!(r["rangeCount"], 16);
    assert_eq!(r["rangesMoving"], 0);
    assert_eq!(r["readyGroups"], 2);
    assert_eq!(doc["live"], Value::Null);
    let why = doc["liveError"].as_str().expect("liveError is a string");
    assert_eq!(
        why, "port-forward to pod orders-ctrl-0 port 7400: no such pod (404 Not Found)",
        "spec.controller.replicas is 1: one pod to try"
    );

    // The same through `shardline kube status`, without the plugin name.
    let out = run(
        Path::new(env!("CARGO_BIN_EXE_shardline")),
        &[
            "kube",
            "status",
            "orders",
            "-n",
            "db",
            "--kubeconfig",
            kc,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again, doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_resource_and_unreachable_api_are_one_line_errors() {
    let kube = FakeKube::start().await;
    kube.add_cluster("db", "orders", sample_cluster("db", "orders", 3));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube.write_kubeconfig(dir.path(), Some("db"));
    let plugin = plugin_binary(dir.path());
    let kc = kubeconfig.to_str().unwrap();

    for output in ["human", "json"] {
        let out = run(
            &plugin,
            &["status", "nope", "--kubeconfig", kc, "-o", output],
        )
        .await;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "nothing on stdout");
        assert_eq!(
            text(&out.stderr),
            "error: shardedcluster db/nope not found\n"
        );
    }
    // Another namespace holds no such object either.
    let out = run(
        &plugin,
        &["status", "orders", "-n", "other", "--kubeconfig", kc],
    )
    .await;
    assert_eq!(
        text(&out.stderr),
        "error: shardedcluster other/orders not found\n"
    );
    assert_eq!(out.status.code(), Some(3));

    // An API server that is not there: exit code 4, one line.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down_dir = tempfile::tempdir().unwrap();
    let down = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&kube.url(), &format!("http://{closed}"));
    let down_kc = down_dir.path().join("kubeconfig");
    std::fs::write(&down_kc, down).unwrap();
    let out = run(
        &plugin,
        &[
            "status",
            "orders",
            "--kubeconfig",
            down_kc.to_str().unwrap(),
            "--timeout",
            "2s",
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: API server http://{closed}/ unreachable")),
        "{stderr}"
    );

    // A kubeconfig that does not exist: exit code 3, one line naming it.
    let out = run(
        &plugin,
        &[
            "status",
            "orders",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with("error: kubeconfig: /nonexistent/kubeconfig"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Usage errors are clap's: exit code 2.
    let out = run(&plugin, &["status"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("kubectl shardline status"),
        "{}",
        text(&out.stderr)
    );
}
