//! The command-line flags every replicated member takes, flattened into each
//! binary's own flags (`shard-node`, `shard-controller`), and their checks.
//!
//! A member is named by `--node-id`. A new group starts from `--peers` (every
//! member lists the same set); a member added to a running group starts with
//! `--join ADDR` and asks that member's leader to add it, or with `--seeds`
//! and waits to be added (by the operator). A restarted member needs none of
//! them: it recovers from `--data-dir`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::ApiError;

#[derive(Debug, Clone, Args)]
pub struct RaftArgs {
    /// This member's id, unique within its Raft group (> 0).
    #[arg(long, env = "SHARDLINE_NODE_ID")]
    pub node_id: u64,

    /// Address other members and clients use to reach this one; defaults to
    /// `--listen` (set it when listening on 0.0.0.0).
    #[arg(long, env = "SHARDLINE_ADVERTISE")]
    pub advertise: Option<String>,

    /// Directory holding this member's redb file.
    #[arg(long, env = "SHARDLINE_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Initial members of a new group: `1=host:port,2=host:port,...`.
    #[arg(long, env = "SHARDLINE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Join a running group through this member (any member; the leader is
    /// found by following NotLeader hints).
    #[arg(long, env = "SHARDLINE_JOIN", conflicts_with = "peers")]
    pub join: Option<String>,

    /// Members of a running group to ask, for a member that waits to be
    /// added (neither `--peers` nor `--join`): if it starts without state
    /// and the group's leader has entries it acknowledged (its directory
    /// was wiped), it has itself removed before it takes Raft traffic, to
    /// be added back afresh.
    #[arg(long, env = "SHARDLINE_SEEDS", value_delimiter = ',', conflicts_with_all = ["peers", "join"])]
    pub seeds: Vec<String>,

    /// Raft heartbeat interval.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// Lower bound of the randomized election timeout (upper bound is 2x).
    /// A follower that has seen a leader waits the leader lease (the upper
    /// bound) plus a random timeout before it campaigns, so with 300ms a dead
    /// leader is replaced after 0.9-1.2 s.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pub election_timeout: Duration,

    /// Build a snapshot and compact the log every this many applied entries.
    #[arg(long, default_value_t = 50_000)]
    pub snapshot_every: u64,

    /// Log entries kept behind a snapshot for slow followers.
    #[arg(long, default_value_t = 5_000)]
    pub keep_logs: u64,

    /// Time allowed for in-flight requests to finish on shutdown.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

fn bad(flag: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::BadFlag {
        flag,
        reason: reason.into(),
    }
}

impl RaftArgs {
    /// The address this member advertises to peers and clients.
    pub fn advertise_addr(&self, listen: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| listen.to_string())
    }

    /// Parses `--peers` into `id -> address`, checking this node is listed.
    pub fn initial_members(&self) -> Result<BTreeMap<u64, String>, ApiError> {
        let mut out = BTreeMap::new();
        for p in &self.peers {
            let (id, addr) = p
                .split_once('=')
                .ok_or_else(|| bad("--peers", format!("{p:?} is not ID=HOST:PORT")))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| bad("--peers", format!("{id:?} is not a node id")))?;
            if id == 0 || addr.trim().is_empty() {
                return Err(bad(
                    "--peers",
                    format!("{p:?}: id must be > 0 and address non-empty"),
                ));
            }
            if out.insert(id, addr.trim().to_string()).is_some() {
                return Err(bad("--peers", format!("node {id} listed twice")));
            }
        }
        if !out.is_empty() && !out.contains_key(&self.node_id) {
            return Err(bad(
                "--peers",
                format!("this node ({}) is not among the peers", self.node_id),
            ));
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        if self.node_id == 0 {
            return Err(bad("--node-id", "must be > 0"));
        }
        if self.heartbeat.is_zero() || self.election_timeout <= self.heartbeat * 2 {
            return Err(bad(
                "--election-timeout",
                "must exceed twice the heartbeat interval",
            ));
        }
        self.initial_members()?;
        Ok(())
    }

    /// The openraft configuration these flags describe.
    pub fn raft_config(&self, cluster_name: String) -> Result<openraft::Config, ApiError> {
        let min = self.election_timeout.as_millis() as u64;
        let cfg = openraft::Config {
            cluster_name,
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: min,
            election_timeout_max: min * 2,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            max_payload_entries: 1000,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| bad("raft config", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        raft: RaftArgs,
    }

    fn args(extra: &[&str]) -> RaftArgs {
        let mut v = vec!["member", "--node-id", "2", "--data-dir", "/tmp/x"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).expect("parse").raft
    }

    #[test]
    fn peers_parse_and_must_include_self() {
        let a = args(&["--peers", "1=127.0.0.1:1,2=127.0.0.1:2"]);
        assert_eq!(a.initial_members().unwrap().len(), 2);
        assert!(args(&["--peers", "1=127.0.0.1:1"]).validate().is_err());
        assert!(args(&["--peers", "x=127.0.0.1:1"]).validate().is_err());
        assert!(args(&["--peers", "2=a,2=b"]).validate().is_err());
        assert!(args(&[]).validate().is_ok());
        let join = ["--join", "a:1", "--peers", "2=a:2"];
        assert!(Cli::try_parse_from(
            ["m", "--node-id", "2", "--data-dir", "x"]
                .iter()
                .chain(&join)
        )
        .is_err());
    }

    #[test]
    fn election_timeout_must_exceed_heartbeats() {
        assert!(
            args(&["--heartbeat", "100ms", "--election-timeout", "150ms"])
                .validate()
                .is_err()
        );
        let cfg = args(&[]).raft_config("c".into()).unwrap();
        assert_eq!(cfg.election_timeout_max, 2 * cfg.election_timeout_min);
    }
}
