//! Deterministic, minimal-movement assignment of ranges to groups, run after
//! every `Join` and `Leave`.
//!
//! # Algorithm
//!
//! With `R` ranges and `G` groups, a balanced assignment (counts differ by at
//! most one) gives every group `q = R / G` ranges and exactly `r = R % G`
//! groups one more. [`rebalance`]:
//!
//! 1. counts the ranges each remaining group owns; ranges owned by no
//!    remaining group (a group that left, or the unassigned bootstrap ranges)
//!    are *orphans*;
//! 2. sets the targets: the `r` groups owning the most ranges (ties: lower
//!    gid) get `q + 1`, the others `q` ([`targets`]);
//! 3. pools the orphans, then the surplus of every group above its target,
//!    taking donors from most ranges to fewest (ties: lower gid) and each
//!    donor's ranges from the top of the key space down;
//! 4. hands the pool out, in key order, to the groups below their target,
//!    from fewest ranges to most (ties: lower gid).
//!
//! So the group with the most ranges gives to the group with the fewest, and
//! orphans go to the least loaded. A moved range's epoch is bumped (except on
//! its first assignment, when it had no owner).
//!
//! # Why it is minimal
//!
//! A range must change owner if its owner left, and a group must give away
//! at least `count - target` ranges if it is above its target. So for fixed
//! targets no assignment moves fewer than `orphans + Σ max(0, count - target)`
//! ranges, and the algorithm moves exactly that many: every pooled range fills
//! one deficit, and only pooled ranges move. Among balanced targets, giving
//! the `q + 1` slots to the groups that own the most ranges minimises the sum:
//! if a group with fewer ranges held a `+1` slot that a group with more ranges
//! lacked, swapping the two slots never raises the sum. [`min_moves`] computes
//! this bound. Consequences: a Join
//! of one group into a balanced config moves exactly the new group's target,
//! at most `ceil(R / G)` ranges, all to the new group; a Leave moves exactly
//! the leaving groups' ranges.
//!
//! # Determinism
//!
//! The result depends only on the ranges (in key order) and the set of gids:
//! groups are `BTreeSet`/`BTreeMap`s and every tie is broken by gid, so every
//! controller member computes the same config from the same log.
//!
//! # Initial placement
//!
//! When the first groups join, the bootstrap ranges exist but are unassigned,
//! so they are all orphans and step 4 deals them out in contiguous key-order
//! blocks, lower gids first. No placement strategy from
//! `shardline_proto::placement` is used: the bootstrap ranges are already the
//! virtual nodes (equal slices of the hash space in hash mode), so counting
//! them gives a perfect `max - min ≤ 1` spread, where a ring or rendezvous
//! hash would leave a binomial spread that needs this same correction pass.
//! Blocks also keep a group's ranges adjacent, which helps range-mode scans.
//!
//! `Move` is not sticky: a later Join or Leave may move a moved range again,
//! but only if its group is above its target.

use std::collections::{BTreeMap, BTreeSet};

use shardline_proto::keyspace::KeyRange;

/// The gid of "no group"; never a real group.
pub const UNASSIGNED: u64 = 0;

/// One owner change made by [`rebalance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub range_id: u64,
    /// [`UNASSIGNED`] for a range's first assignment.
    pub from: u64,
    pub to: u64,
}

/// How many ranges each group of `groups` owns now (0 if none).
fn counts(ranges: &[KeyRange], groups: &BTreeSet<u64>) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = groups.iter().map(|&g| (g, 0)).collect();
    for r in ranges {
        if let Some(c) = counts.get_mut(&r.gid) {
            *c += 1;
        }
    }
    counts
}

/// Groups ordered by `(count desc, gid asc)`: the order of the `q + 1` slots
/// and of donors.
fn most_first(counts: &BTreeMap<u64, usize>) -> Vec<(u64, usize)> {
    let mut order: Vec<(u64, usize)> = counts.iter().map(|(&g, &c)| (g, c)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    order
}

/// The balanced range count of each group given current `counts` and `total`
/// ranges: `total / G`, plus one for the `total % G` groups owning the most.
pub fn targets(counts: &BTreeMap<u64, usize>, total: usize) -> BTreeMap<u64, usize> {
    if counts.is_empty() {
        return BTreeMap::new();
    }
    let (q, r) = (total / counts.len(), total % counts.len());
    most_first(counts)
        .into_iter()
        .enumerate()
        .map(|(i, (g, _))| (g, q + usize::from(i < r)))
        .collect()
}

/// The fewest owner changes that balance `ranges` over `groups`.
pub fn min_moves(ranges: &[KeyRange], groups: &BTreeSet<u64>) -> usize {
    if groups.is_empty() {
        return 0;
    }
    let counts = counts(ranges, groups);
    let targets = targets(&counts, ranges.len());
    let orphans = ranges.iter().filter(|r| !groups.contains(&r.gid)).count();
    orphans
        + counts
            .iter()
            .map(|(g, &c)| c.saturating_sub(targets[g]))
            .sum::<usize>()
}

/// Reassigns `ranges` (sorted by start) so that the range counts of `groups`
/// differ by at most one, moving exactly [`min_moves`] ranges. With no groups
/// nothing moves.
pub fn rebalance(ranges: &mut [KeyRange], groups: &BTreeSet<u64>) -> Vec<Moved> {
    if groups.is_empty() {
        return Vec::new();
    }
    let counts = counts(ranges, groups);
    let targets = targets(&counts, ranges.len());

    let mut pool: Vec<usize> = (0..ranges.len())
        .filter(|&i| !groups.contains(&ranges[i].gid))
        .collect();
    for (gid, count) in most_first(&counts) {
        let surplus = count.saturating_sub(targets[&gid]);
        if surplus > 0 {
            let owned: Vec<usize> = (0..ranges.len())
                .filter(|&i| ranges[i].gid == gid)
                .collect();
            pool.extend_from_slice(&owned[owned.len() - surplus..]);
        }
    }

    let mut receivers: Vec<(u64, usize)> = counts.iter().map(|(&g, &c)| (g, c)).collect();
    receivers.sort_by_key(|&(g, c)| (c, g));
    let mut pool = pool.into_iter();
    let mut moved = Vec::new();
    for (gid, count) in receivers {
        for i in pool.by_ref().take(targets[&gid].saturating_sub(count)) {
            let range = &mut ranges[i];
            moved.push(Moved {
                range_id: range.id,
                from: range.gid,
                to: gid,
            });
            if range.gid != UNASSIGNED {
                range.epoch += 1;
            }
            range.gid = gid;
        }
    }
    debug_assert!(pool.next().is_none(), "pool and deficits must match");
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::keyspace::initial_hash_ranges;

    fn owned_by(owners: &[u64]) -> Vec<KeyRange> {
        let mut ranges = initial_hash_ranges(owners.len() as u64, UNASSIGNED);
        for (r, &g) in ranges.iter_mut().zip(owners) {
            r.gid = g;
        }
        ranges
    }

    fn spread(ranges: &[KeyRange], groups: &BTreeSet<u64>) -> usize {
        let c = counts(ranges, groups);
        c.values().max().unwrap() - c.values().min().unwrap()
    }

    /// Fewest moves over every choice of which groups get the `q + 1` slots.
    fn brute_force_min(owners: &[u64], groups: &BTreeSet<u64>) -> usize {
        let gs: Vec<u64> = groups.iter().copied().collect();
        let (q, r) = (owners.len() / gs.len(), owners.len() % gs.len());
        (0u32..1 << gs.len())
            .filter(|mask| mask.count_ones() as usize == r)
            .map(|mask| {
                let kept: usize = gs
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        let t = q + usize::from(mask & (1 << i) != 0);
                        owners.iter().filter(|&&o| o == *g).count().min(t)
                    })
                    .sum();
                owners.len() - kept
            })
            .min()
            .unwrap()
    }

    #[test]
    fn rebalance_matches_brute_force_minimum_on_small_cases() {
        // Every owner vector of up to 7 ranges over gids {0 (gone), 1, 2, 3},
        // balanced onto groups {1, 2, 3} and onto {2, 3}.
        for n in 1..=7u32 {
            for code in 0..4u32.pow(n) {
                let owners: Vec<u64> = (0..n).map(|i| u64::from(code / 4u32.pow(i) % 4)).collect();
                for groups in [BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 3])] {
                    let mut ranges = owned_by(&owners);
                    let moved = rebalance(&mut ranges, &groups);
                    assert!(spread(&ranges, &groups) <= 1, "{owners:?}");
                    assert_eq!(
                        moved.len(),
                        brute_force_min(&owners, &groups),
                        "{owners:?} -> {groups:?}"
                    );
                    assert_eq!(moved.len(), min_moves(&owned_by(&owners), &groups));
                    assert!(ranges.iter().all(|r| groups.contains(&r.gid)));
                }
            }
        }
    }

    #[test]
    fn most_loaded_gives_to_least_loaded_with_ties_by_gid() {
        // Group 1 holds 5, group 2 holds 1, group 3 holds 0; 6 ranges -> 2 each.
        let mut ranges = owned_by(&[1, 1, 1, 1, 1, 2]);
        let moved = rebalance(&mut ranges, &BTreeSet::from([1, 2, 3]));
        let gids: Vec<u64> = ranges.iter().map(|r| r.gid).collect();
        // Group 1 gives its top three ranges; group 3 (fewest) is served first.
        assert_eq!(gids, vec![1, 1, 3, 3, 2, 2]);
        assert_eq!(
            moved
                .iter()
                .map(|m| (m.range_id, m.from, m.to))
                .collect::<Vec<_>>(),
            vec![(3, 1, 3), (4, 1, 3), (5, 1, 2)]
        );
        assert_eq!(ranges[2].epoch, 1);
        assert_eq!(ranges[0].epoch, 0);
    }

    #[test]
    fn bootstrap_ranges_are_dealt_in_key_order_blocks_without_epoch_bumps() {
        let mut ranges = initial_hash_ranges(7, UNASSIGNED);
        let moved = rebalance(&mut ranges, &BTreeSet::from([5, 9]));
        assert_eq!(moved.len(), 7);
        let gids: Vec<u64> = ranges.iter().map(|r| r.gid).collect();
        assert_eq!(gids, vec![5, 5, 5, 5, 9, 9, 9]);
        assert!(ranges.iter().all(|r| r.epoch == 0));
    }

    #[test]
    fn balanced_input_does_not_move_and_no_groups_moves_nothing() {
        let mut ranges = owned_by(&[1, 2, 3, 1, 2]);
        let before = ranges.clone();
        assert!(rebalance(&mut ranges, &BTreeSet::from([1, 2, 3])).is_empty());
        assert!(rebalance(&mut ranges, &BTreeSet::new()).is_empty());
        assert_eq!(ranges, before);
        assert_eq!(targets(&BTreeMap::new(), 5), BTreeMap::new());
    }
}
