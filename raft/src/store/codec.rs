//! postcard encoding of everything a store keeps as bytes: log entries,
//! vote and log ids, memberships, state-machine records and snapshots.
//!
//! Decoding failures are [`StoreError::Codec`] naming what was being decoded,
//! so corrupted bytes surface as errors, never as panics.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;

/// Encodes `value`; `what` names it in the error.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|source| StoreError::Codec { what, source })
}

/// Decodes a `T` from `bytes`; `what` names it in the error.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Codec { what, source })
}
