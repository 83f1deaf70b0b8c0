//! Per-range load of this member: counts of the operations it serves,
//! attributed to the ranges the controller's latest config gives its group,
//! and the task that reports them to the controller.
//!
//! The KV service calls [`LoadTracker::record`] (and its batch and scan
//! forms) for every request that passes validation, before it reads or
//! proposes. The tracker maps the key to its routing key, finds the owning
//! range by binary search over the installed ranges, and counts the
//! operation in that range's [`window::SlidingWindow`] and offers its
//! routing key to the range's [`reservoir::Reservoir`]. Until ranges are
//! installed (no `--controller`, or this member does not lead) recording
//! costs one uncontended read lock and does nothing else.
//!
//! Ranges come from the controller, not from this member's store: a shard
//! group does not yet follow configs in its state machine, so the reporter
//! (leader only) asks the controller for the latest config each round and
//! installs the ranges it gives this group ([`LoadTracker::install`]); a
//! range whose bounds and epoch did not change keeps its counts.
//!
//! # Layout
//! - `window`: lock-free ops-per-second over a sliding window.
//! - `reservoir`: uniform sample of recent routing keys per range.
//! - `keys`: stored keys per range, exact or estimated.
//! - [`reporter`]: the `ReportLoad` task.

mod keys;
pub mod reporter;
mod reservoir;
mod window;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shardline_proto::keyspace::{key_hash, KeyRange, PartitionMode};

use reservoir::Reservoir;
use window::SlidingWindow;

/// Buckets per sliding window.
pub const WINDOW_BUCKETS: usize = 10;
/// Routing keys sampled per range and report.
pub const SAMPLE_KEYS: usize = 16;

/// Cheap to clone; clones share the counters.
#[derive(Clone)]
pub struct LoadTracker {
    inner: Arc<Inner>,
}

struct Inner {
    mode: PartitionMode,
    /// Length of each range's sliding window.
    window: Duration,
    /// Origin of the windows' time offsets.
    origin: Instant,
    /// Installed ranges sorted by start; empty while nothing is installed.
    ranges: RwLock<Vec<Arc<RangeSlot>>>,
}

/// One installed range and its counters.
struct RangeSlot {
    range: KeyRange,
    ops: SlidingWindow,
    sample: Reservoir,
}

/// One range's load as read by [`LoadTracker::readings`].
#[derive(Debug, Clone, PartialEq)]
pub struct RangeReading {
    pub range: KeyRange,
    pub ops_per_sec: f64,
    /// Sorted routing keys sampled since the previous reading.
    pub sample_keys: Vec<Vec<u8>>,
}

impl LoadTracker {
    /// A tracker with no ranges installed; rates are over `window`.
    pub fn new(mode: PartitionMode, window: Duration) -> Self {
        LoadTracker {
            inner: Arc::new(Inner {
                mode,
                window,
                origin: Instant::now(),
                ranges: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn mode(&self) -> PartitionMode {
        self.inner.mode
    }

    fn now(&self) -> Duration {
        self.inner.origin.elapsed()
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<RangeSlot>>> {
        self.inner.ranges.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one single-key operation on user key `key`.
    pub fn record(&self, key: &[u8]) {
        let slots = self.slots();
        if slots.is_empty() {
            return;
        }
        let now = self.now();
        self.count_key(&slots, key, now);
    }

    /// Counts one operation per key of a batch.
    pub fn record_batch<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        let slots = self.slots();
        if slots.is_empty() {
            return;
        }
        let now = self.now();
        for key in keys {
            self.count_key(&slots, key, now);
        }
    }

    /// Counts a scan of user keys `[start, end)` (empty `end`: unbounded) as
    /// one operation on every range it reads: in range mode the ranges the
    /// interval overlaps, in hash mode every range (a hash-mode scan reads
    /// every pair of the group). Scans add no sample keys.
    pub fn record_scan(&self, start: &[u8], end: &[u8]) {
        let slots = self.slots();
        let now = self.now();
        for slot in slots.iter() {
            let r = &slot.range;
            let overlaps = match self.inner.mode {
                PartitionMode::Hash => true,
                PartitionMode::Range => {
                    (end.is_empty() || r.start.as_slice() < end)
                        && (r.end.is_empty() || r.end.as_slice() > start)
                }
            };
            if overlaps {
                slot.ops.add(now, 1);
            }
        }
    }

    fn count_key(&self, slots: &[Arc<RangeSlot>], key: &[u8], now: Duration) {
        let hashed;
        let routing_key = match self.inner.mode {
            PartitionMode::Hash => {
                hashed = key_hash(key).to_be_bytes();
                &hashed[..]
            }
            PartitionMode::Range => key,
        };
        let after = slots.partition_point(|s| s.range.start.as_slice() <= routing_key);
        let Some(slot) = after.checked_sub(1).and_then(|i| slots.get(i)) else {
            return;
        };
        if slot.range.contains(routing_key) {
            slot.ops.add(now, 1);
            slot.sample.offer(routing_key, slot.range.id);
        }
    }

    /// Installs the ranges this group owns (any order). A range identical to
    /// an installed one (id, epoch and bounds) keeps its counters; others
    /// start from zero now.
    pub fn install(&self, mut ranges: Vec<KeyRange>) {
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        let now = self.now();
        let mut slots = self.inner.ranges.write().unwrap_or_else(|p| p.into_inner());
        let next = ranges
            .into_iter()
            .map(|range| {
                slots
                    .iter()
                    .find(|s| s.range == range)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(RangeSlot {
                            ops: SlidingWindow::new(self.inner.window, WINDOW_BUCKETS, now),
                            sample: Reservoir::new(SAMPLE_KEYS),
                            range,
                        })
                    })
            })
            .collect();
        *slots = next;
    }

    /// Forgets every range (this member stopped leading).
    pub fn clear(&self) {
        self.inner
            .ranges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Each installed range's rate now and its sample since the previous
    /// call (which this call empties), in routing-key order.
    pub fn readings(&self) -> Vec<RangeReading> {
        let slots = self.slots();
        let now = self.now();
        slots
            .iter()
            .map(|s| RangeReading {
                range: s.range.clone(),
                ops_per_sec: s.ops.rate(now),
                sample_keys: s.sample.take(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::keyspace::initial_hash_ranges;

    /// A range of group 1 at epoch 1 (also used by `keys`' tests).
    pub(super) fn range(id: u64, start: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            id,
            start: start.to_vec(),
            end: end.to_vec(),
            epoch: 1,
            gid: 1,
        }
    }

    #[test]
    fn nothing_is_counted_before_ranges_are_installed() {
        let t = LoadTracker::new(PartitionMode::Range, Duration::from_secs(10));
        t.record(b"a");
        t.record_scan(b"", b"");
        assert!(t.readings().is_empty());
    }

    #[test]
    fn range_mode_attributes_keys_batches_and_scans_to_their_ranges() {
        let t = LoadTracker::new(PartitionMode::Range, Duration::from_secs(10));
        // Installed out of order; "m".. is not this group's.
        t.install(vec![range(2, b"g", b"m"), range(1, b"", b"g")]);
        for _ in 0..30 {
            t.record(b"apple");
        }
        t.record(b"house");
        t.record(b"zebra");
        t.record_batch([b"hat".as_slice(), b"ice".as_slice(), b"bee".as_slice()]);
        t.record_scan(b"c", b"h");
        t.record_scan(b"x", b"");
        std::thread::sleep(Duration::from_millis(20));
        let r = t.readings();
        assert_eq!(r.iter().map(|r| r.range.id).collect::<Vec<_>>(), [1, 2]);
        assert!(r[0].ops_per_sec > r[1].ops_per_sec);
        // Sample keys are routing keys (= keys in range mode) of that range.
        assert!(r[0]
            .sample_keys
            .iter()
            .all(|k| k.as_slice() < b"g".as_slice()));
        assert!(r[0].sample_keys.contains(&b"apple".to_vec()));
        assert_eq!(
            r[1].sample_keys,
            [b"hat".to_vec(), b"house".to_vec(), b"ice".to_vec()]
        );
        // The sample was taken: the next reading has none.
        assert!(t.readings().iter().all(|r| r.sample_keys.is_empty()));
    }

    #[test]
    fn hash_mode_routes_by_the_key_hash() {
        let t = LoadTracker::new(PartitionMode::Hash, Duration::from_secs(10));
        let ranges = initial_hash_ranges(4, 1);
        t.install(ranges.clone());
        t.record(b"user-7");
        let rk = PartitionMode::Hash.routing_key(b"user-7");
        let owner = ranges.iter().find(|r| r.contains(&rk)).unwrap().id;
        let r = t.readings();
        for reading in &r {
            let expected: Vec<Vec<u8>> = if reading.range.id == owner {
                vec![rk.clone()]
            } else {
                vec![]
            };
            assert_eq!(reading.sample_keys, expected, "range {}", reading.range.id);
        }
    }

    #[test]
    fn reinstalling_keeps_unchanged_ranges_and_resets_changed_ones() {
        let t = LoadTracker::new(PartitionMode::Range, Duration::from_secs(10));
        t.install(vec![range(1, b"", b"g"), range(2, b"g", b"")]);
        t.record(b"a");
        t.record(b"z");
        std::thread::sleep(Duration::from_millis(5));
        // Range 2 was split: its first half has a new epoch and bound.
        let mut split = range(2, b"g", b"p");
        split.epoch = 2;
        t.install(vec![range(1, b"", b"g"), split, range(3, b"p", b"")]);
        let r = t.readings();
        assert!(r[0].ops_per_sec > 0.0);
        assert_eq!((r[1].ops_per_sec, r[2].ops_per_sec), (0.0, 0.0));
        t.clear();
        assert!(t.readings().is_empty());
    }
}
