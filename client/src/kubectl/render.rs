//! How `kubectl shardline status` prints: the resource's status and the
//! controller's live view side by side, for people, and one JSON document
//! for scripts. Pure functions of their inputs.
//!
//! # JSON document (`-o json`), stable
//! ```text
//! {
//!   "resource": {"name", "namespace", "generation", "observedGeneration",
//!                "phase", "conditions": [{"type", "status", "reason",
//!                "message", "lastTransitionTime"}], "partitioning":
//!                {"mode", "initialRanges"} | null, "controller": {"replicas",
//!                "readyReplicas", "leaderId", "leader", "term", "reachable"}
//!                | null, "groups": [{"gid", "state", "replicas",
//!                "readyReplicas", "rangeCount", "leaderId", "leader",
//!                "keyCount", "opsPerSec"}], "configNum", "rangeCount",
//!                "rangesMoving", "hotRanges": [{"gid", "rangeId", "start",
//!                "end", "opsPerSec"}], "readyGroups"},
//!   "live": {"source", "leader": {"id", "address", "role"} | null, "term",
//!            "members": [{"id", "address", "role"}], "configNum",
//!            "partitioning", "rangeCount", "groups": [{"gid", "addresses",
//!            "rangeCount", "opsPerSec", "bytes", "reportAgeSecs"}],
//!            "hotOpsPerSec", "hotRanges": [{"gid", "rangeId", "start", "end",
//!            "opsPerSec", "keys"}]} | null,
//!   "liveError": "why the live view is missing" | null
//! }
//! ```
//! Fields the status does not have yet are `null` (lists: `[]`); exactly one
//! of `live` and `liveError` is `null`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{json, Value};

use super::error::LiveError;
use super::live::{LiveGroup, LiveView};
use super::resource::{GroupHealth, ShardedCluster};
use crate::cli::output::table;
use crate::cli::Report;

/// The report of one `status` run: both renderings, exit code 0.
pub fn report(cluster: &ShardedCluster, live: Result<&LiveView, &LiveError>) -> Report {
    Report::new(human(cluster, live), document(cluster, live))
}

/// The `-o json` document.
pub fn document(cluster: &ShardedCluster, live: Result<&LiveView, &LiveError>) -> Value {
    json!({
        "resource": cluster,
        "live": live.ok(),
        "liveError": live.err().map(ToString::to_string),
    })
}

/// `-` for a missing value.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// An address for people: the pod name (first DNS label) of a cluster DNS
/// name such as `kv-g1-0.kv-g1.db.svc:7401`; IP addresses stay whole.
pub fn short_address(address: &str) -> String {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_matches(['[', ']']);
    if host.parse::<IpAddr>().is_ok() || !host.contains('.') {
        return address.to_string();
    }
    host.split('.').next().unwrap_or(host).to_string()
}

/// A leader for people: `pod (id N)`, `id N`, or `-`.
fn leader_text(id: Option<i64>, address: Option<&str>) -> String {
    match (id, address) {
        (Some(id), Some(a)) => format!("{} (id {id})", short_address(a)),
        (Some(id), None) => format!("id {id}"),
        (None, Some(a)) => short_address(a),
        (None, None) => "-".into(),
    }
}

/// The human rendering.
pub fn human(cluster: &ShardedCluster, live: Result<&LiveView, &LiveError>) -> String {
    let s = &cluster.status;
    let mut out = format!("ShardedCluster {}/{}\n", cluster.namespace, cluster.name);
    let generation = match (cluster.generation, s.observed_generation) {
        (Some(g), Some(o)) if g != o => {
            format!("{g} (status describes generation {o}; the operator has not caught up)")
        }
        (g, _) => or_dash(g),
    };
    let config = match s.config_num {
        Some(num) => {
            let mode = s
                .partitioning
                .as_ref()
                .and_then(|p| p.mode.as_deref())
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!(
                "{num}{mode}, {} ranges, {} moving",
                or_dash(s.range_count),
                or_dash(s.ranges_moving)
            )
        }
        None => "-".into(),
    };
    let mut lines = vec![
        ("Generation:", generation),
        ("Phase:", s.phase.clone().unwrap_or_else(|| "-".into())),
        ("Config:", config),
        (
            "Ready groups:",
            format!("{} of {}", s.ready_groups, s.groups.len()),
        ),
    ];
    if let Some(c) = &s.controller {
        lines.push((
            "Controller:",
            format!(
                "{}/{} ready, leader {}, term {}{}",
                c.ready_replicas,
                c.replicas,
                leader_text(c.leader_id, c.leader.as_deref()),
                or_dash(c.term),
                if c.reachable {
                    ""
                } else {
                    " (the operator could not reach it)"
                }
            ),
        ));
    } else {
        lines.push(("Controller:", "-".into()));
    }
    for (label, value) in lines {
        out.push_str(&format!("{label:<14}{value}\n"));
    }

    if !s.conditions.is_empty() {
        let rows: Vec<Vec<String>> = s
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &rows));
    }

    out.push('\n');
    match live {
        Ok(v) => {
            let config = v.config_num.map_or_else(
                || "no config yet".to_string(),
                |n| format!("config {n}, {} ranges", v.range_count),
            );
            let leader = v.leader.as_ref().map_or_else(
                || "no leader known".to_string(),
                |l| format!("leader {} (id {})", short_address(&l.address), l.id),
            );
            out.push_str(&format!(
                "Live view from {}: {leader}, term {}, {config}\n",
                v.source, v.term
            ));
            if !v.members.is_empty() {
                let rows: Vec<Vec<String>> = v
                    .members
                    .iter()
                    .map(|m| vec![m.id.to_string(), short_address(&m.address), m.role.clone()])
                    .collect();
                out.push_str(&table(&["ID", "MEMBER", "ROLE"], &rows));
            }
        }
        Err(e) => out.push_str(&format!("Live view unavailable: {e}\n")),
    }

    let groups = group_rows(&s.groups, live.ok().map(|v| v.groups.as_slice()));
    if !groups.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "GID",
                "STATE",
                "READY",
                "LEADER",
                "RANGES",
                "KEYS",
                "OPS/S",
                "LIVE RANGES",
                "LIVE OPS/S",
                "REPORTED",
            ],
            &groups,
        ));
    }
    // Hot ranges: the controller's current list when there is a live view,
    // else the one the operator last wrote.
    let (title, hot) = match live {
        Ok(v) => (
            format!("Hot ranges (live, above {:.1} ops/s):", v.hot_ops_per_sec),
            v.hot_ranges
                .iter()
                .map(|h| hot_row(h.range_id, h.gid, &h.start, &h.end, h.ops_per_sec))
                .collect::<Vec<_>>(),
        ),
        Err(_) => (
            "Hot ranges (from the status):".to_string(),
            s.hot_ranges
                .iter()
                .map(|h| hot_row(h.range_id, h.gid, &h.start, &h.end, h.ops_per_sec))
                .collect(),
        ),
    };
    if !hot.is_empty() {
        out.push('\n');
        out.push_str(&title);
        out.push('\n');
        out.push_str(&table(&["RANGE", "GID", "START", "END", "OPS/S"], &hot));
    }
    out
}

/// A hot-range row; `-` for an unbounded end.
fn hot_row<I: ToString, G: ToString>(
    range: I,
    gid: G,
    start: &str,
    end: &str,
    ops: f64,
) -> Vec<String> {
    let bound = |b: &str| {
        if b.is_empty() {
            "-".into()
        } else {
            b.to_string()
        }
    };
    vec![
        range.to_string(),
        gid.to_string(),
        bound(start),
        bound(end),
        format!("{ops:.1}"),
    ]
}

/// One row per group in the status or the live view, by gid. Live columns
/// are `-` without a live view or for a group the controller does not know.
fn group_rows(status: &[GroupHealth], live: Option<&[LiveGroup]>) -> Vec<Vec<String>> {
    let mut gids: BTreeSet<i64> = status.iter().map(|g| g.gid).collect();
    for g in live.unwrap_or_default() {
        gids.insert(i64::try_from(g.gid).unwrap_or(i64::MAX));
    }
    gids.into_iter()
        .map(|gid| {
            let st = status.iter().find(|g| g.gid == gid);
            let lv = live
                .unwrap_or_default()
                .iter()
                .find(|g| i64::try_from(g.gid).ok() == Some(gid));
            let mut row = vec![gid.to_string()];
            match st {
                Some(g) => row.extend([
                    g.state.clone(),
                    format!("{}/{}", g.ready_replicas, g.replicas),
                    leader_text(g.leader_id, g.leader.as_deref()),
                    g.range_count.to_string(),
                    or_dash(g.key_count),
                    or_dash(g.ops_per_sec.map(|o| format!("{o:.1}"))),
                ]),
                None => row.extend(std::iter::repeat_n("-".to_string(), 6)),
            }
            match lv {
                Some(g) => row.extend([
                    g.range_count.to_string(),
                    format!("{:.1}", g.ops_per_sec),
                    g.report_age_secs
                        .map_or_else(|| "never".to_string(), |a| format!("{a:.1}s ago")),
                ]),
                None => row.extend(std::iter::repeat_n("-".to_string(), 3)),
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubectl::live::{LiveHotRange, LiveMember};
    use crate::kubectl::resource::{
        Condition, ControllerHealth, HotRange, Partitioning, ResourceStatus,
    };

    /// The cells of the row starting with `first` in the table whose header
    /// starts with `header`.
    fn table_row(text: &str, header: &str, first: &str) -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with(header))
            .take_while(|l| !l.is_empty())
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in table {header}: {text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    fn cluster() -> ShardedCluster {
        ShardedCluster {
            name: "kv".into(),
            namespace: "db".into(),
            generation: Some(3),
            controller_replicas: Some(3),
            status: ResourceStatus {
                observed_generation: Some(3),
                phase: Some("Running".into()),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: "AllGroupsReady".into(),
                    message: "2/2 groups ready".into(),
                    last_transition_time: Some("2025-01-01T00:00:00Z".into()),
                }],
                partitioning: Some(Partitioning {
                    mode: Some("hash".into()),
                    initial_ranges: Some(16),
                }),
                controller: Some(ControllerHealth {
                    replicas: 3,
                    ready_replicas: 3,
                    leader_id: Some(2),
                    leader: Some("kv-ctrl-1.kv-ctrl.db.svc:7400".into()),
                    term: Some(4),
                    reachable: true,
                }),
                groups: vec![
                    GroupHealth {
                        gid: 1,
                        state: "Serving".into(),
                        replicas: 3,
                        ready_replicas: 3,
                        range_count: 8,
                        leader_id: Some(1),
                        leader: Some("kv-g1-0.kv-g1.db.svc:7401".into()),
                        key_count: Some(120),
                        ops_per_sec: Some(3.0),
                    },
                    GroupHealth {
                        gid: 2,
                        state: "Joining".into(),
                        replicas: 3,
                        ready_replicas: 2,
                        ..GroupHealth::default()
                    },
                ],
                config_num: Some(7),
                range_count: Some(16),
                ranges_moving: Some(0),
                hot_ranges: vec![HotRange {
                    gid: 1,
                    range_id: 4,
                    start: "4000000000000000".into(),
                    end: String::new(),
                    ops_per_sec: 950.0,
                }],
                ready_groups: 1,
            },
        }
    }

    fn live() -> LiveView {
        let member = |id: u64, role: &str| LiveMember {
            id,
            address: format!("kv-ctrl-{}.kv-ctrl.db.svc:7400", id - 1),
            role: role.into(),
        };
        LiveView {
            source: "pod kv-ctrl-0 (port-forward)".into(),
            leader: Some(member(2, "leader")),
            term: 4,
            members: vec![member(1, "follower"), member(2, "leader")],
            config_num: Some(8),
            partitioning: Some("hash".into()),
            range_count: 16,
            groups: vec![
                LiveGroup {
                    gid: 1,
                    addresses: vec!["a:1".into()],
                    range_count: 9,
                    ops_per_sec: 2.5,
                    bytes: 10,
                    report_age_secs: Some(1.5),
                },
                LiveGroup {
                    gid: 5,
                    addresses: vec![],
                    range_count: 7,
                    ops_per_sec: 0.0,
                    bytes: 0,
                    report_age_secs: None,
                },
            ],
            hot_ops_per_sec: 500.0,
            hot_ranges: vec![LiveHotRange {
                gid: 5,
                range_id: 11,
                start: String::new(),
                end: "1000".into(),
                ops_per_sec: 620.5,
                keys: 3,
            }],
        }
    }

    #[test]
    fn addresses_shorten_to_pod_names() {
        assert_eq!(short_address("kv-g1-0.kv-g1.db.svc:7401"), "kv-g1-0");
        assert_eq!(short_address("127.0.0.1:7301"), "127.0.0.1:7301");
        assert_eq!(short_address("[::1]:7301"), "[::1]:7301");
        assert_eq!(short_address("localhost:7301"), "localhost:7301");
        assert_eq!(
            leader_text(Some(2), Some("kv-ctrl-1.kv-ctrl.db.svc:7400")),
            "kv-ctrl-1 (id 2)"
        );
        assert_eq!(leader_text(Some(2), None), "id 2");
        assert_eq!(leader_text(None, None), "-");
    }

    #[test]
    fn human_shows_resource_and_live_side_by_side() {
        let (c, v) = (cluster(), live());
        let h = human(&c, Ok(&v));
        assert!(h.starts_with("ShardedCluster db/kv\n"), "{h}");
        assert!(h.contains("Phase:        Running\n"), "{h}");
        assert!(
            h.contains("Config:       7 (hash), 16 ranges, 0 moving\n"),
            "{h}"
        );
        assert!(h.contains("Ready groups: 1 of 2\n"), "{h}");
        assert!(
            h.contains("Controller:   3/3 ready, leader kv-ctrl-1 (id 2), term 4\n"),
            "{h}"
        );
        assert!(
            h.contains("Ready      True    AllGroupsReady  2/2 groups ready"),
            "{h}"
        );
        assert!(
            h.contains(
                "Live view from pod kv-ctrl-0 (port-forward): leader kv-ctrl-1 (id 2), term 4, config 8, 16 ranges\n"
            ),
            "{h}"
        );
        assert_eq!(table_row(&h, "ID", "2"), ["2", "kv-ctrl-1", "leader"]);
        let row = |gid: &str| table_row(&h, "GID", gid);
        assert_eq!(
            row("1"),
            [
                "1", "Serving", "3/3", "kv-g1-0", "(id", "1)", "8", "120", "3.0", "9", "2.5",
                "1.5s", "ago"
            ]
        );
        assert_eq!(
            row("2"),
            ["2", "Joining", "2/3", "-", "0", "-", "-", "-", "-", "-"]
        );
        assert_eq!(
            row("5"),
            ["5", "-", "-", "-", "-", "-", "-", "7", "0.0", "never"]
        );
        assert!(!h.contains("unavailable"), "{h}");
        assert!(
            h.contains("\nHot ranges (live, above 500.0 ops/s):\nRANGE "),
            "{h}"
        );
        assert_eq!(
            table_row(&h, "RANGE", "11"),
            ["11", "5", "-", "1000", "620.5"]
        );
        assert!(
            !h.contains("4000000000000000"),
            "the status's list gives way to the live one: {h}"
        );
    }

    #[test]
    fn human_without_live_view_says_why() {
        let mut c = cluster();
        c.generation = Some(5);
        c.status.controller.as_mut().unwrap().reachable = false;
        let e = LiveError::Call {
            target: "controller 10.0.0.1:7400".into(), // as `live::direct` names it
            reason: "connection refused".into(),
        };
        let h = human(&c, Err(&e));
        assert!(
            h.contains("Live view unavailable: controller 10.0.0.1:7400: connection refused\n"),
            "{h}"
        );
        assert!(
            h.contains(
                "Generation:   5 (status describes generation 3; the operator has not caught up)"
            ),
            "{h}"
        );
        assert!(h.contains("(the operator could not reach it)"), "{h}");
        assert!(h.contains("\nHot ranges (from the status):\nRANGE "), "{h}");
        assert_eq!(
            table_row(&h, "RANGE", "4"),
            ["4", "1", "4000000000000000", "-", "950.0"]
        );
        let row1 = table_row(&h, "GID", "1");
        assert_eq!(
            row1[row1.len() - 3..],
            ["-", "-", "-"],
            "no live columns: {h}"
        );
    }

    #[test]
    fn human_of_a_resource_without_status() {
        let c = ShardedCluster {
            status: ResourceStatus::default(),
            ..cluster()
        };
        let h = human(&c, Err(&LiveError::NoPods));
        assert!(h.contains("Phase:        -\n"), "{h}");
        assert!(h.contains("Config:       -\n"), "{h}");
        assert!(h.contains("Controller:   -\n"), "{h}");
        assert!(!h.contains("GID"), "no groups, no tables: {h}");
    }

    #[test]
    fn json_has_a_stable_shape() {
        let (c, v) = (cluster(), live());
        let d = document(&c, Ok(&v));
        assert_eq!(d["resource"]["name"], "kv");
        assert_eq!(d["resource"]["namespace"], "db");
        assert_eq!(d["resource"]["phase"], "Running");
        assert_eq!(d["resource"]["configNum"], 7);
        assert_eq!(d["resource"]["readyGroups"], 1);
        assert_eq!(d["resource"]["controller"]["leaderId"], 2);
        assert_eq!(d["resource"]["groups"][0]["keyCount"], 120);
        assert_eq!(d["resource"]["groups"][1]["keyCount"], Value::Null);
        assert_eq!(d["resource"]["hotRanges"][0]["rangeId"], 4);
        assert_eq!(d["resource"]["conditions"][0]["type"], "Ready");
        assert_eq!(d["live"]["source"], "pod kv-ctrl-0 (port-forward)");
        assert_eq!(d["live"]["leader"]["id"], 2);
        assert_eq!(d["live"]["configNum"], 8);
        assert_eq!(d["live"]["groups"][1]["reportAgeSecs"], Value::Null);
        assert_eq!(d["live"]["hotOpsPerSec"], 500.0);
        assert_eq!(d["live"]["hotRanges"][0]["rangeId"], 11);
        assert_eq!(d["live"]["hotRanges"][0]["end"], "1000");
        assert_eq!(d["liveError"], Value::Null);
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["live", "liveError", "resource"]);

        let d = document(&c, Err(&LiveError::NoPods));
        assert_eq!(d["live"], Value::Null);
        assert_eq!(d["liveError"], "the resource has no controller pods to ask");
    }
}
