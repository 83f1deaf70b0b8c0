//! The shard map: one numbered [`Config`] saying which replica group owns
//! which key range, its wire conversions, and key routing.
//!
//! The controller produces configs; clients and shard nodes consume them. Both
//! sides use this one type so routing cannot drift between them. A config
//! received from the wire is checked by [`Config::validate`] before use: its
//! ranges tile the whole routing-key space in order, with unique ids, and every
//! range is owned by a group of the config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keyspace::{KeyRange, PartitionMode, UnknownMode, HASH_ROUTING_KEY_LEN};
use crate::pb;

/// One version of the shard map. Configs are never edited in place: each
/// change makes a new config with `num + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Position in the controller's history; config 0 is empty.
    pub num: u64,
    /// Replica groups: gid -> member addresses (in member order).
    pub groups: BTreeMap<u64, Vec<String>>,
    /// Ranges sorted by `start`, tiling the routing-key space (empty only in
    /// config 0, before any group joined).
    pub ranges: Vec<KeyRange>,
    /// The cluster's partitioning mode, fixed at bootstrap.
    pub mode: PartitionMode,
}

/// Why a config is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("unknown partitioning mode {0:?} (expected \"hash\" or \"range\")")]
    UnknownMode(String),
    #[error("group {gid} is listed more than once")]
    DuplicateGroup { gid: u64 },
    #[error("range id {range_id} is used more than once")]
    DuplicateRange { range_id: u64 },
    #[error("range {range_id} does not start where the previous range ends")]
    Gap { range_id: u64 },
    #[error("the ranges do not reach the end of the routing-key space")]
    Unbounded,
    #[error("range {range_id} has an empty or inverted span")]
    EmptyRange { range_id: u64 },
    #[error(
        "range {range_id} has a bound that is not an {HASH_ROUTING_KEY_LEN}-byte hash routing key"
    )]
    BadHashBound { range_id: u64 },
    #[error("range {range_id} is owned by group {gid}, which is not in the config")]
    UnknownOwner { range_id: u64, gid: u64 },
}

impl Config {
    /// The empty config 0 of a cluster in `mode`.
    pub fn empty(mode: PartitionMode) -> Self {
        Config {
            num: 0,
            groups: BTreeMap::new(),
            ranges: Vec::new(),
            mode,
        }
    }

    /// The range holding `routing_key`, if any range does.
    pub fn range_for(&self, routing_key: &[u8]) -> Option<&KeyRange> {
        // Ranges are sorted by start: the candidate is the last one starting
        // at or before the key.
        let after = self
            .ranges
            .partition_point(|r| r.start.as_slice() <= routing_key);
        let range = self.ranges.get(after.checked_sub(1)?)?;
        range.contains(routing_key).then_some(range)
    }

    /// The group owning user key `key` under this config's mode.
    pub fn group_for_key(&self, key: &[u8]) -> Option<u64> {
        self.range_for(&self.mode.routing_key(key)).map(|r| r.gid)
    }

    /// The range with id `range_id`.
    pub fn range(&self, range_id: u64) -> Option<&KeyRange> {
        self.ranges.iter().find(|r| r.id == range_id)
    }

    /// Number of ranges each group owns; groups owning none are listed with 0.
    pub fn range_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts: BTreeMap<u64, usize> = self.groups.keys().map(|&g| (g, 0)).collect();
        for r in &self.ranges {
            *counts.entry(r.gid).or_default() += 1;
        }
        counts
    }

    /// Checks the invariants every config the controller publishes holds.
    pub fn validate(&self) -> Result<(), ShardMapError> {
        let mut ids = BTreeMap::new();
        let mut expected_start: &[u8] = &[];
        for (i, r) in self.ranges.iter().enumerate() {
            if ids.insert(r.id, ()).is_some() {
                return Err(ShardMapError::DuplicateRange { range_id: r.id });
            }
            if r.start != expected_start || (i > 0 && r.start.is_empty()) {
                return Err(ShardMapError::Gap { range_id: r.id });
            }
            if !r.end.is_empty() && r.end <= r.start {
                return Err(ShardMapError::EmptyRange { range_id: r.id });
            }
            let bad_bound = |b: &[u8]| !b.is_empty() && b.len() != HASH_ROUTING_KEY_LEN;
            if self.mode == PartitionMode::Hash && (bad_bound(&r.start) || bad_bound(&r.end)) {
                return Err(ShardMapError::BadHashBound { range_id: r.id });
            }
            if !self.groups.contains_key(&r.gid) {
                return Err(ShardMapError::UnknownOwner {
                    range_id: r.id,
                    gid: r.gid,
                });
            }
            expected_start = &r.end;
        }
        if !self.ranges.is_empty() && !expected_start.is_empty() {
            return Err(ShardMapError::Unbounded);
        }
        Ok(())
    }
}

impl From<&Config> for pb::ShardConfig {
    fn from(c: &Config) -> Self {
        pb::ShardConfig {
            num: c.num,
            groups: c
                .groups
                .iter()
                .map(|(&gid, addrs)| pb::GroupMembers {
                    gid,
                    addresses: addrs.clone(),
                })
                .collect(),
            ranges: c.ranges.iter().map(pb::Range::from).collect(),
            partitioning: c.mode.as_str().to_string(),
        }
    }
}

impl From<&KeyRange> for pb::Range {
    fn from(r: &KeyRange) -> Self {
        pb::Range {
            id: r.id,
            start: r.start.clone(),
            end: r.end.clone(),
            epoch: r.epoch,
            gid: r.gid,
        }
    }
}

impl From<pb::Range> for KeyRange {
    fn from(r: pb::Range) -> Self {
        KeyRange {
            id: r.id,
            start: r.start,
            end: r.end,
            epoch: r.epoch,
            gid: r.gid,
        }
    }
}

impl TryFrom<pb::ShardConfig> for Config {
    type Error = ShardMapError;

    /// Decodes and validates a config; ranges are sorted by start first.
    fn try_from(c: pb::ShardConfig) -> Result<Self, Self::Error> {
        let mode = c
            .partitioning
            .parse()
            .map_err(|UnknownMode(m)| ShardMapError::UnknownMode(m))?;
        let mut groups = BTreeMap::new();
        for g in c.groups {
            if groups.insert(g.gid, g.addresses).is_some() {
                return Err(ShardMapError::DuplicateGroup { gid: g.gid });
            }
        }
        let mut ranges: Vec<KeyRange> = c.ranges.into_iter().map(KeyRange::from).collect();
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        let config = Config {
            num: c.num,
            groups,
            ranges,
            mode,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::initial_hash_ranges;

    fn two_groups(mode: PartitionMode, ranges: Vec<KeyRange>) -> Config {
        let groups = BTreeMap::from([(1, vec!["a:1".into()]), (2, vec!["b:1".into()])]);
        Config {
            num: 3,
            groups,
            ranges,
            mode,
        }
    }

    fn hash_config() -> Config {
        let mut ranges = initial_hash_ranges(8, 1);
        for r in ranges.iter_mut().skip(4) {
            r.gid = 2;
        }
        two_groups(PartitionMode::Hash, ranges)
    }

    #[test]
    fn wire_round_trip_keeps_the_config() {
        let c = hash_config();
        let mut wire = pb::ShardConfig::from(&c);
        wire.ranges.reverse();
        assert_eq!(Config::try_from(wire).unwrap(), c);
        let empty = Config::empty(PartitionMode::Range);
        assert_eq!(
            Config::try_from(pb::ShardConfig::from(&empty)).unwrap(),
            empty
        );
    }

    #[test]
    fn every_key_routes_to_exactly_the_range_that_contains_it() {
        let c = hash_config();
        for i in 0..2_000u32 {
            let key = format!("key-{i}");
            let rk = c.mode.routing_key(key.as_bytes());
            let expect = c.ranges.iter().find(|r| r.contains(&rk)).unwrap();
            assert_eq!(c.range_for(&rk), Some(expect));
            assert_eq!(c.group_for_key(key.as_bytes()), Some(expect.gid));
        }
        assert_eq!(c.range_for(&[0; 8]).unwrap().id, 1);
        assert_eq!(c.range_for(&[0xff; 8]).unwrap().id, 8);
        assert_eq!(Config::empty(PartitionMode::Hash).group_for_key(b"k"), None);
    }

    #[test]
    fn range_mode_routes_raw_keys() {
        let lo = KeyRange {
            id: 1,
            start: vec![],
            end: b"m".to_vec(),
            epoch: 0,
            gid: 1,
        };
        let hi = KeyRange {
            id: 2,
            start: b"m".to_vec(),
            end: vec![],
            epoch: 0,
            gid: 2,
        };
        let c = two_groups(PartitionMode::Range, vec![lo, hi]);
        c.validate().unwrap();
        assert_eq!(c.group_for_key(b""), Some(1));
        assert_eq!(c.group_for_key(b"lzzz"), Some(1));
        assert_eq!(c.group_for_key(b"m"), Some(2));
        assert_eq!(c.range_counts(), BTreeMap::from([(1, 1), (2, 1)]));
    }

    #[test]
    fn malformed_configs_are_rejected_with_their_reason() {
        let base = hash_config();
        let mut wire = pb::ShardConfig::from(&base);
        wire.partitioning = "ring".into();
        assert!(matches!(
            Config::try_from(wire),
            Err(ShardMapError::UnknownMode(_))
        ));

        let mut wire = pb::ShardConfig::from(&base);
        wire.groups.push(wire.groups[0].clone());
        assert_eq!(
            Config::try_from(wire),
            Err(ShardMapError::DuplicateGroup { gid: 1 })
        );

        let mut c = base.clone();
        c.ranges.remove(3);
        assert_eq!(c.validate(), Err(ShardMapError::Gap { range_id: 5 }));

        let mut c = base.clone();
        c.ranges.pop();
        assert_eq!(c.validate(), Err(ShardMapError::Unbounded));

        let mut c = base.clone();
        c.ranges[2].id = 1;
        assert_eq!(
            c.validate(),
            Err(ShardMapError::DuplicateRange { range_id: 1 })
        );

        let mut c = base.clone();
        c.ranges[0].gid = 9;
        assert_eq!(
            c.validate(),
            Err(ShardMapError::UnknownOwner {
                range_id: 1,
                gid: 9
            })
        );

        let mut c = base.clone();
        c.ranges[0].end = vec![1, 2, 3];
        c.ranges[1].start = vec![1, 2, 3];
        assert_eq!(
            c.validate(),
            Err(ShardMapError::BadHashBound { range_id: 1 })
        );

        let mut c = base;
        c.ranges[1].end = c.ranges[1].start.clone();
        c.ranges[2].start = c.ranges[1].start.clone();
        assert_eq!(c.validate(), Err(ShardMapError::EmptyRange { range_id: 2 }));
    }
}
