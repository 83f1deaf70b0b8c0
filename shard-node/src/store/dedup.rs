//! The exactly-once session table: remembers the result of every client write
//! that the client may still retry, so a retry is answered, not re-applied.
//!
//! Two tables, both part of the state machine (and of snapshots):
//! - `dedup`: `client_id (16 bytes) ++ seq (u64 big-endian)` -> postcard(`Applied`: first-applied index and result);
//!   big-endian seqs make one client's entries a contiguous, ordered run.
//! - `dedup_floor`: `client_id` -> floor. Every seq below the floor was
//!   acknowledged by the client (`Session::ack_below`): its result is forgotten
//!   and a command still carrying it answers `DuplicateExpired { floor }`.
//!
//! Sessions age by the clock in each proposal (`SessionClock`, the
//! leader's time carried in the log, so every replica agrees):
//! - `dedup_seen`: `client_id` -> time of the client's latest write;
//! - `dedup_expiry`: `seen BE ++ client_id` -> (), the same, ordered by time.
//!
//! A session unused for longer than the TTL is forgotten whole: its results,
//! floor and times. A write of that client arriving afterwards is treated as
//! new, so the TTL must exceed how long any client keeps retrying one write
//! (the client's retries are bounded by seconds; the default TTL is an hour).

use std::ops::Bound;

use super::staged::Layer;
use crate::types::{Applied, Session};
use shardline_raft::store::codec::{decode, encode};
use shardline_raft::store::StoreError;

/// Length of a dedup key: client id then big-endian seq.
pub(crate) const DEDUP_KEY_LEN: usize = 16 + 8;
/// Length of a dedup floor key: the client id.
pub(crate) const CLIENT_ID_LEN: usize = 16;
/// Length of an expiry index key: time then client id.
const EXPIRY_KEY_LEN: usize = 8 + CLIENT_ID_LEN;

/// What the session table says about a command before it is applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Never seen: apply it, then [`record`] the result.
    Fresh,
    /// Applied before: answer the stored result without applying again.
    Replay(Applied),
    /// Below the client's floor: applied before, result forgotten.
    Expired { floor: u64 },
}

/// The session tables as the apply path sees them (staged changes over
/// redb, see [`super::staged`]).
pub(crate) struct DedupTables<'a> {
    pub results: Layer<'a, &'static [u8]>,
    pub floors: Layer<'a, u64>,
    pub seen: Layer<'a, u64>,
    pub expiry: Layer<'a, ()>,
}

/// The expiry index key of a client last seen at `seen_ms`.
pub(crate) fn expiry_key(seen_ms: u64, client_id: &[u8]) -> [u8; EXPIRY_KEY_LEN] {
    let mut key = [0u8; EXPIRY_KEY_LEN];
    key[..8].copy_from_slice(&seen_ms.to_be_bytes());
    key[8..].copy_from_slice(client_id);
    key
}

/// The dedup key of `(client_id, seq)`.
pub(crate) fn dedup_key(client_id: &[u8; 16], seq: u64) -> [u8; DEDUP_KEY_LEN] {
    let mut key = [0u8; DEDUP_KEY_LEN];
    key[..CLIENT_ID_LEN].copy_from_slice(client_id);
    key[CLIENT_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl DedupTables<'_> {
    /// Looks `session` up without changing anything.
    pub(crate) fn check(&self, session: &Session) -> Result<Verdict, StoreError> {
        let key = dedup_key(&session.client_id, session.seq);
        if let Some(stored) = self.results.get(key.as_slice())? {
            return Ok(Verdict::Replay(decode("dedup result", &stored)?));
        }
        let floor = self.floor(&session.client_id)?;
        if session.seq < floor {
            return Ok(Verdict::Expired { floor });
        }
        Ok(Verdict::Fresh)
    }

    /// Stores the result of a freshly applied command, then raises the
    /// client's floor to `ack_below` (never lowers it) and forgets every
    /// result below the new floor.
    pub(crate) fn record(&mut self, session: &Session, result: &Applied) -> Result<(), StoreError> {
        let key = dedup_key(&session.client_id, session.seq);
        let bytes = encode("dedup result", result)?;
        self.results.insert(key.as_slice(), bytes);

        let floor = self.floor(&session.client_id)?;
        if session.ack_below <= floor {
            return Ok(());
        }
        self.floors
            .insert(session.client_id.as_slice(), session.ack_below);
        let low = dedup_key(&session.client_id, 0);
        let high = dedup_key(&session.client_id, session.ack_below);
        self.results
            .remove_range(Bound::Included(&low), Bound::Excluded(&high))?;
        Ok(())
    }

    /// Records that `client_id` wrote at `now_ms` (moves its expiry entry).
    /// A time less than `resolution_ms` newer than the stored one is not
    /// written: a busy client costs one lookup per write, not three writes,
    /// and its session may expire up to `resolution_ms` early.
    pub(crate) fn touch(
        &mut self,
        client_id: &[u8; 16],
        now_ms: u64,
        resolution_ms: u64,
    ) -> Result<(), StoreError> {
        let previous = self.seen.get(client_id.as_slice())?;
        if previous.is_some_and(|p| now_ms.saturating_sub(p) < resolution_ms.max(1)) {
            return Ok(());
        }
        self.seen.insert(client_id.as_slice(), now_ms);
        if let Some(previous) = previous {
            self.expiry
                .remove(expiry_key(previous, client_id).as_slice())?;
        }
        self.expiry
            .insert(expiry_key(now_ms, client_id).as_slice(), ());
        Ok(())
    }

    /// Forgets up to `max` sessions last seen before `cutoff_ms`, oldest
    /// first: their results, floors and times. Returns how many it forgot.
    /// The bound keeps one apply short; the rest go with later proposals.
    pub(crate) fn expire(&mut self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError> {
        let end = expiry_key(cutoff_ms, &[0u8; CLIENT_ID_LEN]);
        let idle = self.expiry.keys_below(&end, max)?;
        for key in &idle {
            let client_id = &key[8..];
            self.expiry.remove(key.as_slice())?;
            self.seen.remove(client_id)?;
            self.floors.remove(client_id)?;
            let mut low = [0u8; DEDUP_KEY_LEN];
            low[..CLIENT_ID_LEN].copy_from_slice(client_id);
            let mut high = [0xffu8; DEDUP_KEY_LEN];
            high[..CLIENT_ID_LEN].copy_from_slice(client_id);
            self.results
                .remove_range(Bound::Included(&low), Bound::Included(&high))?;
        }
        if !idle.is_empty() {
            tracing::debug!(
                sessions = idle.len(),
                cutoff_ms,
                "expired idle client sessions"
            );
        }
        Ok(idle.len())
    }

    fn floor(&self, client_id: &[u8; 16]) -> Result<u64, StoreError> {
        Ok(self.floors.get(client_id.as_slice())?.unwrap_or(0))
    }
}
