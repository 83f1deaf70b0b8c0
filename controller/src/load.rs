//! Per-group and per-range load as last reported by each group's leader
//! (`ReportLoad`).
//!
//! Soft state, kept only in the memory of the controller member that leads
//! when the report arrives (followers forward reports to the leader): it is
//! never written to the Raft log, a new leader starts empty and fills up
//! with the next round of reports, and every figure carries its age.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use shardline_proto::pb;
use shardline_proto::shardmap::Config;
use tokio::time::Instant;

/// One group's last report.
#[derive(Debug, Clone)]
struct Report {
    at: Instant,
    ranges: Vec<pb::RangeLoad>,
}

/// Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct LoadTable {
    reports: Arc<Mutex<BTreeMap<u64, Report>>>,
}

impl LoadTable {
    /// Replaces group `gid`'s report.
    pub fn record(&self, gid: u64, ranges: Vec<pb::RangeLoad>) {
        let report = Report {
            at: Instant::now(),
            ranges,
        };
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gid, report);
    }

    /// The load of every group of `config`, in gid order. Figures count only
    /// reported ranges the config still gives to that group.
    pub fn summary(&self, config: &Config) -> Vec<pb::GroupLoad> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let counts = config.range_counts();
        config
            .groups
            .keys()
            .map(|&gid| {
                let mut load = pb::GroupLoad {
                    gid,
                    range_count: counts.get(&gid).copied().unwrap_or(0) as u32,
                    ops_per_sec: 0.0,
                    bytes: 0,
                    report_age_secs: None,
                };
                if let Some(r) = reports.get(&gid) {
                    load.report_age_secs = Some(r.at.elapsed().as_secs_f64());
                    let owned = r.ranges.iter().filter(|l| {
                        config
                            .range(l.range_id)
                            .is_some_and(|range| range.gid == gid)
                    });
                    for l in owned {
                        load.ops_per_sec += l.ops_per_sec;
                        load.bytes += l.bytes;
                    }
                }
                load
            })
            .collect()
    }

    /// Every range of `config`, in config (routing-key) order, with the
    /// figures its owner last reported for it at the range's current epoch.
    /// A range the owner has not reported at that epoch (never, or only
    /// before a split or move) has zero figures and no report age.
    pub fn ranges(&self, config: &Config) -> Vec<pb::RangeLoadStatus> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        config
            .ranges
            .iter()
            .map(|range| {
                let mut status = pb::RangeLoadStatus {
                    gid: range.gid,
                    range_id: range.id,
                    epoch: range.epoch,
                    start: range.start.clone(),
                    end: range.end.clone(),
                    ..Default::default()
                };
                let reported = reports.get(&range.gid).and_then(|r| {
                    r.ranges
                        .iter()
                        .find(|l| l.range_id == range.id && l.epoch == range.epoch)
                        .map(|l| (r.at, l))
                });
                if let Some((at, l)) = reported {
                    status.ops_per_sec = l.ops_per_sec;
                    status.keys = l.keys;
                    status.bytes = l.bytes;
                    status.report_age_secs = Some(at.elapsed().as_secs_f64());
                }
                status
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::keyspace::{initial_hash_ranges, PartitionMode};

    #[test]
    fn summary_counts_only_ranges_the_group_still_owns() {
        let mut config = Config::empty(PartitionMode::Hash);
        config.groups.insert(1, vec!["a:1".into()]);
        config.groups.insert(2, vec!["b:1".into()]);
        config.ranges = initial_hash_ranges(4, 1);
        config.ranges[3].gid = 2;
        let table = LoadTable::default();
        let load = |range_id, ops| pb::RangeLoad {
            range_id,
            ops_per_sec: ops,
            bytes: 10,
            ..Default::default()
        };
        // Range 4 belongs to group 2 now: group 1's stale figure is dropped.
        table.record(1, vec![load(1, 5.0), load(2, 1.0), load(4, 100.0)]);
        let s = table.summary(&config);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].gid, s[0].range_count, s[0].bytes), (1, 3, 20));
        assert_eq!(s[0].ops_per_sec, 6.0);
        assert!(s[0].report_age_secs.is_some());
        assert_eq!((s[1].gid, s[1].range_count), (2, 1));
        assert!(s[1].report_age_secs.is_none());
    }

    #[test]
    fn ranges_carry_their_owners_report_at_the_current_epoch() {
        let mut config = Config::empty(PartitionMode::Hash);
        config.groups.insert(1, vec!["a:1".into()]);
        config.groups.insert(2, vec!["b:1".into()]);
        config.ranges = initial_hash_ranges(4, 1);
        config.ranges[2].epoch = 3;
        config.ranges[3].gid = 2;
        let table = LoadTable::default();
        let load = |range_id, epoch, ops| pb::RangeLoad {
            range_id,
            epoch,
            ops_per_sec: ops,
            keys: 7,
            ..Default::default()
        };
        // Range 3 was reported at an old epoch; range 4 by its former owner.
        table.record(1, vec![load(1, 0, 5.0), load(3, 2, 9.0), load(4, 0, 100.0)]);
        let r = table.ranges(&config);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r.iter().map(|r| r.range_id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!((r[0].gid, r[0].ops_per_sec, r[0].keys), (1, 5.0, 7));
        assert!(r[0].report_age_secs.is_some());
        assert_eq!(r[0].end, config.ranges[0].end);
        for stale in &r[1..] {
            assert_eq!(stale.ops_per_sec, 0.0, "range {}", stale.range_id);
            assert!(stale.report_age_secs.is_none(), "range {}", stale.range_id);
        }
        assert_eq!((r[2].epoch, r[3].gid), (3, 2));
    }
}
