//! Leader routing and the retry loop every call goes through.
//!
//! A [`Router`] knows the member endpoints of one group and remembers the
//! leader. Each call runs [`Router::call`]: pick the remembered leader (or the
//! current endpoint), run one attempt with the per-call deadline, and on
//! failure decide by the status's typed detail ([`classify`]):
//! - `NotLeader` with an address: follow the hint at once (no sleep);
//! - `NotLeader` without one, `NoLeader`, `Unavailable`, timeouts and
//!   transport failures: move to the next endpoint after a backoff sleep;
//! - `RangeMoving`: retry the same member after a backoff sleep;
//! - anything else (`InvalidArgument`, `WrongGroup`, ...): fail at once.
//!
//! The loop ends at the policy's attempt limit or the call's total deadline.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use shardline_proto::pb::error_detail::Kind;
use shardline_proto::status::detail_of;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::pool::{normalize_address, ChannelPool};

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// The leader is elsewhere and known: go there now.
    Redirect(String),
    /// This member cannot serve now: back off, then try the next one.
    NextEndpoint,
    /// This member will serve shortly: back off, then try it again.
    SameEndpoint,
    /// Retrying will not help.
    Fail,
}

/// Decides how to continue after `status`.
pub(crate) fn classify(status: &Status) -> Disposition {
    match detail_of(status) {
        Some(Kind::NotLeader(nl)) if !nl.leader_addr.is_empty() => {
            Disposition::Redirect(nl.leader_addr)
        }
        Some(Kind::NotLeader(_)) | Some(Kind::NoLeader(_)) => Disposition::NextEndpoint,
        Some(Kind::RangeMoving(_)) => Disposition::SameEndpoint,
        Some(_) => Disposition::Fail,
        None => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                Disposition::NextEndpoint
            }
            // A connection that broke mid-call surfaces as Unknown/Internal
            // built locally from the transport error (it has a source); the
            // same codes sent by a server are real answers.
            Code::Unknown | Code::Internal if std::error::Error::source(status).is_some() => {
                Disposition::NextEndpoint
            }
            _ => Disposition::Fail,
        },
    }
}

/// Endpoints of one group plus the remembered leader.
#[derive(Debug)]
pub(crate) struct Router {
    /// Configured member addresses, normalized; never empty.
    endpoints: Vec<String>,
    pool: ChannelPool,
    opts: ClientOptions,
    state: Mutex<RouteState>,
}

#[derive(Debug, Default)]
struct RouteState {
    /// Address of the member that last served a leader-only call, or that a
    /// `NotLeader` hint named. May be outside `endpoints`.
    leader: Option<String>,
    /// Index into `endpoints` of the member to try when no leader is known.
    cursor: usize,
}

impl Router {
    pub(crate) fn new(
        endpoints: Vec<String>,
        pool: ChannelPool,
        opts: ClientOptions,
    ) -> Result<Self, ClientError> {
        let mut eps: Vec<String> = Vec::new();
        for e in endpoints
            .iter()
            .map(|e| normalize_address(e))
            .filter(|e| !e.is_empty())
        {
            if !eps.contains(&e) {
                eps.push(e);
            }
        }
        if eps.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for e in &eps {
            pool.channel(e)?;
        }
        Ok(Router {
            endpoints: eps,
            pool,
            opts,
            state: Mutex::default(),
        })
    }

    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(crate) fn pool(&self) -> &ChannelPool {
        &self.pool
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.opts
    }

    pub(crate) fn leader(&self) -> Option<String> {
        self.state
            .lock()
            .expect("router mutex poisoned")
            .leader
            .clone()
    }

    fn target(&self) -> String {
        let s = self.state.lock().expect("router mutex poisoned");
        s.leader
            .clone()
            .unwrap_or_else(|| self.endpoints[s.cursor % self.endpoints.len()].clone())
    }

    fn set_leader(&self, address: &str) {
        self.state.lock().expect("router mutex poisoned").leader = Some(address.to_string());
    }

    /// `address` failed: forget it as leader and, if it is the current
    /// endpoint, move on (only then, so concurrent failures of one member
    /// advance the cursor once).
    fn skip(&self, address: &str) {
        let mut s = self.state.lock().expect("router mutex poisoned");
        if s.leader.as_deref() == Some(address) {
            s.leader = None;
        }
        let n = self.endpoints.len();
        if self.endpoints[s.cursor % n] == address {
            s.cursor = (s.cursor + 1) % n;
        }
    }

    /// Runs `attempt` with retries. `attempt` gets the pooled channel of the
    /// member to ask and the deadline of this attempt. `leader_only` says
    /// whether a success proves the member is the leader (false for stale
    /// reads, which any member serves).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        leader_only: bool,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let start = Instant::now();
        let deadline = start + self.opts.total_timeout;
        let max_attempts = self.opts.retry.max_attempts.max(1);
        let mut delays = self.opts.retry.delays();
        let mut attempts: u32 = 0;
        let mut redirects_in_row = 0usize;
        let mut last_address = String::new();
        let mut last_error = String::from("no attempt made");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::DeadlineExceeded {
                    op,
                    attempts,
                    elapsed: now - start,
                    last_address,
                    last_error,
                });
            }
            if attempts >= max_attempts {
                return Err(ClientError::Unavailable {
                    op,
                    attempts,
                    elapsed: now - start,
                    last_address,
                    last_error,
                });
            }
            attempts += 1;
            let address = self.target();
            let per_call = self.opts.call_timeout.min(deadline - now);
            let channel = match self.pool.channel(&address) {
                Ok(c) => c,
                Err(e) => {
                    // Only a hinted address can be bad (configured ones were
                    // checked up front): drop the hint and carry on.
                    last_address = address.clone();
                    last_error = e.to_string();
                    self.skip(&address);
                    continue;
                }
            };
            let status = match tokio::time::timeout(per_call, attempt(channel, per_call)).await {
                Ok(Ok(value)) => {
                    if leader_only {
                        self.set_leader(&address);
                    }
                    return Ok(value);
                }
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("no answer within {per_call:?}")),
            };
            last_address = address.clone();
            last_error = format!("{:?}: {}", status.code(), status.message());
            match classify(&status) {
                Disposition::Fail => return Err(ClientError::from_status(&address, &status)),
                Disposition::Redirect(hint) => {
                    let hint = normalize_address(&hint);
                    redirects_in_row += 1;
                    tracing::debug!(op, from = %address, to = %hint, "following leader hint");
                    let fresh = hint != address;
                    self.set_leader(&hint);
                    // Follow a hint at once, unless hints go round in circles
                    // (stale views during an election): then back off.
                    if fresh && redirects_in_row <= self.endpoints.len() + 1 {
                        continue;
                    }
                    if !fresh {
                        self.skip(&address);
                    }
                }
                Disposition::NextEndpoint => {
                    redirects_in_row = 0;
                    tracing::debug!(op, %address, error = %last_error, "member unavailable; trying the next");
                    self.skip(&address);
                }
                Disposition::SameEndpoint => {
                    redirects_in_row = 0;
                    tracing::debug!(op, %address, error = %last_error, "retrying the same member");
                }
            }
            let Some(delay) = delays.next() else {
                return Err(ClientError::Unavailable {
                    op,
                    attempts,
                    elapsed: start.elapsed(),
                    last_address,
                    last_error,
                });
            };
            let sleep_until = (Instant::now() + delay).min(deadline);
            tokio::time::sleep_until(sleep_until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::status as st;

    #[test]
    fn statuses_classify_by_typed_detail() {
        assert_eq!(
            classify(&st::not_leader(Some(2), Some("127.0.0.1:7402".into()))),
            Disposition::Redirect("127.0.0.1:7402".into())
        );
        assert_eq!(
            classify(&st::not_leader(None, None)),
            Disposition::NextEndpoint
        );
        assert_eq!(classify(&st::no_leader(3)), Disposition::NextEndpoint);
        assert_eq!(
            classify(&st::invalid_argument("key", "empty")),
            Disposition::Fail
        );
        assert_eq!(
            classify(&Status::unavailable("down")),
            Disposition::NextEndpoint
        );
        assert_eq!(
            classify(&Status::cancelled("Timeout expired")),
            Disposition::NextEndpoint
        );
        assert_eq!(classify(&Status::internal("server bug")), Disposition::Fail);
        assert_eq!(
            classify(&Status::invalid_argument("bad")),
            Disposition::Fail
        );
        let moving = st::with_detail(
            Code::Unavailable,
            "moving",
            Kind::RangeMoving(shardline_proto::pb::RangeMoving { range_id: 1 }),
        );
        assert_eq!(classify(&moving), Disposition::SameEndpoint);
    }

    #[test]
    fn skip_advances_once_and_forgets_leader() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = ChannelPool::new(Duration::from_millis(50));
            let r = Router::new(
                vec!["a:1".into(), "http://b:2".into(), "a:1".into()],
                pool,
                ClientOptions::default(),
            )
            .unwrap();
            assert_eq!(r.endpoints(), ["a:1", "b:2"]);
            assert_eq!(r.target(), "a:1");
            r.skip("a:1");
            r.skip("a:1");
            assert_eq!(r.target(), "b:2");
            r.set_leader("c:3");
            assert_eq!(r.target(), "c:3");
            r.skip("c:3");
            assert_eq!(r.target(), "b:2");
            assert!(Router::new(
                vec![" ".into()],
                ChannelPool::new(Duration::from_secs(1)),
                ClientOptions::default()
            )
            .is_err());
        });
    }
}
