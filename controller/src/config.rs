//! Command-line flags of `shard-controller` and their validation.
//!
//! The Raft flags (`--node-id`, `--peers`/`--join`, `--data-dir`, timing and
//! snapshot knobs) are the shared `RaftArgs`; this adds the listen
//! addresses, the cluster's fixed bootstrap parameters and the deadline of
//! requests that carry none.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use shardline_proto::keyspace::PartitionMode;
use shardline_raft::args::RaftArgs;

use crate::command::Bootstrap;
use crate::error::RunError;
use crate::hot::HotPolicy;

/// Initial ranges of a hash-partitioned cluster when `--initial-ranges` is
/// not given.
pub const DEFAULT_HASH_RANGES: u64 = 16;

/// Raft group id of the controller on the wire: no shard group uses 0, so a
/// peer address that points at a shard node is rejected.
pub const CONTROLLER_GROUP_ID: u64 = 0;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "shard-controller",
    version,
    about = "One member of the Shardline shard controller (the Raft-replicated shard map)"
)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub raft: RaftArgs,

    /// gRPC listen address (Controller, Admin and Raft services).
    #[arg(long, env = "SHARDLINE_LISTEN", default_value = "127.0.0.1:7301")]
    pub listen: SocketAddr,

    /// HTTP listen address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SHARDLINE_HTTP_LISTEN", default_value = "127.0.0.1:7311")]
    pub http_listen: SocketAddr,

    /// Partitioning mode of the cluster; fixed when the controller is first
    /// started and recorded in the data directory.
    #[arg(long, env = "SHARDLINE_PARTITIONING", default_value = "hash")]
    pub partitioning: PartitionMode,

    /// Ranges the first Join places: equal slices of the hash space in hash
    /// mode (default 16); range mode starts from 1. Fixed like
    /// `--partitioning`.
    #[arg(long, env = "SHARDLINE_INITIAL_RANGES")]
    pub initial_ranges: Option<u64>,

    /// Deadline of a request that carries no gRPC timeout (a write through
    /// Raft, a forwarded call).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// A range whose reported load is above this many operations per second
    /// is hot, unless a ClusterStatus request names its own threshold. The
    /// operator sets it from `spec.rebalancing.hotThresholdOpsPerSec`.
    #[arg(long, env = "SHARDLINE_HOT_THRESHOLD_OPS", default_value_t = 5000.0)]
    pub hot_threshold_ops: f64,

    /// A load report older than this is stale and makes no range hot (about
    /// three of the shard nodes' `--load-report-interval`).
    #[arg(long, env = "SHARDLINE_LOAD_REPORT_MAX_AGE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub load_report_max_age: Duration,
}

impl ControllerArgs {
    /// The address this member advertises to peers and clients.
    pub fn advertise_addr(&self) -> String {
        self.raft.advertise_addr(self.listen)
    }

    /// The bootstrap parameters the flags name.
    pub fn bootstrap(&self) -> Bootstrap {
        let initial_ranges = self.initial_ranges.unwrap_or(match self.partitioning {
            PartitionMode::Hash => DEFAULT_HASH_RANGES,
            PartitionMode::Range => 1,
        });
        Bootstrap {
            mode: self.partitioning,
            initial_ranges,
        }
    }

    /// How ClusterStatus judges hot ranges.
    pub fn hot_policy(&self) -> HotPolicy {
        HotPolicy {
            default_ops_per_sec: self.hot_threshold_ops,
            max_report_age: self.load_report_max_age,
        }
    }

    pub fn validate(&self) -> Result<(), RunError> {
        self.raft.validate()?;
        crate::hot::threshold(None, self.hot_threshold_ops).map_err(|e| RunError::BadFlag {
            flag: "--hot-threshold-ops",
            reason: e.to_string(),
        })?;
        if self.load_report_max_age.is_zero() {
            return Err(RunError::BadFlag {
                flag: "--load-report-max-age",
                reason: "must be positive".into(),
            });
        }
        self.bootstrap().validate().map_err(|e| RunError::BadFlag {
            flag: "--initial-ranges",
            reason: e.to_string(),
        })?;
        if self.request_timeout.is_zero() {
            return Err(RunError::BadFlag {
                flag: "--request-timeout",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }

    /// The openraft configuration these flags describe.
    pub fn raft_config(&self) -> Result<openraft::Config, RunError> {
        Ok(self.raft.raft_config("shardline-controller".into())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ControllerArgs {
        let mut v = vec!["shard-controller", "--node-id", "1", "--data-dir", "/tmp/x"];
        v.extend_from_slice(extra);
        ControllerArgs::try_parse_from(v).expect("parse")
    }

    #[test]
    fn bootstrap_defaults_follow_the_mode() {
        assert_eq!(args(&[]).bootstrap(), Bootstrap::hash(DEFAULT_HASH_RANGES));
        assert_eq!(
            args(&["--initial-ranges", "64"]).bootstrap(),
            Bootstrap::hash(64)
        );
        assert_eq!(
            args(&["--partitioning", "range"]).bootstrap(),
            Bootstrap::range()
        );
        assert!(args(&[]).validate().is_ok());
        assert!(args(&["--partitioning", "range", "--initial-ranges", "4"])
            .validate()
            .is_err());
        assert!(args(&["--initial-ranges", "0"]).validate().is_err());
        assert!(
            args(&["--peers", "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3"])
                .validate()
                .is_ok()
        );
        assert!(args(&["--peers", "2=127.0.0.1:2"]).validate().is_err());
    }

    #[test]
    fn hot_flags_default_and_are_checked() {
        let policy = args(&[]).hot_policy();
        assert_eq!(policy.default_ops_per_sec, 5000.0);
        assert_eq!(policy.max_report_age, Duration::from_secs(30));
        let a = args(&["--hot-threshold-ops", "12.5", "--load-report-max-age", "1m"]);
        assert_eq!(a.hot_policy().default_ops_per_sec, 12.5);
        assert_eq!(a.hot_policy().max_report_age, Duration::from_secs(60));
        assert!(args(&["--hot-threshold-ops=-1"]).validate().is_err());
        assert!(args(&["--load-report-max-age", "0s"]).validate().is_err());
    }
}
