//! The controller state machine: the append-only history of shard-map
//! [`Config`]s and the application of [`Command`]s to it.
//!
//! This is pure, synchronous and deterministic, so the Raft layer can apply
//! log entries to it on every member and snapshot it with serde. Each
//! accepted command appends config `num + 1`, built from a copy of the latest
//! one; a rejected command returns its [`ControllerError`] before anything is
//! appended, so it changes nothing. Configs already in the history are never
//! touched again: `query(n)` returns the same config forever.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use shardline_proto::keyspace::{PartitionMode, HASH_ROUTING_KEY_LEN};
use shardline_proto::limits::MAX_KEY_BYTES;
use shardline_proto::shardmap::Config;

use crate::balance::{rebalance, UNASSIGNED};
use crate::command::{check_address, Bootstrap, Command, Group};
use crate::error::ControllerError;

/// The replicated state of the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Mode and initial range count, fixed for the cluster's life.
    bootstrap: Bootstrap,
    /// `history[n]` is config `n`; config 0 is empty.
    history: Vec<Config>,
}

impl ControllerState {
    /// A fresh state holding only the empty config 0.
    pub fn new(bootstrap: Bootstrap) -> Result<Self, ControllerError> {
        bootstrap.validate()?;
        Ok(ControllerState {
            bootstrap,
            history: vec![Config::empty(bootstrap.mode)],
        })
    }

    /// A state holding `history` (configs 0..n, as stored by the Raft state
    /// machine), or `None` if it is not a valid history for `bootstrap`:
    /// config 0 must be the empty config and numbers must count up from 0.
    pub fn from_history(bootstrap: Bootstrap, history: Vec<Config>) -> Option<Self> {
        let valid = bootstrap.validate().is_ok()
            && history.first() == Some(&Config::empty(bootstrap.mode))
            && history
                .iter()
                .enumerate()
                .all(|(i, c)| c.num == i as u64 && c.mode == bootstrap.mode);
        valid.then_some(ControllerState { bootstrap, history })
    }

    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// The newest config.
    pub fn latest(&self) -> &Config {
        self.history.last().expect("history always holds config 0")
    }

    /// Config `num`, or the latest for `None`.
    pub fn query(&self, num: Option<u64>) -> Result<&Config, ControllerError> {
        let Some(num) = num else {
            return Ok(self.latest());
        };
        usize::try_from(num)
            .ok()
            .and_then(|i| self.history.get(i))
            .ok_or(ControllerError::ConfigNotFound {
                num,
                latest: self.latest().num,
            })
    }

    /// Every config with a number above `after`, oldest first (what a
    /// `WatchConfig(from_num = after)` stream still has to deliver).
    pub fn since(&self, after: u64) -> &[Config] {
        let start = usize::try_from(after.saturating_add(1)).unwrap_or(usize::MAX);
        self.history.get(start..).unwrap_or_default()
    }

    /// The whole history, config 0 first.
    pub fn history(&self) -> &[Config] {
        &self.history
    }

    /// Applies `cmd`, appending and returning the new config.
    pub fn apply(&mut self, cmd: &Command) -> Result<&Config, ControllerError> {
        let mut next = self.latest().clone();
        next.num += 1;
        match cmd {
            Command::Join { groups } => self.join(&mut next, groups)?,
            Command::Leave { gids } => leave(&mut next, gids)?,
            Command::Move { range_id, gid } => move_range(&mut next, *range_id, *gid)?,
            Command::Split { range_id, key } => split(&mut next, *range_id, key)?,
        }
        self.history.push(next);
        Ok(self.latest())
    }

    fn join(&self, c: &mut Config, groups: &[Group]) -> Result<(), ControllerError> {
        if groups.is_empty() {
            return Err(ControllerError::NoGroups);
        }
        let mut owners: BTreeMap<String, u64> = c
            .groups
            .iter()
            .flat_map(|(&g, addrs)| addrs.iter().map(move |a| (a.clone(), g)))
            .collect();
        for Group { gid, addresses } in groups {
            let gid = *gid;
            if gid == UNASSIGNED {
                return Err(ControllerError::ReservedGroupId);
            }
            if c.groups.contains_key(&gid) {
                return Err(match self.latest().groups.contains_key(&gid) {
                    true => ControllerError::GroupAlreadyJoined { gid },
                    false => ControllerError::DuplicateGroup { gid },
                });
            }
            if addresses.is_empty() {
                return Err(ControllerError::EmptyGroup { gid });
            }
            for address in addresses {
                check_address(gid, address)?;
                match owners.insert(address.clone(), gid) {
                    None => {}
                    Some(owner) if owner == gid => {
                        let reason = "listed twice".to_string();
                        return Err(ControllerError::BadAddress {
                            gid,
                            address: address.clone(),
                            reason,
                        });
                    }
                    Some(owner) => {
                        return Err(ControllerError::AddressInUse {
                            gid,
                            address: address.clone(),
                            owner,
                        })
                    }
                }
            }
            c.groups.insert(gid, addresses.clone());
        }
        if c.ranges.is_empty() {
            c.ranges = self.bootstrap.ranges();
        }
        rebalance(&mut c.ranges, &c.groups.keys().copied().collect());
        Ok(())
    }
}

fn leave(c: &mut Config, gids: &[u64]) -> Result<(), ControllerError> {
    if gids.is_empty() {
        return Err(ControllerError::NoGroups);
    }
    let mut seen = BTreeSet::new();
    for &gid in gids {
        if !seen.insert(gid) {
            return Err(ControllerError::DuplicateGroup { gid });
        }
        if c.groups.remove(&gid).is_none() {
            return Err(ControllerError::UnknownGroup { gid });
        }
    }
    if c.groups.is_empty() && !c.ranges.is_empty() {
        return Err(ControllerError::LeavingLastGroup {
            ranges: c.ranges.len(),
        });
    }
    rebalance(&mut c.ranges, &c.groups.keys().copied().collect());
    Ok(())
}

fn range_index(c: &Config, range_id: u64) -> Result<usize, ControllerError> {
    c.ranges
        .iter()
        .position(|r| r.id == range_id)
        .ok_or(ControllerError::RangeNotFound { range_id })
}

fn move_range(c: &mut Config, range_id: u64, gid: u64) -> Result<(), ControllerError> {
    let i = range_index(c, range_id)?;
    if !c.groups.contains_key(&gid) {
        return Err(ControllerError::UnknownGroup { gid });
    }
    let range = &mut c.ranges[i];
    if range.gid == gid {
        return Err(ControllerError::RangeAlreadyOwned { range_id, gid });
    }
    range.gid = gid;
    range.epoch += 1;
    Ok(())
}

fn split(c: &mut Config, range_id: u64, key: &[u8]) -> Result<(), ControllerError> {
    let i = range_index(c, range_id)?;
    let len = key.len();
    match c.mode {
        PartitionMode::Hash if len != HASH_ROUTING_KEY_LEN => {
            return Err(ControllerError::BadSplitKeyLength { range_id, len })
        }
        PartitionMode::Range if len > MAX_KEY_BYTES => {
            return Err(ControllerError::SplitKeyTooLong {
                range_id,
                len,
                max: MAX_KEY_BYTES,
            })
        }
        _ => {}
    }
    let range = &c.ranges[i];
    // In hash mode the empty lower bound is the all-zero routing key.
    let zero_start =
        c.mode == PartitionMode::Hash && range.start.is_empty() && key.iter().all(|&b| b == 0);
    if key == range.start.as_slice()
        || zero_start
        || (!range.end.is_empty() && key == range.end.as_slice())
    {
        return Err(ControllerError::SplitKeyOnBoundary {
            range_id,
            key: key.to_vec(),
        });
    }
    if !range.is_interior(key) {
        let (start, end) = (range.start.clone(), range.end.clone());
        return Err(ControllerError::SplitKeyOutsideRange {
            range_id,
            key: key.to_vec(),
            start,
            end,
        });
    }
    let new_id = c.ranges.iter().map(|r| r.id).max().unwrap_or(0) + 1;
    let left = &mut c.ranges[i];
    left.epoch += 1;
    let mut right = left.clone();
    left.end = key.to_vec();
    right.id = new_id;
    right.start = key.to_vec();
    c.ranges.insert(i + 1, right);
    Ok(())
}
