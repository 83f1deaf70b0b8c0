//! Command-line flags of `shard-node` and their validation.
//!
//! The Raft flags (`--node-id`, `--peers`/`--join`, `--data-dir`, timing and
//! snapshot knobs) are the shared [`RaftArgs`]; this adds the group id, the
//! listen addresses, the partitioning mode and where load is reported.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use shardline_proto::keyspace::PartitionMode;
use shardline_raft::args::RaftArgs;

use crate::error::NodeError;
use shardline_raft::ApiError;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "shard-node",
    version,
    about = "One member of a Shardline replica group"
)]
pub struct NodeArgs {
    #[command(flatten)]
    pub raft: RaftArgs,

    /// The replica group this member belongs to.
    #[arg(long, env = "SHARDLINE_GROUP_ID", default_value_t = 1)]
    pub group_id: u64,

    /// gRPC listen address (KV, admin and Raft services).
    #[arg(long, env = "SHARDLINE_LISTEN", default_value = "127.0.0.1:7401")]
    pub listen: SocketAddr,

    /// HTTP listen address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SHARDLINE_HTTP_LISTEN", default_value = "127.0.0.1:7501")]
    pub http_listen: SocketAddr,

    /// Partitioning mode of the cluster, fixed at creation.
    #[arg(long, env = "SHARDLINE_PARTITIONING", default_value = "hash")]
    pub partitioning: PartitionMode,

    /// The shard controller's members (`host:port,...`). When set, the
    /// group's leader reports per-range load to it (`ReportLoad`).
    #[arg(long, env = "SHARDLINE_CONTROLLER", value_delimiter = ',')]
    pub controller: Vec<String>,

    /// How often the leader reports load; also the length of the sliding
    /// window its ops/s are measured over.
    #[arg(long, env = "SHARDLINE_LOAD_REPORT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub load_report_interval: Duration,

    /// Deadline of each call to the controller.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub controller_timeout: Duration,

    /// How long a client session may stay unused before its exactly-once
    /// results are forgotten (on every replica alike, by the leader's
    /// clock); a retry arriving later applies again. Keep it far above any
    /// client's retry budget. `0s` keeps sessions forever.
    #[arg(long, env = "SHARDLINE_SESSION_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
}

/// Shortest session TTL accepted: the client library retries a write for
/// seconds, and a session must outlive every retry of its writes.
const MIN_SESSION_TTL: Duration = Duration::from_secs(60);

impl NodeArgs {
    /// The address this member advertises to peers and clients.
    pub fn advertise_addr(&self) -> String {
        self.raft.advertise_addr(self.listen)
    }

    pub fn validate(&self) -> Result<(), NodeError> {
        self.raft.validate()?;
        for (flag, d) in [
            ("--load-report-interval", self.load_report_interval),
            ("--controller-timeout", self.controller_timeout),
        ] {
            if d < Duration::from_millis(10) {
                return Err(ApiError::BadFlag {
                    flag,
                    reason: "must be at least 10ms".into(),
                }
                .into());
            }
        }
        if !self.session_ttl.is_zero() && self.session_ttl < MIN_SESSION_TTL {
            return Err(ApiError::BadFlag {
                flag: "--session-ttl",
                reason: format!(
                    "must be 0s (never expire) or at least {}",
                    humantime::format_duration(MIN_SESSION_TTL)
                ),
            }
            .into());
        }
        if self.controller.iter().any(|c| c.trim().is_empty()) {
            return Err(ApiError::BadFlag {
                flag: "--controller",
                reason: "an address is empty".into(),
            }
            .into());
        }
        Ok(())
    }

    /// The openraft configuration these flags describe.
    pub fn raft_config(&self) -> Result<openraft::Config, NodeError> {
        Ok(self
            .raft
            .raft_config(format!("shardline-group-{}", self.group_id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_raft_flags_flatten_into_node_flags() {
        let a = NodeArgs::try_parse_from([
            "shard-node",
            "--node-id",
            "2",
            "--data-dir",
            "/tmp/x",
            "--group-id",
            "4",
            "--peers",
            "1=127.0.0.1:1,2=127.0.0.1:2",
            "--partitioning",
            "range",
        ])
        .expect("parse");
        assert_eq!(a.raft.node_id, 2);
        assert_eq!(a.group_id, 4);
        assert_eq!(a.partitioning, PartitionMode::Range);
        assert_eq!(a.advertise_addr(), "127.0.0.1:7401");
        assert!(a.validate().is_ok());
        assert_eq!(a.raft_config().unwrap().cluster_name, "shardline-group-4");
        assert!(a.controller.is_empty());
        assert_eq!(a.load_report_interval, Duration::from_secs(10));
        assert_eq!(a.session_ttl, crate::proposer::DEFAULT_SESSION_TTL);
    }

    #[test]
    fn session_ttl_is_never_or_at_least_a_minute() {
        let parse = |ttl: &str| {
            NodeArgs::try_parse_from([
                "shard-node",
                "--node-id",
                "1",
                "--data-dir",
                "/tmp/x",
                "--session-ttl",
                ttl,
            ])
            .expect("parse")
        };
        assert_eq!(parse("10m").session_ttl, Duration::from_secs(600));
        assert!(parse("10m").validate().is_ok());
        assert!(parse("0s").validate().is_ok());
        let err = parse("5s").validate().unwrap_err().to_string();
        assert!(err.contains("--session-ttl"), "{err}");
    }

    #[test]
    fn controller_flags_parse_and_are_checked() {
        let parse = |extra: &[&str]| {
            let mut v = vec!["shard-node", "--node-id", "1", "--data-dir", "/tmp/x"];
            v.extend_from_slice(extra);
            NodeArgs::try_parse_from(v).expect("parse")
        };
        let a = parse(&[
            "--controller",
            "127.0.0.1:7301,127.0.0.1:7302",
            "--load-report-interval",
            "1s",
        ]);
        assert_eq!(a.controller, ["127.0.0.1:7301", "127.0.0.1:7302"]);
        assert_eq!(a.load_report_interval, Duration::from_secs(1));
        assert!(a.validate().is_ok());
        assert!(parse(&["--load-report-interval", "0s"]).validate().is_err());
        assert!(parse(&["--controller", "a:1,"]).validate().is_err());
    }
}
