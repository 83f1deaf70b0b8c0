//! [`CommitLinger`]: holds a replication stream's commit-only AppendEntries
//! back for a moment, so that the request after it carries the commit
//! instead.
//!
//! openraft sends each follower an entry-less AppendEntries every time the
//! leader's commit index moves. Under a steady write load the next request,
//! carrying new entries and the same or a later commit, follows within a
//! fraction of a millisecond, so the commit-only request doubles what each
//! write costs: one more send and answer per follower, and two more wake-ups
//! of openraft's core per answer on the leader, all while the write is being
//! applied and answered. This adapter holds such a request for up to its
//! linger time. A request that follows in time replaces it, since it carries
//! a commit at least as new. A request still held when the time is up is sent
//! as it was, so a follower learns every commit within the linger (a
//! heartbeat carries it too).
//!
//! Dropping a commit-only request loses nothing openraft waits for. The
//! follower's answer would repeat the match it already reported, and
//! openraft's in-flight queue forgets the request once a later answer
//! acknowledges as much (replication progress is by log id, not per
//! request). Only a request that starts where the previous one on the same
//! stream ended and carries no entries is held; the first request of a
//! stream (a probe, a heartbeat) always goes at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::raft::AppendEntriesRequest;
use openraft::type_config::alias::LogIdOf;
use tokio::time::Sleep;

use crate::LogTypes;

/// How long a commit-only request may wait for a request to replace it.
/// At concurrency 1 the next write's entries follow in well under 1 ms.
pub const COMMIT_LINGER: Duration = Duration::from_millis(5);

/// A request stream whose commit-only requests linger (see the module doc).
pub struct CommitLinger<C: LogTypes, S> {
    inner: S,
    linger: Duration,
    /// Where the last request let through ended; `None` before the first.
    sent_last: Option<Option<LogIdOf<C>>>,
    /// The commit-only request being held.
    held: Option<AppendEntriesRequest<C>>,
    /// When the held request must go; one timer, reset for each hold.
    deadline: Pin<Box<Sleep>>,
    /// A request to let through before polling `inner` again.
    next: Option<AppendEntriesRequest<C>>,
    /// `inner` has ended.
    ended: bool,
}

// No field is pinned in place (the timer is boxed), so the adapter moves
// freely whatever the request's payload type is.
impl<C: LogTypes, S: Unpin> Unpin for CommitLinger<C, S> {}

impl<C: LogTypes, S> CommitLinger<C, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    /// Wraps `inner`; must be called within a tokio runtime (the timer).
    pub fn new(inner: S, linger: Duration) -> Self {
        CommitLinger {
            inner,
            linger,
            sent_last: None,
            held: None,
            deadline: Box::pin(tokio::time::sleep(linger)),
            next: None,
            ended: false,
        }
    }

    /// Whether `req` only moves the commit: no entries, and it starts where
    /// the last request let through ended.
    fn commit_only(&self, req: &AppendEntriesRequest<C>) -> bool {
        req.entries.is_empty() && self.sent_last.as_ref() == Some(&req.prev_log_id)
    }

    fn let_through(&mut self, req: AppendEntriesRequest<C>) -> AppendEntriesRequest<C> {
        let last = req.entries.last().map(|e| e.log_id).or(req.prev_log_id);
        self.sent_last = Some(last);
        req
    }

    /// Takes `req` from `inner`: holds it, or returns what to send now.
    fn take(&mut self, req: AppendEntriesRequest<C>) -> Option<AppendEntriesRequest<C>> {
        if self.commit_only(&req) {
            match &mut self.held {
                // A newer commit replaces the held one; its deadline stays,
                // so a run of commit-only requests cannot postpone it.
                Some(held) => {
                    if req.leader_commit >= held.leader_commit {
                        *held = req;
                    }
                }
                None => {
                    let due = tokio::time::Instant::now() + self.linger;
                    self.deadline.as_mut().reset(due);
                    self.held = Some(req);
                }
            }
            return None;
        }
        match self.held.take() {
            // openraft never lowers the commit within a stream; should a
            // request carry an older one, the held commit goes first.
            Some(held) if held.leader_commit > req.leader_commit => {
                self.next = Some(req);
                Some(held)
            }
            // The held request is dropped: `req` carries its commit.
            _ => Some(req),
        }
    }
}

impl<C: LogTypes, S> Stream for CommitLinger<C, S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    type Item = AppendEntriesRequest<C>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(req) = this.next.take() {
                return Poll::Ready(Some(this.let_through(req)));
            }
            if this.ended {
                break;
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(req)) => {
                    if let Some(send) = this.take(req) {
                        return Poll::Ready(Some(this.let_through(send)));
                    }
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if this.held.is_none() {
            return if this.ended {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        if this.ended || this.deadline.as_mut().poll(cx).is_ready() {
            let held = this.held.take().expect("checked above");
            return Poll::Ready(Some(this.let_through(held)));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_types::TestTypes;
    use crate::{LogId, Vote};
    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    type Req = AppendEntriesRequest<TestTypes>;

    fn log_id(index: u64) -> LogId {
        openraft::testing::log_id::<TestTypes>(1, 1, index)
    }

    /// Entries `(prev, last]`, committed up to `commit`.
    fn req(prev: u64, last: u64, commit: u64) -> Req {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(prev)),
            entries: (prev + 1..=last)
                .map(|i| openraft::Entry {
                    log_id: log_id(i),
                    payload: openraft::EntryPayload::Blank,
                })
                .collect(),
            leader_commit: Some(log_id(commit)),
        }
    }

    /// (prev, last, commit) of a request, for comparing.
    fn shape(r: &Req) -> (u64, u64, u64) {
        let last = r.entries.last().map_or(r.prev_log_id, |e| Some(e.log_id));
        (
            r.prev_log_id.unwrap().index,
            last.unwrap().index,
            r.leader_commit.unwrap().index,
        )
    }

    fn linger(
        linger: Duration,
    ) -> (
        mpsc::UnboundedSender<Req>,
        CommitLinger<TestTypes, UnboundedReceiverStream<Req>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            CommitLinger::new(UnboundedReceiverStream::new(rx), linger),
        )
    }

    async fn next(s: &mut CommitLinger<TestTypes, UnboundedReceiverStream<Req>>) -> Option<Req> {
        tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("the stream yields within 10 s")
    }

    const FOREVER: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_later_request_replaces_a_held_commit() {
        let (tx, mut s) = linger(FOREVER);
        tx.send(req(0, 1, 0)).unwrap();
        tx.send(req(1, 1, 1)).unwrap(); // commit-only: held
        tx.send(req(1, 2, 1)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (0, 1, 0));
        assert_eq!(shape(&next(&mut s).await.unwrap()), (1, 2, 1));
        drop(tx);
        assert!(next(&mut s).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_commit_goes_when_its_time_is_up() {
        let (tx, mut s) = linger(Duration::from_millis(20));
        tx.send(req(0, 1, 0)).unwrap();
        tx.send(req(1, 1, 1)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (0, 1, 0));
        let started = Instant::now();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (1, 1, 1));
        assert_eq!(started.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn newer_commits_replace_the_held_one_without_postponing_it() {
        let (tx, mut s) = linger(Duration::from_millis(50));
        tx.send(req(0, 3, 0)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (0, 3, 0));
        let started = Instant::now();
        tx.send(req(3, 3, 1)).unwrap();
        // Newer commits at 40 ms (before the deadline) and 80 ms (after).
        let feeder = tokio::spawn(async move {
            for commit in 2..=3 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                tx.send(req(3, 3, commit)).unwrap();
            }
            tx
        });
        assert_eq!(shape(&next(&mut s).await.unwrap()), (3, 3, 2));
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(shape(&next(&mut s).await.unwrap()), (3, 3, 3));
        assert_eq!(started.elapsed(), Duration::from_millis(130));
        drop(feeder.await.unwrap());
        assert!(next(&mut s).await.is_none());
    }

    #[tokio::test]
    async fn the_first_request_and_requests_elsewhere_are_never_held() {
        let (tx, mut s) = linger(FOREVER);
        // A stream's first request (a heartbeat, a probe) has no entries.
        tx.send(req(4, 4, 4)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (4, 4, 4));
        // An entry-less request that does not start where the last ended.
        tx.send(req(2, 2, 4)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (2, 2, 4));
    }

    #[tokio::test]
    async fn a_held_commit_is_sent_when_the_stream_ends() {
        let (tx, mut s) = linger(FOREVER);
        tx.send(req(0, 1, 0)).unwrap();
        tx.send(req(1, 1, 1)).unwrap();
        drop(tx);
        assert_eq!(shape(&next(&mut s).await.unwrap()), (0, 1, 0));
        assert_eq!(shape(&next(&mut s).await.unwrap()), (1, 1, 1));
        assert!(next(&mut s).await.is_none());
    }

    #[tokio::test]
    async fn an_older_commit_never_overtakes_the_held_one() {
        let (tx, mut s) = linger(FOREVER);
        tx.send(req(0, 1, 0)).unwrap();
        tx.send(req(1, 1, 1)).unwrap();
        tx.send(req(1, 2, 0)).unwrap();
        assert_eq!(shape(&next(&mut s).await.unwrap()), (0, 1, 0));
        assert_eq!(shape(&next(&mut s).await.unwrap()), (1, 1, 1));
        assert_eq!(shape(&next(&mut s).await.unwrap()), (1, 2, 0));
    }
}
