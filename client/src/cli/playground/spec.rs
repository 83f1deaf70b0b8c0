//! What a playground runs: a [`PlaygroundSpec`] is a list of processes, each
//! with its command line, addresses, data directory and log file, plus the
//! groups they form.
//!
//! It holds one group of shard-node members and, optionally, the members of
//! the shard controller ([`PlaygroundSpec::add_controllers`]); more groups
//! are further [`ProcessSpec`]s and [`GroupSpec`]s, without touching the
//! supervisor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything a playground starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaygroundSpec {
    /// Root of all per-process data directories and logs.
    pub data_dir: PathBuf,
    pub processes: Vec<ProcessSpec>,
    pub groups: Vec<GroupSpec>,
    /// gRPC addresses of the shard controller's members (empty: none).
    pub controllers: Vec<SocketAddr>,
}

/// What a process is, for messages and readiness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// One member of a shard group.
    ShardNode { group_id: u64, node_id: u64 },
    /// One member of the shard controller.
    Controller { node_id: u64 },
}

/// One child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Short unique name, e.g. `g1-node-2`; names the log file too.
    pub name: String,
    pub kind: ProcessKind,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// gRPC address (what clients and peers use).
    pub grpc_addr: SocketAddr,
    /// HTTP address (metrics, health).
    pub http_addr: SocketAddr,
    /// Where the process writes its stdout and stderr.
    pub log_path: PathBuf,
}

/// One shard group of the playground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub id: u64,
    /// Members' gRPC addresses, in node-id order.
    pub members: Vec<SocketAddr>,
}

/// Inputs of [`PlaygroundSpec::single_group`].
#[derive(Debug, Clone)]
pub struct SingleGroup<'a> {
    pub node_bin: &'a Path,
    pub data_dir: &'a Path,
    /// gRPC port of node 1; node n uses `base_port + n - 1`, and HTTP ports
    /// are the gRPC ports + 100.
    pub base_port: u16,
    pub members: u16,
    pub partitioning: Option<&'a str>,
}

/// Offset between a process's gRPC and HTTP ports.
pub const HTTP_PORT_OFFSET: u16 = 100;

impl PlaygroundSpec {
    /// One group (id 1) of `members` shard-node processes on loopback.
    pub fn single_group(o: &SingleGroup<'_>) -> Result<Self, String> {
        let group_id = 1;
        let last = u32::from(o.base_port) + u32::from(o.members) - 1 + u32::from(HTTP_PORT_OFFSET);
        if o.members == 0 || last > u32::from(u16::MAX) {
            return Err(format!("ports {}..={last} do not fit", o.base_port));
        }
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let ids: Vec<u64> = (1..=u64::from(o.members)).collect();
        let grpc: Vec<SocketAddr> = ids
            .iter()
            .map(|&id| addr(o.base_port + id as u16 - 1))
            .collect();
        let peers = ids
            .iter()
            .zip(&grpc)
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let processes = ids
            .iter()
            .zip(&grpc)
            .map(|(&node_id, &grpc_addr)| {
                let name = format!("g{group_id}-node-{node_id}");
                let http_addr = addr(grpc_addr.port() + HTTP_PORT_OFFSET);
                let mut args = vec![
                    "--node-id".to_string(),
                    node_id.to_string(),
                    "--group-id".into(),
                    group_id.to_string(),
                    "--listen".into(),
                    grpc_addr.to_string(),
                    "--http-listen".into(),
                    http_addr.to_string(),
                    "--data-dir".into(),
                    o.data_dir.join(&name).display().to_string(),
                    "--peers".into(),
                    peers.clone(),
                ];
                if let Some(p) = o.partitioning {
                    args.extend(["--partitioning".to_string(), p.to_string()]);
                }
                ProcessSpec {
                    log_path: o.data_dir.join("logs").join(format!("{name}.log")),
                    name,
                    kind: ProcessKind::ShardNode { group_id, node_id },
                    program: o.node_bin.to_path_buf(),
                    args,
                    grpc_addr,
                    http_addr,
                }
            })
            .collect();
        Ok(PlaygroundSpec {
            data_dir: o.data_dir.to_path_buf(),
            processes,
            groups: vec![GroupSpec {
                id: group_id,
                members: grpc,
            }],
            controllers: Vec::new(),
        })
    }

    /// Adds `replicas` shard-controller members on the controller's
    /// well-known ports: gRPC `base_port - 100 + n - 1` (7301.. for the
    /// default 7401) and HTTP 10 higher, the defaults the CLI's
    /// `controller` commands use.
    pub fn add_controllers(
        &mut self,
        controller_bin: &Path,
        replicas: u16,
        base_port: u16,
        partitioning: Option<&str>,
    ) -> Result<(), String> {
        if replicas == 0 {
            return Ok(());
        }
        let first = u32::from(base_port)
            .checked_sub(u32::from(CONTROLLER_PORT_BELOW))
            .filter(|p| *p >= 1024)
            .ok_or_else(|| {
                format!("base port {base_port} leaves no room for controller ports below it")
            })?;
        let addr = |port: u32| SocketAddr::from(([127, 0, 0, 1], port as u16));
        let ids: Vec<u64> = (1..=u64::from(replicas)).collect();
        let grpc: Vec<SocketAddr> = ids.iter().map(|&id| addr(first + id as u32 - 1)).collect();
        let peers = ids
            .iter()
            .zip(&grpc)
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        for (&node_id, &grpc_addr) in ids.iter().zip(&grpc) {
            let name = format!("ctrl-{node_id}");
            let http_addr = addr(u32::from(grpc_addr.port()) + u32::from(CONTROLLER_HTTP_OFFSET));
            let mut args = vec![
                "--node-id".to_string(),
                node_id.to_string(),
                "--listen".into(),
                grpc_addr.to_string(),
                "--http-listen".into(),
                http_addr.to_string(),
                "--data-dir".into(),
                self.data_dir.join(&name).display().to_string(),
                "--peers".into(),
                peers.clone(),
            ];
            if let Some(p) = partitioning {
                args.extend(["--partitioning".to_string(), p.to_string()]);
            }
            self.processes.push(ProcessSpec {
                log_path: self.data_dir.join("logs").join(format!("{name}.log")),
                name,
                kind: ProcessKind::Controller { node_id },
                program: controller_bin.to_path_buf(),
                args,
                grpc_addr,
                http_addr,
            });
        }
        // Shard nodes report per-range load to the controller.
        let controller_flag = grpc
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for p in &mut self.processes {
            if matches!(p.kind, ProcessKind::ShardNode { .. }) {
                p.args
                    .extend(["--controller".to_string(), controller_flag.clone()]);
            }
        }
        self.controllers = grpc;
        Ok(())
    }
}

/// The controller's gRPC ports start this far below the group's base port.
pub const CONTROLLER_PORT_BELOW: u16 = 100;
/// Offset between a controller member's gRPC and HTTP ports.
pub const CONTROLLER_HTTP_OFFSET: u16 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_group_follows_the_shard_node_flag_contract() {
        let spec = PlaygroundSpec::single_group(&SingleGroup {
            node_bin: Path::new("/bin/shard-node"),
            data_dir: Path::new("/d"),
            base_port: 7401,
            members: 3,
            partitioning: Some("range"),
        })
        .unwrap();
        assert_eq!(spec.processes.len(), 3);
        let p = &spec.processes[1];
        assert_eq!(p.name, "g1-node-2");
        assert_eq!(p.grpc_addr.to_string(), "127.0.0.1:7402");
        assert_eq!(p.http_addr.to_string(), "127.0.0.1:7502");
        assert_eq!(p.log_path, Path::new("/d/logs/g1-node-2.log"));
        assert_eq!(
            p.args.join(" "),
            "--node-id 2 --group-id 1 --listen 127.0.0.1:7402 --http-listen 127.0.0.1:7502 \
             --data-dir /d/g1-node-2 --peers 1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403 \
             --partitioning range"
        );
        assert_eq!(spec.groups[0].members.len(), 3);
        let mut with_ctrl = spec.clone();
        with_ctrl
            .add_controllers(Path::new("/bin/shard-controller"), 3, 7401, Some("range"))
            .unwrap();
        assert_eq!(with_ctrl.processes.len(), 6);
        let c = &with_ctrl.processes[4];
        assert_eq!(c.name, "ctrl-2");
        assert_eq!(
            c.args.join(" "),
            "--node-id 2 --listen 127.0.0.1:7302 --http-listen 127.0.0.1:7312 --data-dir /d/ctrl-2 \
             --peers 1=127.0.0.1:7301,2=127.0.0.1:7302,3=127.0.0.1:7303 --partitioning range"
        );
        assert_eq!(with_ctrl.controllers.len(), 3);
        assert!(with_ctrl.processes[1]
            .args
            .join(" ")
            .ends_with("--controller 127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303"));
        assert!(spec
            .clone()
            .add_controllers(Path::new("x"), 3, 1100, None)
            .is_err());
        let too_high = SingleGroup {
            base_port: 65500,
            ..SingleGroup {
                partitioning: None,
                ..spec_inputs()
            }
        };
        assert!(PlaygroundSpec::single_group(&too_high).is_err());
    }

    fn spec_inputs() -> SingleGroup<'static> {
        SingleGroup {
            node_bin: Path::new("x"),
            data_dir: Path::new("/d"),
            base_port: 7401,
            members: 3,
            partitioning: None,
        }
    }
}
