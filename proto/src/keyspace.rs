//! The routing-key space: partitioning modes, routing keys, storage keys and
//! key ranges.
//!
//! A cluster routes every user key by a *routing key*: in [`PartitionMode::Hash`]
//! the 8-byte big-endian xxh3-64 hash of the key (even spread, scans fan out);
//! in [`PartitionMode::Range`] the key itself (ordered scans touch only the
//! ranges they overlap). Ranges are `[start, end)` over routing keys, with an
//! empty `end` meaning "to the end of the space".
//!
//! Shard nodes store each pair under its *storage key* = routing key followed by
//! the user key in hash mode, or the user key alone in range mode (where the
//! two are equal). Either way storage keys sort by routing key first, so one
//! range is one contiguous run of storage keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Length of a routing key in hash mode.
pub const HASH_ROUTING_KEY_LEN: usize = 8;

/// How a cluster maps user keys onto the routing-key space. Fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum PartitionMode {
    /// Routing key = 64-bit hash of the key.
    #[default]
    Hash,
    /// Routing key = the key itself.
    Range,
}

impl PartitionMode {
    /// The routing key of `key` under this mode.
    pub fn routing_key(self, key: &[u8]) -> Vec<u8> {
        match self {
            PartitionMode::Hash => key_hash(key).to_be_bytes().to_vec(),
            PartitionMode::Range => key.to_vec(),
        }
    }

    /// The storage key of `key`: routing key, then the key (hash mode), or
    /// the key alone (range mode).
    pub fn storage_key(self, key: &[u8]) -> Vec<u8> {
        match self {
            PartitionMode::Hash => {
                let mut out = Vec::with_capacity(HASH_ROUTING_KEY_LEN + key.len());
                out.extend_from_slice(&key_hash(key).to_be_bytes());
                out.extend_from_slice(key);
                out
            }
            PartitionMode::Range => key.to_vec(),
        }
    }

    /// The user key inside a storage key produced by [`Self::storage_key`].
    pub fn user_key(self, storage_key: &[u8]) -> &[u8] {
        match self {
            PartitionMode::Hash => storage_key.get(HASH_ROUTING_KEY_LEN..).unwrap_or_default(),
            PartitionMode::Range => storage_key,
        }
    }

    /// Whether scans in user-key order can walk storage keys in order.
    pub fn is_ordered(self) -> bool {
        matches!(self, PartitionMode::Range)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PartitionMode::Hash => "hash",
            PartitionMode::Range => "range",
        }
    }
}

impl fmt::Display for PartitionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown partitioning mode name.
#[derive(Debug, thiserror::Error)]
#[error("unknown partitioning mode {0:?} (expected \"hash\" or \"range\")")]
pub struct UnknownMode(pub String);

impl FromStr for PartitionMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hash" => Ok(PartitionMode::Hash),
            "range" => Ok(PartitionMode::Range),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

/// The 64-bit routing hash of a key (xxh3-64, seed 0; stable across releases).
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A half-open range `[start, end)` of routing keys owned by one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    pub id: u64,
    /// Inclusive lower bound.
    pub start: Vec<u8>,
    /// Exclusive upper bound; empty means unbounded.
    pub end: Vec<u8>,
    /// Bumped on every split or move.
    pub epoch: u64,
    /// The owning replica group.
    pub gid: u64,
}

impl KeyRange {
    /// The single range covering the whole routing-key space.
    pub fn full(id: u64, gid: u64) -> Self {
        KeyRange {
            id,
            start: Vec::new(),
            end: Vec::new(),
            epoch: 0,
            gid,
        }
    }

    /// Whether `routing_key` falls in this range.
    pub fn contains(&self, routing_key: &[u8]) -> bool {
        routing_key >= self.start.as_slice()
            && (self.end.is_empty() || routing_key < self.end.as_slice())
    }

    /// Whether `key` is strictly inside the range, so splitting there leaves
    /// two non-empty halves.
    pub fn is_interior(&self, routing_key: &[u8]) -> bool {
        routing_key > self.start.as_slice()
            && (self.end.is_empty() || routing_key < self.end.as_slice())
    }
}

/// Splits the hash space into `n` equal ranges (ids 1..=n), all owned by `gid`.
pub fn initial_hash_ranges(n: u64, gid: u64) -> Vec<KeyRange> {
    assert!(n >= 1, "at least one range");
    let step = u64::MAX / n;
    (0..n)
        .map(|i| {
            let start = if i == 0 {
                Vec::new()
            } else {
                (i * step).to_be_bytes().to_vec()
            };
            let end = if i + 1 == n {
                Vec::new()
            } else {
                ((i + 1) * step).to_be_bytes().to_vec()
            };
            KeyRange {
                id: i + 1,
                start,
                end,
                epoch: 0,
                gid,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_storage_keys_sort_by_routing_key_and_roundtrip() {
        let m = PartitionMode::Hash;
        let sk = m.storage_key(b"user-1");
        assert_eq!(&sk[..8], &m.routing_key(b"user-1")[..]);
        assert_eq!(m.user_key(&sk), b"user-1");
        let r = PartitionMode::Range;
        assert_eq!(r.storage_key(b"abc"), b"abc");
        assert_eq!(r.user_key(b"abc"), b"abc");
    }

    #[test]
    fn initial_ranges_cover_space_without_gaps() {
        let rs = initial_hash_ranges(4, 1);
        assert!(rs[0].start.is_empty());
        assert!(rs[3].end.is_empty());
        for w in rs.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for k in [b"a".as_slice(), b"zz", b"key-99"] {
            let rk = PartitionMode::Hash.routing_key(k);
            assert_eq!(rs.iter().filter(|r| r.contains(&rk)).count(), 1);
        }
    }

    #[test]
    fn contains_and_interior_respect_bounds() {
        let r = KeyRange {
            id: 1,
            start: b"b".to_vec(),
            end: b"d".to_vec(),
            epoch: 0,
            gid: 1,
        };
        assert!(!r.contains(b"a"));
        assert!(r.contains(b"b"));
        assert!(r.contains(b"c"));
        assert!(!r.contains(b"d"));
        assert!(!r.is_interior(b"b"));
        assert!(r.is_interior(b"c"));
        assert!("hash".parse::<PartitionMode>().is_ok());
        assert!("nope".parse::<PartitionMode>().is_err());
    }
}
