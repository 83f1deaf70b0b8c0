//! Serving leader-only requests from any member: a request is handled here
//! if this member leads, otherwise forwarded over gRPC to the leader.
//!
//! [`Forwarder::on_leader`] loops, within the request's deadline (its gRPC
//! timeout, else `--request-timeout`) and at most [`MAX_ROUTES`] times:
//! 1. find the leader from this member's Raft metrics, waiting (bounded)
//!    while none is known — or, after a failed attempt, until a different
//!    leader is known;
//! 2. if it is this member, run the local handler; if that finds leadership
//!    gone (`NotLeader`/`NoLeader`), go round again;
//! 3. otherwise forward the request to the leader with the remaining
//!    deadline. A `NotLeader` answer with a hint is followed at once; a
//!    connection that could not be made, or `NoLeader`, goes round again.
//!    Anything else (including a timeout, after which a write's outcome is
//!    unknown) is the answer.
//!
//! A forwarded request carries the [`FORWARDED_BY`] header, and a member
//! that receives one but does not lead answers `NotLeader` with the leader
//! hint instead of forwarding again, so requests never bounce between
//! members. Clients that talk to a member directly therefore only ever see
//! `NotLeader` when they route through a stale member twice.

use openraft::async_runtime::watch::WatchReceiver;
use std::future::Future;
use std::time::Duration;

use openraft::ServerState;
use shardline_proto::pb::controller_client::ControllerClient;
use shardline_proto::pb::error_detail::Kind;
use shardline_proto::status::{self, detail_of};
use shardline_raft::network::ChannelPool;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::types::Raft;

/// Metadata key marking a forwarded request; its value is the forwarder's id.
pub const FORWARDED_BY: &str = "x-shardline-forwarded-by";
/// Most routing rounds (local attempts and forwards) for one request.
pub const MAX_ROUTES: u32 = 5;
/// Deadline margin kept back for answering the caller.
const MARGIN: Duration = Duration::from_millis(20);
/// Upper bound of any request's deadline here.
const MAX_BUDGET: Duration = Duration::from_secs(60);

/// Where a leader-only request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    Leader { id: u64, addr: String },
}

/// Finds the leader and forwards requests to it.
#[derive(Clone)]
pub struct Forwarder {
    pub raft: Raft,
    pub pool: ChannelPool,
    pub node_id: u64,
    /// Deadline of requests that carry no gRPC timeout.
    pub default_timeout: Duration,
}

/// Parses a `grpc-timeout` header value (`<digits><H|M|S|m|u|n>`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Whether `status` says "this member does not lead": try another route.
fn leaderless(status: &Status) -> bool {
    matches!(
        detail_of(status),
        Some(Kind::NotLeader(_)) | Some(Kind::NoLeader(_))
    )
}

/// Whether a forward failed before reaching the leader's service (the
/// connection could not be made), so sending it elsewhere is safe.
fn not_delivered(status: &Status) -> bool {
    status.code() == Code::Unavailable
        && detail_of(status).is_none()
        && std::error::Error::source(status).is_some()
}

impl Forwarder {
    /// The deadline of a request received now.
    pub fn deadline(&self, metadata: &MetadataMap) -> Instant {
        let budget = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|d| d.saturating_sub(MARGIN))
            .unwrap_or(self.default_timeout)
            .min(MAX_BUDGET);
        Instant::now() + budget
    }

    pub fn is_forwarded(metadata: &MetadataMap) -> bool {
        metadata.contains_key(FORWARDED_BY)
    }

    fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The current route, waiting until `deadline` for a known leader other
    /// than `avoid`.
    pub async fn route(&self, deadline: Instant, avoid: Option<u64>) -> Result<Route, Status> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let usable = |m: &shardline_raft::RaftMetrics<crate::types::TypeConfig>| {
            m.current_leader.is_some()
                && m.current_leader != avoid
                && (m.current_leader != Some(m.id) || m.state == ServerState::Leader)
        };
        let m = self
            .raft
            .wait(Some(wait))
            .metrics(usable, "a usable leader")
            .await
            .map_err(|_| status::no_leader(self.term()))?;
        let leader = m.current_leader.expect("checked by the wait condition");
        if leader == self.node_id {
            return Ok(Route::Local);
        }
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .ok_or_else(|| status::no_leader(m.current_term))?;
        Ok(Route::Leader { id: leader, addr })
    }

    /// Serves `msg` on the leader: `local` here if this member leads, else
    /// `remote` on the leader's `Controller` service.
    pub async fn on_leader<Req, Resp, L, LF, R, RF>(
        &self,
        request: Request<Req>,
        local: L,
        remote: R,
    ) -> Result<Resp, Status>
    where
        Req: Clone,
        L: Fn(Req, Instant) -> LF,
        LF: Future<Output = Result<Resp, Status>>,
        R: Fn(ControllerClient<Channel>, Request<Req>) -> RF,
        RF: Future<Output = Result<Response<Resp>, Status>>,
    {
        let forwarded = Self::is_forwarded(request.metadata());
        let deadline = self.deadline(request.metadata());
        let msg = request.into_inner();
        let mut avoid = None;
        let mut hinted: Option<Route> = None;
        let mut last = status::no_leader(self.term());
        for _ in 0..MAX_ROUTES {
            let route = match hinted.take() {
                Some(r) => r,
                None => self.route(deadline, avoid).await?,
            };
            match route {
                Route::Local => match local(msg.clone(), deadline).await {
                    Err(s) if leaderless(&s) && !forwarded => {
                        avoid = Some(self.node_id);
                        last = s;
                    }
                    other => return other,
                },
                Route::Leader { id, addr } if forwarded => {
                    return Err(status::not_leader(Some(id), Some(addr)))
                }
                Route::Leader { id, addr } => {
                    match self.forward(&addr, msg.clone(), deadline, &remote).await {
                        Err(s) if leaderless(&s) || not_delivered(&s) => {
                            tracing::debug!(leader = id, %addr, error = %s.message(), "forward failed; rerouting");
                            if let Some(Kind::NotLeader(nl)) = detail_of(&s) {
                                if !nl.leader_addr.is_empty() && nl.leader_id != id {
                                    hinted = Some(Route::Leader {
                                        id: nl.leader_id,
                                        addr: nl.leader_addr,
                                    });
                                }
                            }
                            avoid = Some(id);
                            last = s;
                        }
                        other => return other,
                    }
                }
            }
        }
        Err(last)
    }

    /// One forwarded call to `addr` with the remaining deadline.
    async fn forward<Req, Resp, R, RF>(
        &self,
        addr: &str,
        msg: Req,
        deadline: Instant,
        remote: &R,
    ) -> Result<Resp, Status>
    where
        R: Fn(ControllerClient<Channel>, Request<Req>) -> RF,
        RF: Future<Output = Result<Response<Resp>, Status>>,
    {
        let channel = self
            .pool
            .get(addr)
            .map_err(|e| Status::internal(format!("bad leader address {addr:?}: {e}")))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut request = Request::new(msg);
        request.set_timeout(remaining);
        if let Ok(v) = self.node_id.to_string().parse() {
            request.metadata_mut().insert(FORWARDED_BY, v);
        }
        match tokio::time::timeout_at(deadline, remote(ControllerClient::new(channel), request))
            .await
        {
            Ok(r) => r.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the leader at {addr} did not answer within {remaining:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(
            parse_grpc_timeout("1999m"),
            Some(Duration::from_millis(1999))
        );
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("12q"), None);
    }

    #[test]
    fn statuses_classify_for_rerouting() {
        assert!(leaderless(&status::not_leader(Some(1), Some("a:1".into()))));
        assert!(leaderless(&status::no_leader(3)));
        assert!(!leaderless(&Status::unavailable("x")));
        // A server-sent Unavailable has no source: it was delivered.
        assert!(!not_delivered(&Status::unavailable("x")));
    }
}
