//! Batched linearizable-read barriers (the Raft "read index" protocol).
//!
//! A linearizable read must observe every write acknowledged before it
//! arrived. openraft's `ensure_linearizable` with `ReadPolicy::ReadIndex`
//! gives that by confirming leadership with a quorum acknowledgement of an
//! RPC sent after the request (never a lease) and waiting until the state
//! machine has applied the commit index. One such round per read costs a network round trip to
//! the followers, so reads arriving together share one: a background task
//! takes every read queued so far, runs one check, and releases them all.
//! A read is only released by a check that *started after it was queued*, so
//! batching never weakens the guarantee. A few checks may run at once so a
//! slow round does not stall the next batch.

use std::sync::Arc;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{LinearizableReadError, RaftError};
use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{ApiError, Refusal};
use crate::{Raft, RaftTypes};

/// Queued reads waiting for the next barrier.
const QUEUE_DEPTH: usize = 65_536;
/// Barrier rounds allowed in flight at once.
const MAX_ROUNDS_IN_FLIGHT: usize = 4;

/// Outcome of one barrier round, cheap to hand to every waiter.
type Outcome = Result<(), Refusal>;

/// Handle on the batching task; cheap to clone.
#[derive(Clone)]
pub struct ReadIndex {
    queue: mpsc::Sender<oneshot::Sender<Outcome>>,
}

impl ReadIndex {
    /// Starts the batching task; it ends when every handle is dropped.
    pub fn spawn<C: RaftTypes>(raft: Raft<C>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_batches(raft, rx));
        ReadIndex { queue: tx }
    }

    /// Returns once a read issued now may be served from the local state
    /// machine linearizably.
    pub async fn barrier(&self) -> Result<(), ApiError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        rx.await
            .map_err(|_| ApiError::ShuttingDown)?
            .map_err(ApiError::from)
    }
}

async fn run_batches<C: RaftTypes>(
    raft: Raft<C>,
    mut rx: mpsc::Receiver<oneshot::Sender<Outcome>>,
) {
    let rounds = Arc::new(Semaphore::new(MAX_ROUNDS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = rounds.clone().acquire_owned().await else {
            return;
        };
        // Everything queued by now joins this round.
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcome = check(&raft).await;
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
            drop(permit);
        });
    }
}

async fn check<C: RaftTypes>(raft: &Raft<C>) -> Outcome {
    let term = || raft.metrics().borrow_watched().current_term;
    match raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(
            Refusal::forward(f.leader_id, f.leader_node.map(|n| n.addr), term()),
        ),
        Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {
            Err(Refusal::NoLeader { term: term() })
        }
        Err(RaftError::Fatal(e)) => Err(Refusal::Failed(e.to_string())),
    }
}
