//! Fixtures for the shard-controller suite: command builders, invariant
//! checks, and an independently derived lower bound on range movement.

#![allow(dead_code)]

use std::collections::BTreeMap;

use shardline_controller::{Command, ControllerState, Group};
use shardline_proto::shardmap::Config;

/// Three distinct member addresses for group `gid`.
pub fn addrs(gid: u64) -> Vec<String> {
    (0..3)
        .map(|i| format!("127.0.0.1:{}", 10_000 + gid * 3 + i))
        .collect()
}

pub fn join(gids: &[u64]) -> Command {
    Command::Join {
        groups: gids
            .iter()
            .map(|&gid| Group {
                gid,
                addresses: addrs(gid),
            })
            .collect(),
    }
}

pub fn leave(gids: &[u64]) -> Command {
    Command::Leave {
        gids: gids.to_vec(),
    }
}

/// Applies a command that must succeed and returns a copy of the new config.
pub fn ok(sm: &mut ControllerState, cmd: &Command) -> Config {
    match sm.apply(cmd) {
        Ok(c) => c.clone(),
        Err(e) => panic!("{cmd:?} failed: {e}"),
    }
}

pub fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("serializable")
}

/// Ranges per group, including groups with none.
pub fn counts(c: &Config) -> BTreeMap<u64, usize> {
    c.range_counts()
}

/// Structural invariants plus `max - min <= 1` over the config's groups.
pub fn check_balanced(c: &Config) {
    c.validate()
        .unwrap_or_else(|e| panic!("config {} invalid: {e}", c.num));
    if c.groups.is_empty() {
        assert!(
            c.ranges.is_empty(),
            "config {} has ranges but no groups",
            c.num
        );
        return;
    }
    let counts = counts(c);
    let (max, min) = (
        counts.values().max().unwrap(),
        counts.values().min().unwrap(),
    );
    assert!(max - min <= 1, "config {} unbalanced: {counts:?}", c.num);
}

/// Ranges (matched by id) whose owner differs between `prev` and `next`.
/// Bootstrap ranges (when `prev` has none) count as moved; the new half of
/// a split does not.
pub fn moved(prev: &Config, next: &Config) -> usize {
    if prev.ranges.is_empty() {
        return next.ranges.len();
    }
    let before: BTreeMap<u64, u64> = prev.ranges.iter().map(|r| (r.id, r.gid)).collect();
    next.ranges
        .iter()
        .filter(|r| before.get(&r.id).is_some_and(|&g| g != r.gid))
        .count()
}

/// Fewest owner changes any balanced assignment of `prev`'s ranges onto
/// `next`'s groups needs. Every balanced assignment gives `q = R / G` to each
/// group and one more to `r = R % G` groups; group `g` can keep at most
/// `min(count_g, target_g)` of its ranges, so at most
/// `Σ min(count_g, q) + min(r, #{g : count_g > q})` ranges stay put.
pub fn lower_bound(prev: &Config, next: &Config) -> usize {
    let total = if prev.ranges.is_empty() {
        next.ranges.len()
    } else {
        prev.ranges.len()
    };
    let g = next.groups.len();
    let (q, r) = (total / g, total % g);
    let mut per_group: BTreeMap<u64, usize> = next.groups.keys().map(|&gid| (gid, 0)).collect();
    for range in &prev.ranges {
        if let Some(c) = per_group.get_mut(&range.gid) {
            *c += 1;
        }
    }
    let kept = per_group.values().map(|&c| c.min(q)).sum::<usize>()
        + r.min(per_group.values().filter(|&&c| c > q).count());
    total - kept
}

/// Checks a Join/Leave step: balanced, exactly minimal movement, ids and
/// bounds unchanged, epochs bumped exactly on moved ranges.
pub fn check_rebalance_step(prev: &Config, next: &Config) -> usize {
    check_balanced(next);
    assert_eq!(next.num, prev.num + 1);
    let n = moved(prev, next);
    assert_eq!(
        n,
        lower_bound(prev, next),
        "config {} moved {n}, more than needed",
        next.num
    );
    if !prev.ranges.is_empty() {
        assert_eq!(prev.ranges.len(), next.ranges.len());
        for (a, b) in prev.ranges.iter().zip(&next.ranges) {
            assert_eq!((a.id, &a.start, &a.end), (b.id, &b.start, &b.end));
            assert_eq!(
                b.epoch,
                a.epoch + u64::from(a.gid != b.gid),
                "range {} epoch",
                a.id
            );
        }
    }
    n
}

/// A routing key halfway through a hash-mode range, if it has an interior.
pub fn hash_midpoint(start: &[u8], end: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8]| u128::from(u64::from_be_bytes(b.try_into().unwrap()));
    let lo = if start.is_empty() { 0 } else { word(start) };
    let hi = if end.is_empty() {
        1u128 << 64
    } else {
        word(end)
    };
    let mid = (lo + hi) / 2;
    (mid > lo).then(|| (mid as u64).to_be_bytes().to_vec())
}
