//! [`ControllerClient`]: the shard controller's API — Join, Leave, Move,
//! Split, Query, WatchConfig, ReportLoad and ClusterStatus — with the same
//! channel pool, deadlines and retries as [`crate::KvClient`].
//!
//! Any controller member answers every call (members forward writes to the
//! leader), so calls go to one member and move on to the next only when it
//! is unreachable, has no leader, or answers with a `NotLeader` hint (which
//! is followed at once). Answers "no" are never retried: a rejected command
//! is a [`ClientError::Rejected`] carrying the controller's gRPC code
//! (`NotFound`, `AlreadyExists`, `FailedPrecondition`, `OutOfRange`) and
//! message, or a [`ClientError::InvalidArgument`] naming the field.
//!
//! # Retried writes
//! A write whose attempt timed out may have been applied. When its retry is
//! then rejected with exactly the error the first application would cause
//! (the group is already joined, the range is already owned, ...), the
//! client checks the latest config: if it shows the change, the call
//! succeeds with that config. So a retried Join does not fail with
//! "already joined" because its first attempt succeeded.
//!
//! # Watching
//! [`ControllerClient::watch`] returns a [`ConfigWatch`] that yields every
//! config after `from_num` exactly once, in order. When the member serving
//! the stream goes away, it reopens the stream on another member from the
//! last config it delivered.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use shardline_proto::pb;
use shardline_proto::pb::controller_client::ControllerClient as ControllerStub;
use shardline_proto::shardmap::Config;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::error::ClientError;
use crate::kv::timed;
use crate::options::ClientOptions;
use crate::pool::ChannelPool;
use crate::router::Router;

/// A Controller stub on `channel` with Shardline's message size limits.
pub fn controller_stub(channel: Channel) -> ControllerStub<Channel> {
    ControllerStub::new(channel)
        .max_decoding_message_size(shardline_proto::limits::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(shardline_proto::limits::MAX_MESSAGE_BYTES)
}

/// A group to join: its id and member addresses.
pub type GroupSpec = (u64, Vec<String>);

/// Client of the shard controller. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerClient {
    router: Arc<Router>,
}

/// Decodes and validates a config from the wire.
fn decode(address: &str, config: Option<pb::ShardConfig>) -> Result<Config, ClientError> {
    let bad = |message: String| ClientError::Rejected {
        address: address.to_string(),
        code: Code::Internal,
        message,
    };
    let config = config.ok_or_else(|| bad("the controller answered without a config".into()))?;
    let num = config.num;
    Config::try_from(config).map_err(|e| bad(format!("malformed config {num}: {e}")))
}

/// Whether `e` is a rejection with gRPC `code`.
fn rejected_with(e: &ClientError, code: Code) -> bool {
    matches!(e, ClientError::Rejected { code: c, .. } if *c == code)
}

/// The server names a controller member in errors; the router does not say
/// which member answered.
const ADDRESS: &str = "controller";

impl ControllerClient {
    /// A client of the controller whose members listen at `endpoints`.
    /// Connects lazily.
    pub async fn connect<I, S>(endpoints: I, opts: ClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let pool = ChannelPool::new(opts.connect_timeout);
        Self::with_pool(endpoints, opts, pool)
    }

    /// Like [`Self::connect`], sharing the channels of `pool`.
    pub fn with_pool<I, S>(
        endpoints: I,
        opts: ClientOptions,
        pool: ChannelPool,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints = endpoints.into_iter().map(Into::into).collect();
        Ok(ControllerClient {
            router: Arc::new(Router::new(endpoints, pool, opts)?),
        })
    }

    /// The configured endpoints, normalized.
    pub fn endpoints(&self) -> &[String] {
        self.router.endpoints()
    }

    /// One unary call with routing and retries; also reports how many
    /// attempts it took.
    async fn call<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        rpc: F,
    ) -> (Result<Resp, ClientError>, u32)
    where
        Req: Clone,
        F: Fn(ControllerStub<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let attempts = AtomicU32::new(0);
        let result = self
            .router
            .call(op, false, |channel, timeout| {
                attempts.fetch_add(1, Ordering::Relaxed);
                let fut = rpc(controller_stub(channel), timed(req.clone(), timeout));
                async move { fut.await.map(tonic::Response::into_inner) }
            })
            .await;
        (result, attempts.load(Ordering::Relaxed))
    }

    /// A write: on a rejection that a retry of an applied write would get,
    /// succeeds with the latest config if `applied` says it shows the change.
    async fn write<Req, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        retry_rejection: fn(&ClientError) -> bool,
        applied: impl Fn(&Config) -> bool,
        rpc: F,
    ) -> Result<Config, ClientError>
    where
        Req: Clone,
        F: Fn(ControllerStub<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<
            Output = Result<tonic::Response<pb::ConfigResponse>, tonic::Status>,
        >,
    {
        match self.call(op, req, rpc).await {
            (Ok(resp), _) => decode(ADDRESS, resp.config),
            (Err(e), attempts) if attempts > 1 && retry_rejection(&e) => {
                let latest = self.query(None).await?;
                if applied(&latest) {
                    tracing::debug!(
                        op,
                        num = latest.num,
                        "retried write was applied by an earlier attempt"
                    );
                    Ok(latest)
                } else {
                    Err(e)
                }
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Adds groups and rebalances ranges onto them; returns the new config.
    pub async fn join(&self, groups: Vec<GroupSpec>) -> Result<Config, ClientError> {
        let req = pb::JoinRequest {
            groups: groups
                .iter()
                .map(|(gid, addresses)| pb::GroupMembers {
                    gid: *gid,
                    addresses: addresses.clone(),
                })
                .collect(),
        };
        let applied = |c: &Config| groups.iter().all(|(gid, a)| c.groups.get(gid) == Some(a));
        let rejection = |e: &ClientError| rejected_with(e, Code::AlreadyExists);
        self.write("join", req, rejection, applied, |mut s, r| async move {
            s.join(r).await
        })
        .await
    }

    /// Removes groups; their ranges move to the remaining groups.
    pub async fn leave(&self, gids: &[u64]) -> Result<Config, ClientError> {
        let req = pb::LeaveRequest {
            gids: gids.to_vec(),
        };
        let applied = |c: &Config| gids.iter().all(|g| !c.groups.contains_key(g));
        let rejection = |e: &ClientError| rejected_with(e, Code::NotFound);
        self.write("leave", req, rejection, applied, |mut s, r| async move {
            s.leave(r).await
        })
        .await
    }

    /// Gives range `range_id` to group `gid`.
    pub async fn move_range(&self, range_id: u64, gid: u64) -> Result<Config, ClientError> {
        let req = pb::MoveRequest { range_id, gid };
        let applied = |c: &Config| c.range(range_id).is_some_and(|r| r.gid == gid);
        let rejection = |e: &ClientError| rejected_with(e, Code::AlreadyExists);
        self.write("move", req, rejection, applied, |mut s, r| async move {
            s.r#move(r).await
        })
        .await
    }

    /// Splits range `range_id` at routing key `key`; the upper half gets a
    /// new id.
    pub async fn split(
        &self,
        range_id: u64,
        key: impl Into<Vec<u8>>,
    ) -> Result<Config, ClientError> {
        let key = key.into();
        let req = pb::SplitRequest {
            range_id,
            key: key.clone(),
        };
        // A retry of an applied split finds `key` on the range's boundary.
        let applied = |c: &Config| c.range(range_id).is_some_and(|r| r.end == key);
        let rejection = |e: &ClientError| matches!(e, ClientError::InvalidArgument { field, .. } if field == "key");
        self.write("split", req, rejection, applied, |mut s, r| async move {
            s.split(r).await
        })
        .await
    }

    /// Config `num`, or the latest for `None` (linearizable).
    pub async fn query(&self, num: Option<u64>) -> Result<Config, ClientError> {
        let req = pb::QueryRequest { num };
        let (result, _) = self
            .call("query", req, |mut s, r| async move { s.query(r).await })
            .await;
        decode(ADDRESS, result?.config)
    }

    /// Members, leader, term, latest config and per-group load.
    pub async fn status(&self) -> Result<pb::ClusterStatusResponse, ClientError> {
        let (result, _) = self
            .call(
                "cluster_status",
                pb::ClusterStatusRequest::default(),
                |mut s, r| async move { s.cluster_status(r).await },
            )
            .await;
        result
    }

    /// Reports the per-range load of group `gid` (soft state on the leader).
    pub async fn report_load(
        &self,
        gid: u64,
        ranges: Vec<pb::RangeLoad>,
    ) -> Result<(), ClientError> {
        let req = pb::ReportLoadRequest { gid, ranges };
        let (result, _) = self
            .call("report_load", req, |mut s, r| async move {
                s.report_load(r).await
            })
            .await;
        result.map(|_| ())
    }

    /// Every config after `from_num`, in order, exactly once.
    pub fn watch(&self, from_num: u64) -> ConfigWatch {
        ConfigWatch {
            client: self.clone(),
            after: from_num,
            stream: None,
        }
    }

    /// Opens a `WatchConfig` stream after `after` on some member.
    async fn open_watch(&self, after: u64) -> Result<Streaming<pb::ShardConfig>, ClientError> {
        let req = pb::WatchConfigRequest { from_num: after };
        self.router
            .call("watch_config", false, |channel, timeout| async move {
                let mut stub = controller_stub(channel);
                // The deadline covers opening the stream, not its life.
                match tokio::time::timeout(timeout, stub.watch_config(req)).await {
                    Ok(r) => r.map(tonic::Response::into_inner),
                    Err(_) => Err(tonic::Status::deadline_exceeded(
                        "watch did not open in time",
                    )),
                }
            })
            .await
    }
}

/// Shortest and longest pause before reopening a config watch that broke
/// again without delivering a config.
const WATCH_PAUSE_MIN: Duration = Duration::from_millis(20);
const WATCH_PAUSE_MAX: Duration = Duration::from_secs(1);

/// A config feed from [`ControllerClient::watch`].
pub struct ConfigWatch {
    client: ControllerClient,
    /// Number of the last config delivered (or the starting point).
    after: u64,
    stream: Option<Streaming<pb::ShardConfig>>,
}

impl ConfigWatch {
    /// Number of the last config delivered.
    pub fn last_num(&self) -> u64 {
        self.after
    }

    /// The next config, waiting as long as it takes. A broken stream is
    /// reopened (with the client's retries) from the last delivered config,
    /// at once the first time and then after a growing pause while streams
    /// keep breaking without delivering (a member shutting down ends each
    /// stream as it opens); an error means no member could be reached
    /// within the client's total deadline, and calling again tries again.
    pub async fn next(&mut self) -> Result<Config, ClientError> {
        let mut pause = Duration::ZERO;
        loop {
            let stream = match &mut self.stream {
                Some(s) => s,
                None => self
                    .stream
                    .insert(self.client.open_watch(self.after).await?),
            };
            match stream.message().await {
                Ok(Some(c)) if c.num <= self.after => continue,
                Ok(Some(c)) => {
                    let config = decode(ADDRESS, Some(c))?;
                    self.after = config.num;
                    return Ok(config);
                }
                Ok(None) | Err(_) => {
                    tracing::debug!(after = self.after, ?pause, "config watch broke; reopening");
                    self.stream = None;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).clamp(WATCH_PAUSE_MIN, WATCH_PAUSE_MAX);
                }
            }
        }
    }

    /// The feed as a `Stream`.
    pub fn into_stream(self) -> impl Stream<Item = Result<Config, ClientError>> {
        futures::stream::unfold(self, |mut w| async move {
            let item = w.next().await;
            Some((item, w))
        })
    }
}
