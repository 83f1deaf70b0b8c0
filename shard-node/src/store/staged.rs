//! [`Staged`]: state-machine changes that are applied but not yet written to
//! redb, table by table, and [`Layer`]: one table as the apply path sees it,
//! those changes laid over what redb holds.
//!
//! The apply path reads and writes only through layers, so its logic is the
//! same whether the changes are written at once or many applies later
//! ([`super::deferred`] decides when). A [`Staged`] is written to redb in
//! one transaction ([`Staged::write`]); until then nothing in redb changes.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, Table, TableDefinition, TableError, Value,
};
use shardline_raft::store::applied::{LAST_APPLIED, LAST_MEMBERSHIP};
use shardline_raft::store::{put_record, StoreError};

use super::tables;
use crate::types::{LogId, StoredMembership};

/// A value type of a state-machine table (keys are always bytes), held
/// owned while its change waits in [`Staged`].
pub(crate) trait Column: Value + Sized + 'static {
    type Owned: Clone + Debug;
    fn to_owned_value(value: Self::SelfType<'_>) -> Self::Owned;
    fn insert(
        table: &mut Table<'_, &'static [u8], Self>,
        key: &[u8],
        value: &Self::Owned,
    ) -> Result<(), redb::StorageError>;
}

impl Column for &'static [u8] {
    type Owned = Vec<u8>;
    fn to_owned_value(value: &[u8]) -> Vec<u8> {
        value.to_vec()
    }
    fn insert(
        table: &mut Table<'_, &'static [u8], Self>,
        key: &[u8],
        value: &Vec<u8>,
    ) -> Result<(), redb::StorageError> {
        table.insert(key, value.as_slice()).map(drop)
    }
}

impl Column for u64 {
    type Owned = u64;
    fn to_owned_value(value: u64) -> u64 {
        value
    }
    fn insert(
        table: &mut Table<'_, &'static [u8], Self>,
        key: &[u8],
        value: &u64,
    ) -> Result<(), redb::StorageError> {
        table.insert(key, *value).map(drop)
    }
}

impl Column for () {
    type Owned = ();
    fn to_owned_value(_: ()) {}
    fn insert(
        table: &mut Table<'_, &'static [u8], Self>,
        key: &[u8],
        _: &(),
    ) -> Result<(), redb::StorageError> {
        table.insert(key, ()).map(drop)
    }
}

/// The staged changes of one table: key -> new value, or `None` = removed.
pub(crate) struct Changes<V: Column>(BTreeMap<Vec<u8>, Option<V::Owned>>);

impl<V: Column> Default for Changes<V> {
    fn default() -> Self {
        Changes(BTreeMap::new())
    }
}

impl<V: Column> Changes<V> {
    /// The staged change of `key`: `Some(None)` = removed, `None` = none.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<V::Owned>> {
        self.0.get(key).cloned()
    }

    /// The staged changes between `low` and `high`, in key order.
    pub(crate) fn copy_range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
    ) -> Vec<(Vec<u8>, Option<V::Owned>)> {
        self.0
            .range::<[u8], _>((low, high))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    fn write_to(&self, table: &mut Table<'_, &'static [u8], V>) -> Result<(), StoreError> {
        for (key, value) in &self.0 {
            match value {
                Some(value) => V::insert(table, key, value)?,
                None => {
                    table.remove(key.as_slice())?;
                }
            }
        }
        Ok(())
    }
}

/// One table read through its staged changes.
pub(crate) struct Layer<'a, V: Column> {
    /// What redb holds (`None`: the table does not exist yet, i.e. is empty).
    base: Option<ReadOnlyTable<&'static [u8], V>>,
    changes: &'a mut Changes<V>,
}

impl<'a, V: Column> Layer<'a, V> {
    pub(crate) fn open(
        txn: &ReadTransaction,
        table: TableDefinition<&'static [u8], V>,
        changes: &'a mut Changes<V>,
    ) -> Result<Self, StoreError> {
        let base = match txn.open_table(table) {
            Ok(base) => Some(base),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Layer { base, changes })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<V::Owned>, StoreError> {
        if let Some(change) = self.changes.0.get(key) {
            return Ok(change.clone());
        }
        let Some(base) = &self.base else {
            return Ok(None);
        };
        Ok(base.get(key)?.map(|g| V::to_owned_value(g.value())))
    }

    pub(crate) fn insert(&mut self, key: &[u8], value: V::Owned) {
        self.changes.0.insert(key.to_vec(), Some(value));
    }

    /// Removes `key`; returns whether it existed.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let existed = self.get(key)?.is_some();
        if existed {
            self.changes.0.insert(key.to_vec(), None);
        }
        Ok(existed)
    }

    /// Removes every key between `low` and `high`.
    pub(crate) fn remove_range(
        &mut self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
    ) -> Result<(), StoreError> {
        for key in self.keys(low, high, usize::MAX)? {
            self.changes.0.insert(key, None);
        }
        Ok(())
    }

    /// The first `max` keys below `end`, in order.
    pub(crate) fn keys_below(&self, end: &[u8], max: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.keys(Bound::Unbounded, Bound::Excluded(end), max)
    }

    /// The first `max` keys between `low` and `high` as the layer shows
    /// them (staged changes over redb), in order.
    fn keys(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let base = match &self.base {
            Some(base) => Some(base.range::<&[u8]>((low, high))?),
            None => None,
        };
        let base = base.into_iter().flatten().map(|item| {
            item.map(|(key, _)| (key.value().to_vec(), ()))
                .map_err(StoreError::from)
        });
        let staged = self
            .changes
            .0
            .range::<[u8], _>((low, high))
            .map(|(key, value)| (key.clone(), value.as_ref().map(drop)));
        merge(base, staged)
            .take(max)
            .map(|item| item.map(|(key, ())| key))
            .collect()
    }
}

/// Pairs of `base` (what redb holds, in key order) with `staged` changes
/// (in key order) laid over them: a staged value replaces the base's, a
/// staged removal hides it.
pub(crate) fn merge<V, B, S>(
    base: B,
    staged: S,
) -> impl Iterator<Item = Result<(Vec<u8>, V), StoreError>>
where
    B: Iterator<Item = Result<(Vec<u8>, V), StoreError>>,
    S: Iterator<Item = (Vec<u8>, Option<V>)>,
{
    let mut base = base.peekable();
    let mut staged = staged.peekable();
    std::iter::from_fn(move || loop {
        let order = match (base.peek(), staged.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(Ok(_)), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok((b, _))), Some((s, _))) => b.cmp(s),
        };
        match order {
            Ordering::Less => return base.next(),
            Ordering::Equal => drop(base.next()),
            Ordering::Greater => {}
        }
        if let Some((key, Some(value))) = staged.next() {
            return Some(Ok((key, value)));
        }
    })
}

/// Every state-machine change applied and not yet written, with the
/// applied state it leads to.
#[derive(Default)]
pub(crate) struct Staged {
    pub kv: Changes<&'static [u8]>,
    pub results: Changes<&'static [u8]>,
    pub floors: Changes<u64>,
    pub seen: Changes<u64>,
    pub expiry: Changes<()>,
    /// The last entry applied into these changes.
    pub last_applied: Option<LogId>,
    /// The membership of the last membership entry among them.
    pub membership: Option<StoredMembership>,
    /// Entries applied into these changes, and their payload bytes.
    pub entries: usize,
    pub bytes: usize,
}

impl Staged {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Writes every change in one transaction, with [`Durability::None`]
    /// (see `state_machine::apply_entries` for why that is crash-safe).
    pub(crate) fn write(&self, db: &Database) -> Result<(), StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            self.kv.write_to(&mut txn.open_table(tables::KV)?)?;
            self.results.write_to(&mut txn.open_table(tables::DEDUP)?)?;
            self.floors
                .write_to(&mut txn.open_table(tables::DEDUP_FLOOR)?)?;
            self.seen
                .write_to(&mut txn.open_table(tables::DEDUP_SEEN)?)?;
            self.expiry
                .write_to(&mut txn.open_table(tables::DEDUP_EXPIRY)?)?;
            let mut meta = txn.open_table(tables::SM_META)?;
            if let Some(last) = &self.last_applied {
                put_record(&mut meta, LAST_APPLIED, last)?;
            }
            if let Some(m) = &self.membership {
                put_record(&mut meta, LAST_MEMBERSHIP, m)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable};

    const T: TableDefinition<&'static [u8], &'static [u8]> = TableDefinition::new("t");

    fn db_with(keys: &[&str]) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for k in keys {
                t.insert(k.as_bytes(), b"base".as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        (dir, db)
    }

    fn all(db: &Database, changes: &Changes<&'static [u8]>) -> Vec<(String, String)> {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            changes.write_to(&mut t).unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(T).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (
                    String::from_utf8(k.value().to_vec()).unwrap(),
                    String::from_utf8(v.value().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn strings(keys: Vec<Vec<u8>>) -> Vec<String> {
        keys.into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn reads_see_staged_changes_over_the_base_and_writing_applies_them() {
        let (_dir, db) = db_with(&["a", "b", "c"]);
        let mut changes = Changes::default();
        {
            let txn = db.begin_read().unwrap();
            let mut layer = Layer::open(&txn, T, &mut changes).unwrap();
            layer.insert(b"b", b"new".to_vec());
            assert!(layer.remove(b"c").unwrap());
            assert!(!layer.remove(b"zz").unwrap(), "absent key");
            assert_eq!(layer.get(b"a").unwrap(), Some(b"base".to_vec()));
            assert_eq!(layer.get(b"b").unwrap(), Some(b"new".to_vec()));
            assert_eq!(layer.get(b"c").unwrap(), None);
        }
        let txn = db.begin_read().unwrap();
        let base = txn.open_table(T).unwrap();
        assert!(
            base.get(b"c".as_slice()).unwrap().is_some(),
            "redb untouched"
        );
        drop((base, txn));
        assert_eq!(
            all(&db, &changes),
            vec![("a".into(), "base".into()), ("b".into(), "new".into())]
        );
    }

    #[test]
    fn keys_below_merges_both_sides_in_order_skipping_removed_keys() {
        let (_dir, db) = db_with(&["b", "d", "f", "h"]);
        let mut changes = Changes::default();
        let txn = db.begin_read().unwrap();
        let mut layer = Layer::open(&txn, T, &mut changes).unwrap();
        layer.insert(b"a", Vec::new());
        layer.insert(b"d", Vec::new());
        layer.insert(b"e", Vec::new());
        layer.remove(b"f").unwrap();
        assert_eq!(
            strings(layer.keys_below(b"h", 10).unwrap()),
            ["a", "b", "d", "e"]
        );
        assert_eq!(strings(layer.keys_below(b"h", 2).unwrap()), ["a", "b"]);
        assert_eq!(strings(layer.keys_below(b"a", 10).unwrap()), [""; 0]);
    }

    #[test]
    fn remove_range_removes_staged_and_base_keys_within_bounds_only() {
        let (_dir, db) = db_with(&["a", "c", "e"]);
        let mut changes = Changes::default();
        {
            let txn = db.begin_read().unwrap();
            let mut layer = Layer::open(&txn, T, &mut changes).unwrap();
            layer.insert(b"b", b"s".to_vec());
            layer.insert(b"d", b"s".to_vec());
            layer
                .remove_range(Bound::Included(b"b"), Bound::Excluded(b"e"))
                .unwrap();
            assert_eq!(strings(layer.keys_below(b"z", 10).unwrap()), ["a", "e"]);
        }
        assert_eq!(
            all(&db, &changes),
            vec![("a".into(), "base".into()), ("e".into(), "base".into())]
        );
    }

    #[test]
    fn a_missing_table_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let mut changes: Changes<u64> = Changes::default();
        let txn = db.begin_read().unwrap();
        let mut layer = Layer::open(&txn, TableDefinition::new("none"), &mut changes).unwrap();
        assert_eq!(layer.get(b"k").unwrap(), None);
        layer.insert(b"k", 5);
        assert_eq!(layer.get(b"k").unwrap(), Some(5));
        assert_eq!(strings(layer.keys_below(b"z", 5).unwrap()), ["k"]);
    }
}
