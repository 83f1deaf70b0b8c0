//! The inputs of the controller state machine: the fixed [`Bootstrap`]
//! parameters and the [`Command`]s its Raft log carries, plus the checks on
//! their raw fields (group ids, member addresses).
//!
//! Commands are serde types: they are proposed to Raft, stored in the log and
//! applied by every member in log order.

use serde::{Deserialize, Serialize};
use shardline_proto::keyspace::{initial_hash_ranges, KeyRange, PartitionMode};
use shardline_proto::pb;

use crate::balance::UNASSIGNED;
use crate::error::ControllerError;

/// A group to add: its id and the addresses of its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Chosen by the operator; 0 is reserved.
    pub gid: u64,
    /// `host:port` (optionally `http://` or `https://`) of each member.
    pub addresses: Vec<String>,
}

/// One change to the shard map. Applying it makes config `num + 1`, or fails
/// with a typed error and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add groups and rebalance ranges onto them. The first Join also places
    /// the bootstrap ranges.
    Join { groups: Vec<Group> },
    /// Remove groups; their ranges go to the remaining groups.
    Leave { gids: Vec<u64> },
    /// Give one range to one group (bumps the range's epoch).
    Move { range_id: u64, gid: u64 },
    /// Split one range at a routing key; the upper half gets a new id and
    /// both halves keep the owner and get a bumped epoch.
    Split { range_id: u64, key: Vec<u8> },
}

/// Cluster parameters fixed when the controller is first started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub mode: PartitionMode,
    /// Ranges placed by the first Join: equal slices of the hash space in
    /// hash mode; always 1 (the whole space) in range mode.
    pub initial_ranges: u64,
}

impl Bootstrap {
    /// Hash partitioning with `initial_ranges` equal ranges.
    pub fn hash(initial_ranges: u64) -> Self {
        Bootstrap {
            mode: PartitionMode::Hash,
            initial_ranges,
        }
    }

    /// Range partitioning, starting from one range over the whole key space.
    pub fn range() -> Self {
        Bootstrap {
            mode: PartitionMode::Range,
            initial_ranges: 1,
        }
    }

    pub fn validate(&self) -> Result<(), ControllerError> {
        let reason = match (self.mode, self.initial_ranges) {
            (_, 0) => "at least one initial range is needed",
            (PartitionMode::Range, n) if n > 1 => {
                "range mode starts from one range; split it to add more"
            }
            _ => return Ok(()),
        };
        Err(ControllerError::BadBootstrap {
            reason: reason.to_string(),
        })
    }

    /// The unassigned ranges the first Join places (ids `1..=n`).
    pub fn ranges(&self) -> Vec<KeyRange> {
        match self.mode {
            PartitionMode::Hash => initial_hash_ranges(self.initial_ranges, UNASSIGNED),
            PartitionMode::Range => vec![KeyRange::full(1, UNASSIGNED)],
        }
    }
}

/// Checks that `address` of group `gid` looks like `[scheme://]host:port`.
pub(crate) fn check_address(gid: u64, address: &str) -> Result<(), ControllerError> {
    let bad = |reason: &str| {
        Err(ControllerError::BadAddress {
            gid,
            address: address.to_string(),
            reason: reason.to_string(),
        })
    };
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    if rest.chars().any(|c| c.is_whitespace() || c == '/') {
        return bad("contains whitespace or a path");
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return bad("expected host:port");
    };
    if host.is_empty() {
        return bad("missing host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => bad("port must be 1-65535"),
    }
}

impl From<pb::JoinRequest> for Command {
    fn from(r: pb::JoinRequest) -> Self {
        let groups = r
            .groups
            .into_iter()
            .map(|g| Group {
                gid: g.gid,
                addresses: g.addresses,
            })
            .collect();
        Command::Join { groups }
    }
}

impl From<pb::LeaveRequest> for Command {
    fn from(r: pb::LeaveRequest) -> Self {
        Command::Leave { gids: r.gids }
    }
}

impl From<pb::MoveRequest> for Command {
    fn from(r: pb::MoveRequest) -> Self {
        Command::Move {
            range_id: r.range_id,
            gid: r.gid,
        }
    }
}

impl From<pb::SplitRequest> for Command {
    fn from(r: pb::SplitRequest) -> Self {
        Command::Split {
            range_id: r.range_id,
            key: r.key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_host_and_port() {
        for ok in [
            "127.0.0.1:7400",
            "http://node-0.g1:7400",
            "https://[::1]:1",
            "localhost:65535",
        ] {
            assert_eq!(check_address(1, ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":80",
            "h:0",
            "h:99999",
            "h:x",
            "a b:1",
            "http://h:1/path",
        ] {
            assert!(
                matches!(
                    check_address(1, bad),
                    Err(ControllerError::BadAddress { gid: 1, .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn bootstrap_validation_and_ranges() {
        assert_eq!(Bootstrap::hash(16).validate(), Ok(()));
        assert_eq!(Bootstrap::hash(16).ranges().len(), 16);
        assert_eq!(
            Bootstrap::range().ranges(),
            vec![KeyRange::full(1, UNASSIGNED)]
        );
        assert!(Bootstrap::hash(0).validate().is_err());
        let many = Bootstrap {
            mode: PartitionMode::Range,
            initial_ranges: 4,
        };
        assert!(matches!(
            many.validate(),
            Err(ControllerError::BadBootstrap { .. })
        ));
    }

    #[test]
    fn wire_requests_become_commands() {
        let join = pb::JoinRequest {
            groups: vec![pb::GroupMembers {
                gid: 3,
                addresses: vec!["h:1".into()],
            }],
        };
        assert_eq!(
            Command::from(join),
            Command::Join {
                groups: vec![Group {
                    gid: 3,
                    addresses: vec!["h:1".into()]
                }]
            }
        );
        assert_eq!(
            Command::from(pb::LeaveRequest { gids: vec![1, 2] }),
            Command::Leave { gids: vec![1, 2] }
        );
        assert_eq!(
            Command::from(pb::MoveRequest {
                range_id: 4,
                gid: 2
            }),
            Command::Move {
                range_id: 4,
                gid: 2
            }
        );
        assert_eq!(
            Command::from(pb::SplitRequest {
                range_id: 4,
                key: vec![7]
            }),
            Command::Split {
                range_id: 4,
                key: vec![7]
            }
        );
    }
}
