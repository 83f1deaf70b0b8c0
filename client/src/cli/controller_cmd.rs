//! `shardline controller status|join|leave|move|split|query` and
//! `shardline config watch`: the shard controller from the command line,
//! through [`ControllerClient`].
//!
//! The controller's members are found with `--controllers ADDR,...`, else
//! `$SHARDLINE_CONTROLLERS`, else the `controllers` of a running
//! playground's file, else the well-known loopback ports
//! [`DEFAULT_CONTROLLERS`] (the `shard-controller` and playground defaults).
//!
//! # JSON documents (`--output json`)
//! - a config (`join`, `leave`, `move`, `split`, `query`, and each line of
//!   `config watch`): `{"num": 4, "partitioning": "hash", "groups":
//!   [{"gid": 1, "addresses": ["..."]}], "ranges": [{"id": 1, "start":
//!   "hex", "end": "hex", "epoch": 0, "gid": 1}]}` — range bounds are
//!   lower-case hex of the routing key, `""` for an unbounded end;
//! - `controller status`: `{"leader": {"id": 1, "address": "..."} | null,
//!   "term": 3, "members": [{"id": 1, "address": "...", "role": "leader" |
//!   "follower" | "learner"}], "latest": <config>, "groups": [{"gid": 1,
//!   "range_count": 8, "ops_per_sec": 0.0, "bytes": 0, "report_age_secs":
//!   1.5 | null}]}`.
//!
//! `config watch` prints one line per config (one JSON document per line in
//! JSON mode) as they are made, until Ctrl-C or `--count` configs.

use std::path::Path;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shardline_proto::pb;
use shardline_proto::shardmap::Config;

use super::output::{human_bytes, table};
use super::{Context, OutputFormat, Report};
use crate::controller::{ControllerClient, GroupSpec};
use crate::endpoints;

/// Addresses of a default local 3-member controller.
pub const DEFAULT_CONTROLLERS: [&str; 3] = ["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"];
/// Environment variable holding a comma-separated controller list.
pub const ENV_CONTROLLERS: &str = "SHARDLINE_CONTROLLERS";

/// Where the controller is.
#[derive(Debug, Clone, Args)]
pub struct ControllerTarget {
    /// Controller member addresses, comma separated (default:
    /// $SHARDLINE_CONTROLLERS, then a running playground, then
    /// 127.0.0.1:7301,7302,7303).
    #[arg(long, global = true, value_name = "ADDR,...")]
    pub controllers: Option<String>,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub target: ControllerTarget,
    #[command(subcommand)]
    pub command: ControllerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    /// Members, leader, term, latest config and per-group load.
    Status,
    /// Add groups and rebalance: `join 1=host:port,host:port 2=host:port`.
    Join {
        /// `GID=ADDR[,ADDR...]`, one per group.
        #[arg(required = true, value_name = "GID=ADDR,...")]
        groups: Vec<String>,
    },
    /// Remove groups; their ranges move to the others.
    Leave {
        #[arg(required = true, value_name = "GID")]
        gids: Vec<u64>,
    },
    /// Give one range to one group.
    Move { range_id: u64, gid: u64 },
    /// Split a range at a routing key: `0x` + hex for bytes (hash mode keys
    /// are 8 bytes), otherwise the text's bytes.
    Split { range_id: u64, key: String },
    /// Show config NUM, or the latest.
    Query { num: Option<u64> },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub target: ControllerTarget,
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every config after `--from` as it is made, in order.
    Watch {
        /// Start after this config number (0: from the first config).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many configs (default: run until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
    },
}

impl ControllerTarget {
    /// The controller endpoints by precedence: flag, env, playground file,
    /// defaults.
    pub fn endpoints(&self) -> anyhow::Result<Vec<String>> {
        let env = std::env::var(ENV_CONTROLLERS).ok();
        self.endpoints_from(env.as_deref(), &endpoints::shardline_home())
    }

    fn endpoints_from(&self, env: Option<&str>, home: &Path) -> anyhow::Result<Vec<String>> {
        for list in [self.controllers.as_deref(), env].into_iter().flatten() {
            let list = endpoints::parse_list(list);
            if !list.is_empty() {
                return Ok(list);
            }
        }
        let file = endpoints::read_playground_file(&endpoints::playground_path(home))?;
        if let Some(f) = file.filter(|f| !f.controllers.is_empty()) {
            return Ok(f.controllers);
        }
        Ok(DEFAULT_CONTROLLERS.iter().map(|s| s.to_string()).collect())
    }

    async fn client(&self, ctx: &Context) -> anyhow::Result<ControllerClient> {
        Ok(ControllerClient::connect(self.endpoints()?, ctx.client_options()).await?)
    }
}

/// Parses `GID=ADDR[,ADDR...]`.
fn parse_group(s: &str) -> anyhow::Result<GroupSpec> {
    let (gid, addrs) = s
        .split_once('=')
        .with_context(|| format!("{s:?} is not GID=ADDR[,ADDR...]"))?;
    let gid: u64 = gid
        .trim()
        .parse()
        .with_context(|| format!("{gid:?} is not a group id"))?;
    let addrs: Vec<String> = addrs
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    Ok((gid, addrs))
}

/// `0x` + hex is bytes; anything else is its UTF-8 bytes.
fn parse_key(s: &str) -> anyhow::Result<Vec<u8>> {
    let Some(hex) = s.strip_prefix("0x") else {
        return Ok(s.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        bail!("hex key {s:?} has an odd number of digits");
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).with_context(|| format!("{s:?} is not hex"))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON document of a config.
pub fn config_json(c: &Config) -> Value {
    json!({
        "num": c.num,
        "partitioning": c.mode.as_str(),
        "groups": c.groups.iter().map(|(gid, a)| json!({"gid": gid, "addresses": a})).collect::<Vec<_>>(),
        "ranges": c.ranges.iter().map(|r| json!({
            "id": r.id, "start": hex(&r.start), "end": hex(&r.end), "epoch": r.epoch, "gid": r.gid,
        })).collect::<Vec<_>>(),
    })
}

/// A routing-key bound for people: hex in hash mode, the key in range mode,
/// `-` when unbounded.
fn bound(c: &Config, b: &[u8]) -> String {
    match (b.is_empty(), c.mode.is_ordered()) {
        (true, _) => "-".into(),
        (false, true) => human_bytes(b),
        (false, false) => hex(b),
    }
}

/// A config for people: summary line, groups, ranges.
pub fn config_human(c: &Config) -> String {
    let counts = c.range_counts();
    let mut out = format!(
        "config {} ({}, {} groups, {} ranges)\n",
        c.num,
        c.mode,
        c.groups.len(),
        c.ranges.len()
    );
    if !c.groups.is_empty() {
        let rows: Vec<Vec<String>> = c
            .groups
            .iter()
            .map(|(gid, a)| {
                vec![
                    gid.to_string(),
                    counts.get(gid).copied().unwrap_or(0).to_string(),
                    a.join(","),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["GID", "RANGES", "ADDRESSES"], &rows));
    }
    if !c.ranges.is_empty() {
        let rows: Vec<Vec<String>> = c
            .ranges
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.gid.to_string(),
                    r.epoch.to_string(),
                    bound(c, &r.start),
                    bound(c, &r.end),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["RANGE", "GID", "EPOCH", "START", "END"], &rows));
    }
    out
}

fn config_report(c: &Config) -> Report {
    Report::new(config_human(c), config_json(c))
}

fn status_report(s: &pb::ClusterStatusResponse) -> anyhow::Result<Report> {
    let latest = s
        .latest
        .clone()
        .map(Config::try_from)
        .transpose()
        .context("malformed latest config")?;
    let leader = s
        .leader_id
        .and_then(|id| s.members.iter().find(|m| m.id == id));
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| json!({"id": m.id, "address": m.address, "role": m.role}))
        .collect();
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|g| {
            json!({"gid": g.gid, "range_count": g.range_count, "ops_per_sec": g.ops_per_sec,
                   "bytes": g.bytes, "report_age_secs": g.report_age_secs})
        })
        .collect();
    let json = json!({
        "leader": leader.map(|m| json!({"id": m.id, "address": m.address})),
        "term": s.term,
        "members": members,
        "latest": latest.as_ref().map(config_json),
        "groups": groups,
    });
    let mut human = match leader {
        Some(l) => format!(
            "controller: leader {} at {}, term {}\n\n",
            l.id, l.address, s.term
        ),
        None => format!("controller: no leader known, term {}\n\n", s.term),
    };
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| vec![m.id.to_string(), m.address.clone(), m.role.clone()])
        .collect();
    human.push_str(&table(&["ID", "ADDRESS", "ROLE"], &rows));
    if let Some(c) = &latest {
        human.push_str(&format!(
            "\nlatest config {} ({}, {} groups, {} ranges)\n",
            c.num,
            c.mode,
            c.groups.len(),
            c.ranges.len()
        ));
    }
    if !s.groups.is_empty() {
        let rows: Vec<Vec<String>> = s
            .groups
            .iter()
            .map(|g| {
                let age = g
                    .report_age_secs
                    .map_or("never".to_string(), |a| format!("{a:.1}s ago"));
                vec![
                    g.gid.to_string(),
                    g.range_count.to_string(),
                    format!("{:.1}", g.ops_per_sec),
                    g.bytes.to_string(),
                    age,
                ]
            })
            .collect();
        human.push('\n');
        human.push_str(&table(
            &["GID", "RANGES", "OPS/S", "BYTES", "REPORTED"],
            &rows,
        ));
    }
    Ok(Report::new(human, json))
}

/// Runs `shardline controller ...`.
pub async fn controller(ctx: &Context, args: ControllerArgs) -> anyhow::Result<Report> {
    let client = args.target.client(ctx).await?;
    let config = match args.command {
        ControllerCommand::Status => {
            return status_report(&client.status().await.context("controller status")?)
        }
        ControllerCommand::Join { groups } => {
            let groups = groups
                .iter()
                .map(|g| parse_group(g))
                .collect::<anyhow::Result<Vec<_>>>()?;
            client.join(groups).await.context("join")?
        }
        ControllerCommand::Leave { gids } => client.leave(&gids).await.context("leave")?,
        ControllerCommand::Move { range_id, gid } => {
            client.move_range(range_id, gid).await.context("move")?
        }
        ControllerCommand::Split { range_id, key } => client
            .split(range_id, parse_key(&key)?)
            .await
            .context("split")?,
        ControllerCommand::Query { num } => client.query(num).await.context("query")?,
    };
    Ok(config_report(&config))
}

/// Runs `shardline config watch`, printing as configs arrive.
pub async fn config(ctx: &Context, args: ConfigArgs) -> anyhow::Result<Report> {
    let ConfigCommand::Watch { from, count } = args.command;
    let client = args.target.client(ctx).await?;
    let mut watch = client.watch(from);
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let c = watch.next().await.context("config watch")?;
        let line = match ctx.output {
            OutputFormat::Json => config_json(&c).to_string(),
            OutputFormat::Human => {
                let groups: Vec<String> = c
                    .range_counts()
                    .iter()
                    .map(|(g, n)| format!("{g}:{n}"))
                    .collect();
                format!(
                    "config {}: {} groups, {} ranges (ranges per group {})",
                    c.num,
                    c.groups.len(),
                    c.ranges.len(),
                    groups.join(" ")
                )
            }
        };
        println!("{line}");
        printed += 1;
    }
    // Already printed line by line.
    Ok(Report::new("", Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::keyspace::{initial_hash_ranges, PartitionMode};

    #[test]
    fn arguments_parse() {
        assert_eq!(
            parse_group("3=a:1, b:2").unwrap(),
            (3, vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert!(parse_group("a:1").is_err());
        assert!(parse_group("x=a:1").is_err());
        assert_eq!(parse_key("0x00ff").unwrap(), vec![0, 255]);
        assert_eq!(parse_key("m").unwrap(), b"m".to_vec());
        assert!(parse_key("0x0").is_err());
        assert!(parse_key("0xzz").is_err());
        let home = tempfile::tempdir().unwrap();
        let flag = ControllerTarget {
            controllers: Some("a:1, http://b:2".into()),
        };
        let none = ControllerTarget { controllers: None };
        let eps = |t: &ControllerTarget, env| t.endpoints_from(env, home.path()).unwrap();
        assert_eq!(eps(&flag, Some("c:3")), vec!["a:1", "b:2"]);
        assert_eq!(eps(&none, Some("c:3")), vec!["c:3"]);
        assert_eq!(eps(&none, None), DEFAULT_CONTROLLERS.to_vec());
        let file = serde_json::json!({
            "endpoints": ["g:1"], "controllers": ["p:1", "p:2"], "data_dir": "/d", "pid": 1,
        });
        let path = endpoints::playground_path(home.path());
        std::fs::write(&path, file.to_string()).unwrap();
        assert_eq!(eps(&none, None), vec!["p:1", "p:2"]);
        assert_eq!(eps(&none, Some("c:3")), vec!["c:3"]);
    }

    #[test]
    fn configs_render_in_both_formats() {
        let mut c = Config::empty(PartitionMode::Hash);
        c.num = 2;
        c.groups.insert(1, vec!["a:1".into()]);
        c.ranges = initial_hash_ranges(2, 1);
        let j = config_json(&c);
        assert_eq!(j["num"], 2);
        assert_eq!(j["partitioning"], "hash");
        assert_eq!(j["groups"][0]["addresses"][0], "a:1");
        assert_eq!(j["ranges"][0]["start"], "");
        assert_eq!(j["ranges"][0]["end"], "7fffffffffffffff");
        let h = config_human(&c);
        assert!(h.starts_with("config 2 (hash, 1 groups, 2 ranges)"), "{h}");
        assert!(h.contains("7fffffffffffffff"), "{h}");
    }
}
