//! Placement strategies that map a 64-bit key hash onto a set of weighted
//! nodes, and a [`report`] measuring how evenly they spread keys and how many
//! keys move when a node joins or leaves.
//!
//! - [`HashRing`]: consistent hashing. Each node puts `vnodes × weight` points
//!   on a 64-bit ring; a key belongs to the first point at or after its hash.
//! - [`Rendezvous`]: highest-random-weight hashing. A key belongs to the node
//!   with the highest score `-weight / ln(u)`, where `u ∈ (0, 1)` is the
//!   key/node hash; with equal weights that is simply the highest hash.
//!
//! Both hash with xxh3-64 (the routing hash of [`crate::keyspace`]) and break
//! ties by the lower node id, so every process computes the same placement.
//! The shard controller balances ranges by count instead (see the controller's
//! `balance` module); these strategies are here to be measured and compared,
//! and back the `shardline placement` command.

use std::collections::BTreeMap;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::keyspace::key_hash;

/// Why a placement or report cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    #[error("at least one node is needed")]
    NoNodes,
    #[error("at least one key is needed")]
    NoKeys,
    #[error("at least one virtual node per node is needed")]
    NoVnodes,
    #[error("node {node} has weight {weight}; weights must be finite and positive")]
    BadWeight { node: u64, weight: f64 },
}

/// A way to map key hashes onto a changing set of weighted nodes.
pub trait Placement {
    /// Short name used in reports.
    fn name(&self) -> &'static str;
    /// Adds `node` (or changes its weight if present).
    fn add(&mut self, node: u64, weight: f64) -> Result<(), PlacementError>;
    /// Removes `node`; absent nodes are ignored.
    fn remove(&mut self, node: u64);
    /// The node owning `key_hash`, or `None` when there are no nodes.
    fn owner(&self, key_hash: u64) -> Option<u64>;
}

fn check_weight(node: u64, weight: f64) -> Result<(), PlacementError> {
    if weight.is_finite() && weight > 0.0 {
        Ok(())
    } else {
        Err(PlacementError::BadWeight { node, weight })
    }
}

/// xxh3-64 of two big-endian words.
fn hash_pair(a: u64, b: u64) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_be_bytes());
    buf[8..].copy_from_slice(&b.to_be_bytes());
    xxh3_64(&buf)
}

/// Consistent-hash ring with virtual nodes.
#[derive(Debug, Clone)]
pub struct HashRing {
    /// Points per unit of weight.
    vnodes: u32,
    /// `(point hash, node)`, sorted, so lookups are a binary search.
    points: Vec<(u64, u64)>,
}

impl HashRing {
    /// An empty ring giving each node `vnodes × weight` points (at least one).
    pub fn new(vnodes: u32) -> Result<Self, PlacementError> {
        if vnodes == 0 {
            return Err(PlacementError::NoVnodes);
        }
        Ok(HashRing {
            vnodes,
            points: Vec::new(),
        })
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Placement for HashRing {
    fn name(&self) -> &'static str {
        "ring"
    }

    fn add(&mut self, node: u64, weight: f64) -> Result<(), PlacementError> {
        check_weight(node, weight)?;
        self.remove(node);
        let count = ((self.vnodes as f64 * weight).round() as u64).max(1);
        self.points
            .extend((0..count).map(|i| (hash_pair(node, i), node)));
        self.points.sort_unstable();
        Ok(())
    }

    fn remove(&mut self, node: u64) {
        self.points.retain(|&(_, n)| n != node);
    }

    fn owner(&self, key_hash: u64) -> Option<u64> {
        let i = self.points.partition_point(|&(h, _)| h < key_hash);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|&(_, n)| n)
    }
}

/// Rendezvous (highest-random-weight) hashing.
#[derive(Debug, Clone, Default)]
pub struct Rendezvous {
    /// node -> weight; a BTreeMap so ties resolve to the lowest id.
    nodes: BTreeMap<u64, f64>,
}

impl Rendezvous {
    pub fn new() -> Self {
        Self::default()
    }

    /// The score of `node` for `key_hash`; the highest score wins.
    fn score(key_hash: u64, node: u64, weight: f64) -> f64 {
        // Top 53 bits as a uniform u in (0, 1); -w/ln(u) grows with u, so
        // with equal weights the highest hash wins.
        let u = ((hash_pair(key_hash, node) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -weight / u.ln()
    }
}

impl Placement for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn add(&mut self, node: u64, weight: f64) -> Result<(), PlacementError> {
        check_weight(node, weight)?;
        self.nodes.insert(node, weight);
        Ok(())
    }

    fn remove(&mut self, node: u64) {
        self.nodes.remove(&node);
    }

    fn owner(&self, key_hash: u64) -> Option<u64> {
        let mut best: Option<(f64, u64)> = None;
        for (&node, &weight) in &self.nodes {
            let s = Self::score(key_hash, node, weight);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, node));
            }
        }
        best.map(|(_, n)| n)
    }
}

/// How one strategy placed the sample keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    /// `"ring"` or `"rendezvous"`.
    pub strategy: &'static str,
    /// Fraction of the keys each node owns, by node id `0..nodes`.
    pub shares: Vec<f64>,
    /// Root-mean-square deviation of each share from its ideal share.
    pub std_dev: f64,
    /// The largest share divided by its ideal share (1.0 is perfect).
    pub max_over_ideal: f64,
    /// Fraction of keys whose owner changed when node `nodes` (weight 1) joined.
    pub moved_on_join: f64,
    /// Fraction of keys the joined node ended up owning.
    pub joined_node_share: f64,
    /// Fraction of keys whose owner changed when node `nodes - 1` left
    /// (absent with a single node).
    pub moved_on_leave: Option<f64>,
}

/// Side-by-side measurement of the ring and rendezvous hashing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementReport {
    pub nodes: usize,
    /// Ring points per unit of weight.
    pub vnodes: u32,
    pub keys: usize,
    pub weights: Vec<f64>,
    /// Each node's weight over the total weight.
    pub ideal_shares: Vec<f64>,
    /// The least a join can move: the new node's fair share.
    pub ideal_moved_on_join: f64,
    /// The least a leave can move: the leaving node's fair share.
    pub ideal_moved_on_leave: Option<f64>,
    /// `[ring, rendezvous]`.
    pub strategies: Vec<StrategyReport>,
}

/// [`report_weighted`] with `nodes` nodes of weight 1.
pub fn report(nodes: usize, vnodes: u32, keys: usize) -> Result<PlacementReport, PlacementError> {
    report_weighted(&vec![1.0; nodes], vnodes, keys)
}

/// Places `keys` sample keys (`"key-0"`, `"key-1"`, … hashed like user keys)
/// on nodes `0..weights.len()` with both strategies, then measures a join of
/// node `weights.len()` (weight 1) and a leave of the last node.
pub fn report_weighted(
    weights: &[f64],
    vnodes: u32,
    keys: usize,
) -> Result<PlacementReport, PlacementError> {
    if weights.is_empty() {
        return Err(PlacementError::NoNodes);
    }
    if keys == 0 {
        return Err(PlacementError::NoKeys);
    }
    let hashes = sample_keys(keys);
    let total: f64 = weights.iter().sum();
    let ideal_shares: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let mut ring = HashRing::new(vnodes)?;
    let ring = measure(&mut ring, weights, &ideal_shares, &hashes)?;
    let rendezvous = measure(&mut Rendezvous::new(), weights, &ideal_shares, &hashes)?;
    Ok(PlacementReport {
        nodes: weights.len(),
        vnodes,
        keys,
        weights: weights.to_vec(),
        ideal_moved_on_join: 1.0 / (total + 1.0),
        ideal_moved_on_leave: (weights.len() > 1).then(|| ideal_shares[weights.len() - 1]),
        ideal_shares,
        strategies: vec![ring, rendezvous],
    })
}

/// Hashes of the sample keys `"key-0" .. "key-{n-1}"`.
pub fn sample_keys(n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| key_hash(format!("key-{i}").as_bytes()))
        .collect()
}

/// The owner of every key (`u64::MAX` if there are no nodes).
pub fn owners(p: &impl Placement, hashes: &[u64]) -> Vec<u64> {
    hashes
        .iter()
        .map(|&h| p.owner(h).unwrap_or(u64::MAX))
        .collect()
}

fn fraction(count: usize, of: usize) -> f64 {
    count as f64 / of as f64
}

fn moved(before: &[u64], after: &[u64]) -> f64 {
    fraction(
        before.iter().zip(after).filter(|(a, b)| a != b).count(),
        before.len(),
    )
}

fn measure(
    p: &mut impl Placement,
    weights: &[f64],
    ideal: &[f64],
    hashes: &[u64],
) -> Result<StrategyReport, PlacementError> {
    let n = weights.len() as u64;
    for (node, &w) in (0..n).zip(weights) {
        p.add(node, w)?;
    }
    let base = owners(p, hashes);
    let mut counts = vec![0usize; weights.len()];
    for &o in &base {
        counts[o as usize] += 1;
    }
    let shares: Vec<f64> = counts.iter().map(|&c| fraction(c, hashes.len())).collect();
    let sq: f64 = shares.iter().zip(ideal).map(|(s, i)| (s - i).powi(2)).sum();
    let max_over_ideal = shares
        .iter()
        .zip(ideal)
        .map(|(s, i)| s / i)
        .fold(0.0, f64::max);

    p.add(n, 1.0)?;
    let joined = owners(p, hashes);
    let joined_node_share = fraction(joined.iter().filter(|&&o| o == n).count(), hashes.len());
    p.remove(n);

    let moved_on_leave = (n > 1).then(|| {
        p.remove(n - 1);
        let left = owners(p, hashes);
        p.add(n - 1, weights[n as usize - 1])
            .map(|()| moved(&base, &left))
    });
    Ok(StrategyReport {
        strategy: p.name(),
        std_dev: (sq / shares.len() as f64).sqrt(),
        max_over_ideal,
        moved_on_join: moved(&base, &joined),
        joined_node_share,
        moved_on_leave: moved_on_leave.transpose()?,
        shares,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(p: &mut impl Placement, nodes: u64) -> Vec<u64> {
        for n in 0..nodes {
            p.add(n, 1.0).unwrap();
        }
        owners(p, &sample_keys(50_000))
    }

    /// Keys whose owner changed, and keys owned by `node` in `owners`.
    fn changed_and_owned(
        before: &[u64],
        after: &[u64],
        node: u64,
        owners: &[u64],
    ) -> (Vec<usize>, Vec<usize>) {
        let changed = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        let owned = (0..owners.len()).filter(|&i| owners[i] == node).collect();
        (changed, owned)
    }

    #[test]
    fn ring_join_of_an_eleventh_node_moves_about_one_eleventh() {
        let r = report(10, 150, 100_000).unwrap();
        let ring = &r.strategies[0];
        assert_eq!(ring.strategy, "ring");
        let ideal = 1.0 / 11.0;
        assert!((r.ideal_moved_on_join - ideal).abs() < 1e-12);
        assert!(
            (ring.moved_on_join - ideal).abs() <= 0.2 * ideal,
            "ring moved {}",
            ring.moved_on_join
        );
        let rdv = &r.strategies[1];
        assert!(
            (rdv.moved_on_join - ideal).abs() <= 0.05 * ideal,
            "rendezvous moved {}",
            rdv.moved_on_join
        );
        for s in &r.strategies {
            // Only keys that the new node takes move.
            assert!((s.moved_on_join - s.joined_node_share).abs() < 1e-12);
            assert!((s.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!((s.moved_on_leave.unwrap() - s.shares[9]).abs() < 1e-12);
        }
    }

    #[test]
    fn rendezvous_moves_exactly_the_keys_the_new_node_wins() {
        let mut p = Rendezvous::new();
        let before = placed(&mut p, 10);
        p.add(10, 1.0).unwrap();
        let after = owners(&p, &sample_keys(50_000));
        let (changed, won) = changed_and_owned(&before, &after, 10, &after);
        assert!(!won.is_empty());
        assert_eq!(changed, won);
    }

    #[test]
    fn rendezvous_leave_moves_exactly_the_leaving_nodes_keys() {
        let mut p = Rendezvous::new();
        let before = placed(&mut p, 10);
        p.remove(3);
        let after = owners(&p, &sample_keys(50_000));
        let (changed, had) = changed_and_owned(&before, &after, 3, &before);
        assert!(!had.is_empty());
        assert_eq!(changed, had);
        assert!(!after.contains(&3));
    }

    #[test]
    fn ring_join_and_leave_only_move_keys_to_or_from_that_node() {
        let mut p = HashRing::new(150).unwrap();
        let before = placed(&mut p, 10);
        p.add(10, 1.0).unwrap();
        let after = owners(&p, &sample_keys(50_000));
        let (changed, won) = changed_and_owned(&before, &after, 10, &after);
        assert_eq!(changed, won);
        p.remove(10);
        p.remove(4);
        let left = owners(&p, &sample_keys(50_000));
        let (changed, had) = changed_and_owned(&before, &left, 4, &before);
        assert_eq!(changed, had);
    }

    #[test]
    fn more_virtual_nodes_spread_keys_more_evenly() {
        let coarse = report(10, 5, 50_000).unwrap().strategies[0].std_dev;
        let fine = report(10, 500, 50_000).unwrap().strategies[0].std_dev;
        assert!(
            fine < coarse / 2.0,
            "5 vnodes: {coarse}, 500 vnodes: {fine}"
        );
    }

    #[test]
    fn weights_scale_shares_in_both_strategies() {
        let r = report_weighted(&[1.0, 1.0, 2.0, 4.0], 200, 80_000).unwrap();
        assert_eq!(r.ideal_shares, vec![0.125, 0.125, 0.25, 0.5]);
        for s in &r.strategies {
            for (share, ideal) in s.shares.iter().zip(&r.ideal_shares) {
                assert!(
                    (share / ideal - 1.0).abs() < 0.15,
                    "{}: {share} vs {ideal}",
                    s.strategy
                );
            }
        }
        assert!((r.ideal_moved_on_join - 1.0 / 9.0).abs() < 1e-12);
        assert_eq!(r.ideal_moved_on_leave, Some(0.5));
    }

    #[test]
    fn placement_is_deterministic_and_ties_need_no_map_order() {
        assert_eq!(
            report(7, 40, 10_000).unwrap(),
            report(7, 40, 10_000).unwrap()
        );
        let mut a = Rendezvous::new();
        let mut b = Rendezvous::new();
        for n in 0..5 {
            a.add(n, 1.0).unwrap();
            b.add(4 - n, 1.0).unwrap();
        }
        let keys = sample_keys(1_000);
        assert_eq!(owners(&a, &keys), owners(&b, &keys));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert_eq!(report(0, 10, 10), Err(PlacementError::NoNodes));
        assert_eq!(report(3, 10, 0), Err(PlacementError::NoKeys));
        assert_eq!(report(3, 0, 10), Err(PlacementError::NoVnodes));
        assert!(matches!(
            report_weighted(&[1.0, -1.0], 10, 10),
            Err(PlacementError::BadWeight { node: 1, .. })
        ));
        assert!(matches!(
            report_weighted(&[f64::NAN], 10, 10),
            Err(PlacementError::BadWeight { node: 0, .. })
        ));
        let single = report(1, 10, 100).unwrap();
        assert_eq!(single.ideal_moved_on_leave, None);
        assert_eq!(single.strategies[1].moved_on_leave, None);
        assert_eq!(Rendezvous::new().owner(7), None);
        assert_eq!(HashRing::new(3).unwrap().owner(7), None);
    }
}
