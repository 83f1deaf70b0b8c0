//! Stored keys and bytes per range, as cheaply as the store allows.
//!
//! The store keeps no per-range figures (its range metadata is bounds
//! only) but knows the group's totals: the key count in O(1) (redb keeps
//! table lengths) and the stored bytes of keys and values from redb's table
//! stats (a walk of the table's pages). So:
//! - a group reporting one range reports those totals for it;
//! - in hash mode the totals are shared among the ranges in proportion to
//!   their width in the hash space: routing keys are uniform hashes, so this
//!   is an unbiased estimate (relative error about `1/sqrt(keys)`);
//! - in range mode widths mean nothing, so each range is measured exactly by
//!   paging through it with `KvReader::scan` (which walks range-mode keys in
//!   order, O(keys in the range) per report), adding up key and value
//!   lengths (range-mode storage keys are the user keys).
//!
//! Either way the totals include keys of ranges the group has given away
//! but not yet deleted. Hash-mode bytes count the 8-byte hash prefix of each
//! storage key.

use shardline_proto::keyspace::{KeyRange, PartitionMode};

use crate::store::{KvReader, StoreError};

/// Pairs read per page when counting a range-mode range.
const PAGE: usize = 128;

/// What one range stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RangeSize {
    pub keys: u64,
    /// Bytes of stored keys and values.
    pub bytes: u64,
}

/// What each of `ranges` (this group's) stores, in the same order.
/// Blocking: call from `spawn_blocking`.
pub fn per_range(reader: &KvReader, ranges: &[KeyRange]) -> Result<Vec<RangeSize>, StoreError> {
    if ranges.len() <= 1 || reader.partition_mode() == PartitionMode::Hash {
        let (keys, bytes) = reader.stored_size()?;
        let shares = apportion(keys, ranges)
            .into_iter()
            .zip(apportion(bytes, ranges))
            .map(|(keys, bytes)| RangeSize { keys, bytes })
            .collect();
        return Ok(shares);
    }
    ranges.iter().map(|r| measure_range(reader, r)).collect()
}

/// Splits `total` among `ranges` by their width in the 64-bit hash space.
fn apportion(total: u64, ranges: &[KeyRange]) -> Vec<u64> {
    if ranges.len() == 1 {
        return vec![total];
    }
    let bound = |b: &[u8], empty: u128| -> u128 {
        match <[u8; 8]>::try_from(b) {
            Ok(bytes) => u128::from(u64::from_be_bytes(bytes)),
            Err(_) => empty,
        }
    };
    let widths: Vec<u128> = ranges
        .iter()
        .map(|r| bound(&r.end, 1 << 64).saturating_sub(bound(&r.start, 0)))
        .collect();
    let sum: u128 = widths.iter().sum();
    if sum == 0 {
        return vec![0; ranges.len()];
    }
    widths
        .iter()
        .map(|w| ((u128::from(total) * w + sum / 2) / sum) as u64)
        .collect()
}

/// Keys and bytes of one range-mode range, measured by paging through it.
fn measure_range(reader: &KvReader, range: &KeyRange) -> Result<RangeSize, StoreError> {
    let mut size = RangeSize::default();
    let mut start = range.start.clone();
    loop {
        let (page, more) = reader.scan(&start, &range.end, PAGE)?;
        size.keys += page.len() as u64;
        size.bytes += page
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>();
        match page.last() {
            Some((last, _)) if more => {
                // The smallest key after `last`.
                start = last.clone();
                start.push(0);
            }
            _ => return Ok(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::EntryPayload;
    use shardline_proto::keyspace::initial_hash_ranges;

    use crate::load::tests::range;
    use crate::store;
    use crate::types::{BatchOp, Command, Entry, Op, TypeConfig};

    /// A store in `mode` holding `keys` (applied as one batch).
    async fn store_with(mode: PartitionMode, keys: &[String]) -> (tempfile::TempDir, KvReader) {
        let dir = tempfile::tempdir().unwrap();
        let opened = store::open(&dir.path().join("s.redb"), 1, mode).unwrap();
        let ops = keys
            .iter()
            .map(|k| BatchOp::Put {
                key: k.as_bytes().to_vec(),
                value: b"v".to_vec(),
            })
            .collect();
        let command = Command {
            session: None,
            op: Op::Batch { ops },
        };
        let entry = Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(1, 1, 1),
            payload: EntryPayload::Normal(command.into()),
        };
        opened.sm.apply_batch(vec![entry]).await.unwrap();
        (dir, opened.reader)
    }

    #[tokio::test]
    async fn range_mode_counts_each_range_exactly_across_pages() {
        // 300 keys under "a", 5 under "m", none from "t" on: more than two
        // pages in the first range.
        let mut keys: Vec<String> = (0..300).map(|i| format!("a{i:03}")).collect();
        keys.extend((0..5).map(|i| format!("m{i}")));
        let (_dir, reader) = store_with(PartitionMode::Range, &keys).await;
        let ranges = [
            range(1, b"", b"b"),
            range(2, b"b", b"t"),
            range(3, b"t", b""),
        ];
        // "a000".."a299" are 4 bytes, "m0".."m4" 2, every value 1.
        let size = |keys, bytes| RangeSize { keys, bytes };
        assert_eq!(
            per_range(&reader, &ranges).unwrap(),
            vec![size(300, 1500), size(5, 15), size(0, 0)]
        );
        // One range: the group's totals from redb, without a scan.
        assert_eq!(
            per_range(&reader, &[KeyRange::full(1, 1)]).unwrap(),
            vec![size(305, 1515)]
        );
    }

    #[tokio::test]
    async fn hash_mode_shares_the_stored_total() {
        let keys: Vec<String> = (0..400).map(|i| format!("k{i}")).collect();
        let (_dir, reader) = store_with(PartitionMode::Hash, &keys).await;
        let sizes = per_range(&reader, &initial_hash_ranges(4, 1)).unwrap();
        assert!(sizes.iter().all(|s| s.keys == 100), "{sizes:?}");
        // Stored bytes: 8-byte hash prefix + user key + 1-byte value per pair,
        // "k0".."k399" being 2-4 bytes long.
        let total = keys.iter().map(|k| k.len() as u64 + 1).sum::<u64>() + 8 * 400;
        assert_eq!(reader.stored_size().unwrap(), (400, total));
        // Four equal widths: a quarter each, rounded.
        assert!(
            sizes.iter().all(|s| s.bytes.abs_diff(total / 4) <= 1),
            "{sizes:?} of {total}"
        );
    }

    #[test]
    fn hash_keys_are_shared_by_width() {
        let ranges = initial_hash_ranges(4, 1);
        assert_eq!(apportion(1000, &ranges), vec![250, 250, 250, 250]);
        // A group owning ranges 1 and 3 of 4 halves its keys between them.
        let owned = vec![ranges[0].clone(), ranges[2].clone()];
        assert_eq!(apportion(1001, &owned), vec![501, 501]);
        // A narrower range gets less.
        let mut split = ranges[3].clone();
        split.end = (u64::MAX - u64::MAX / 8).to_be_bytes().to_vec();
        let shares = apportion(300, &[ranges[0].clone(), split]);
        assert_eq!(shares, vec![200, 100]);
        assert_eq!(apportion(7, &[KeyRange::full(1, 1)]), vec![7]);
    }
}
