//! [`apply_and_answer`]: the part of `RaftStateMachine::apply` every state
//! machine shares: take the entries openraft streams, apply them as one
//! batch, answer each entry's responder.

use std::future::Future;
use std::io;

use futures::{Stream, TryStreamExt};
use openraft::storage::EntryResponder;
use openraft::RaftTypeConfig;

use super::error::StoreError;

/// Collects the entries of `entries`, applies them with `apply` (one result
/// per entry, in order) and sends each result to its entry's responder, if
/// the entry has one (a leader's client writes do; a follower's never).
pub async fn apply_and_answer<C, S, F, Fut>(entries: S, apply: F) -> Result<(), io::Error>
where
    C: RaftTypeConfig,
    S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin,
    F: FnOnce(Vec<C::Entry>) -> Fut,
    Fut: Future<Output = Result<Vec<C::R>, StoreError>>,
{
    let batch: Vec<EntryResponder<C>> = entries.try_collect().await?;
    if batch.is_empty() {
        return Ok(());
    }
    let count = batch.len();
    let (entries, responders): (Vec<C::Entry>, Vec<_>) = batch.into_iter().unzip();
    let results = apply(entries).await.map_err(StoreError::write_sm)?;
    for (responder, result) in responders.into_iter().zip(results) {
        if let Some(responder) = responder {
            responder.send(result);
        }
    }
    tracing::trace!(count, "applied entries");
    Ok(())
}
