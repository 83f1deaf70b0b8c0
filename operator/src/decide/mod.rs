//! Pure decisions: given what was observed, what should happen. No I/O, so
//! every rule is unit-tested here and the reconciler only carries them out.
//!
//! - [`validation`]: is the spec acceptable (else `Degraded`, touch nothing).
//! - [`scale`]: which groups to provision, join, drain (Leave) and delete.
//! - [`membership`]: Raft membership steps when a group's `replicas`
//!   changes (add lowest first, remove highest first, quorum kept).
//! - [`rollout`]: which pod of a Raft group restarts next on a spec change.
//! - [`conditions`]: Ready / Progressing / Degraded and the phase.

pub mod conditions;
pub mod membership;
pub mod rollout;
pub mod scale;
pub mod validation;
