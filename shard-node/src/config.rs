//! Command-line flags of `shard-node` and their validation.
//!
//! The Raft flags (`--node-id`, `--peers`/`--join`, `--data-dir`, timing and
//! snapshot knobs) are the shared [`RaftArgs`]; this adds the group id, the
//! listen addresses and the partitioning mode.

use std::net::SocketAddr;

use clap::Parser;
use shardline_proto::keyspace::PartitionMode;
use shardline_raft::args::RaftArgs;

use crate::error::NodeError;

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
}

impl NodeArgs {
    /// The address this member advertises to peers and clients.
    pub fn advertise_addr(&self) -> String {
        self.raft.advertise_addr(self.listen)
    }

    pub fn validate(&self) -> Result<(), NodeError> {
        Ok(self.raft.validate()?)
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
    }
}
