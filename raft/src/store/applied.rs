//! The two records every state machine keeps next to its data: the last
//! applied log id and the last membership, written in the same transaction
//! as the data they describe so they never disagree with it.

use redb::{ReadableTable, Table};

use super::error::StoreError;
use super::records::{get_record, put_record};
use crate::{LogId, StoredMembership};

/// Record name of the last applied log id.
pub const LAST_APPLIED: &str = "last_applied";
/// Record name of the last applied membership.
pub const LAST_MEMBERSHIP: &str = "last_membership";

/// Reads last applied log id and last membership from a metadata table.
pub fn read_applied_state<R>(meta: &R) -> Result<(Option<LogId>, StoredMembership), StoreError>
where
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let last_applied = get_record(meta, LAST_APPLIED)?;
    let membership = get_record(meta, LAST_MEMBERSHIP)?.unwrap_or_default();
    Ok((last_applied, membership))
}

/// Writes both records (`None` removes the last applied id).
pub fn write_applied_state(
    meta: &mut Table<&'static str, &'static [u8]>,
    last_applied: Option<LogId>,
    membership: &StoredMembership,
) -> Result<(), StoreError> {
    match last_applied {
        Some(id) => put_record(meta, LAST_APPLIED, &id)?,
        None => {
            meta.remove(LAST_APPLIED)?;
        }
    }
    put_record(meta, LAST_MEMBERSHIP, membership)
}
