//! Hot ranges: which ranges of the latest config carry more load than a
//! threshold, judged only on fresh reports.
//!
//! Pure functions over the per-range view [`crate::load::LoadTable::ranges`]
//! builds, so `ClusterStatus` (and later the scheduler) decide the same way
//! and the rule is tested without a cluster.

use std::cmp::Ordering;
use std::time::Duration;

use shardline_proto::pb;

use crate::error::ControllerError;

/// How `ClusterStatus` decides hotness when the request does not say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotPolicy {
    /// Threshold used when a request names none (`--hot-threshold-ops`).
    pub default_ops_per_sec: f64,
    /// A report older than this is stale and makes no range hot
    /// (`--load-report-max-age`, about three report intervals).
    pub max_report_age: Duration,
}

/// The threshold a request asks for, or the default; it must be a finite
/// number >= 0.
pub fn threshold(requested: Option<f64>, default: f64) -> Result<f64, ControllerError> {
    let t = requested.unwrap_or(default);
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(ControllerError::BadHotThreshold {
            threshold: t.to_string(),
        })
    }
}

/// The ranges whose fresh report (age known and at most `max_age`) shows
/// more than `threshold` operations per second, hottest first (ties by
/// range id).
pub fn hot_ranges(
    ranges: &[pb::RangeLoadStatus],
    threshold: f64,
    max_age: Duration,
) -> Vec<pb::RangeLoadStatus> {
    let max_age = max_age.as_secs_f64();
    let mut hot: Vec<pb::RangeLoadStatus> = ranges
        .iter()
        .filter(|r| r.report_age_secs.is_some_and(|age| age <= max_age))
        .filter(|r| r.ops_per_sec > threshold)
        .cloned()
        .collect();
    hot.sort_by(|a, b| {
        b.ops_per_sec
            .partial_cmp(&a.ops_per_sec)
            .unwrap_or(Ordering::Equal)
            .then(a.range_id.cmp(&b.range_id))
    });
    hot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(range_id: u64, ops: f64, age: Option<f64>) -> pb::RangeLoadStatus {
        pb::RangeLoadStatus {
            gid: 1,
            range_id,
            ops_per_sec: ops,
            report_age_secs: age,
            ..Default::default()
        }
    }

    #[test]
    fn only_fresh_ranges_above_the_threshold_are_hot_hottest_first() {
        let max_age = Duration::from_secs(30);
        let ranges = [
            range(1, 50.0, Some(1.0)),
            range(2, 500.0, Some(2.0)),
            // Exactly at the threshold: not above it.
            range(3, 100.0, Some(1.0)),
            // Hot figure but the report is stale.
            range(4, 900.0, Some(31.0)),
            // Never reported.
            range(5, 0.0, None),
            range(6, 500.0, Some(30.0)),
            range(7, 101.0, Some(0.0)),
        ];
        let hot = hot_ranges(&ranges, 100.0, max_age);
        let ids: Vec<u64> = hot.iter().map(|r| r.range_id).collect();
        assert_eq!(ids, vec![2, 6, 7]);
        assert!(hot_ranges(&ranges, 1000.0, max_age).is_empty());
        // Threshold 0: any fresh range with load.
        let ids: Vec<u64> = hot_ranges(&ranges, 0.0, max_age)
            .iter()
            .map(|r| r.range_id)
            .collect();
        assert_eq!(ids, vec![2, 6, 7, 3, 1]);
    }

    #[test]
    fn threshold_defaults_and_rejects_nonsense() {
        assert_eq!(threshold(None, 5000.0), Ok(5000.0));
        assert_eq!(threshold(Some(0.0), 5000.0), Ok(0.0));
        assert_eq!(threshold(Some(12.5), 5000.0), Ok(12.5));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = threshold(Some(bad), 5000.0).unwrap_err();
            assert_eq!(e.kind(), "bad_hot_threshold");
        }
    }
}
