//! Typed records in `&str -> &[u8]` metadata tables (vote, log ids,
//! memberships, identity fields), the identity check stores run on open, and
//! the durable commit that records which must survive a crash go through.

use redb::{Durability, ReadableTable, Table, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{decode, encode};
use super::error::StoreError;

/// The shape of every metadata table: record name -> postcard bytes.
pub type MetaTable = redb::TableDefinition<'static, &'static str, &'static [u8]>;

/// Reads and decodes the record `key` of a `&str -> &[u8]` table.
pub fn get_record<T, R>(table: &R, key: &'static str) -> Result<Option<T>, StoreError>
where
    T: DeserializeOwned,
    R: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        Some(guard) => Ok(Some(decode(key, guard.value())?)),
        None => Ok(None),
    }
}

/// Encodes and writes the record `key` of a `&str -> &[u8]` table.
pub fn put_record<T: Serialize>(
    table: &mut Table<&'static str, &'static [u8]>,
    key: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(key, value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Commits `txn` with [`Durability::Immediate`]: flushed before this
/// returns, with every earlier (non-durable) commit of the file.
pub fn commit_durably(mut txn: WriteTransaction) -> Result<(), StoreError> {
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

/// `Mismatch` unless `expected == found`.
pub fn check<T: PartialEq + std::fmt::Display>(
    field: &'static str,
    expected: T,
    found: T,
) -> Result<(), StoreError> {
    if expected == found {
        return Ok(());
    }
    Err(StoreError::Mismatch {
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    })
}
