//! Client side of the Raft transport: openraft's `RaftNetworkV2` over gRPC.
//!
//! One tonic channel per peer address is created lazily and kept in a
//! [`ChannelPool`] for the life of the process (never a channel per RPC).
//! Every RPC carries openraft's TTL as its gRPC deadline; payloads are
//! postcard-encoded openraft messages tagged with the group id. A snapshot
//! travels whole (openraft 0.10 hands the transport the full snapshot) as a
//! client stream of chunks, so its size is not bounded by the gRPC message
//! limit; its deadline is the TTL per chunk. The pool is also what a member
//! uses for its other member-to-member calls (joining, forwarding a write to
//! the leader).
//!
//! Replication uses one `StreamAppend` stream per replication session
//! (openraft's `stream_append`), so a leader keeps several AppendEntries in
//! flight to a follower instead of waiting for each answer; the stream fails
//! when a request waits longer than openraft's soft TTL for its answer. A
//! peer without `StreamAppend` (an older version, during a rolling upgrade)
//! answers `Unimplemented`; its client then replicates one request at a time
//! over `AppendEntries`. A commit-only request on a stream waits briefly for
//! the next request to carry its commit instead ([`CommitLinger`]).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};

use openraft::errors::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{stream_append_sequential, RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::raft_transport_client::RaftTransportClient;
use shardline_proto::pb::RaftMessage;
use tonic::transport::{Channel, Endpoint};

use crate::commit_linger::{CommitLinger, COMMIT_LINGER};
use crate::metrics::ReplicationMetrics;
use crate::peer_health::PeerHealth;
use crate::{NodeId, RaftTypes, Snapshot, SnapshotData, SnapshotMeta, Vote};

/// Snapshot bytes per stream message when openraft does not set a chunk size.
const DEFAULT_SNAPSHOT_CHUNK: usize = 4 * 1024 * 1024;

/// Time allowed to establish a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Long-lived channels to peers, keyed by address.
#[derive(Clone, Default)]
pub struct ChannelPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl ChannelPool {
    /// The channel to `addr`, created lazily on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let ch = Endpoint::from_shared(uri)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}

/// Creates per-peer Raft clients for one group.
pub struct RaftNetworkFactoryImpl<C> {
    /// Sent with every message; the receiver rejects another group's traffic.
    pub group_id: u64,
    pub pool: ChannelPool,
    /// Counts replication streams (unregistered unless set with
    /// [`Self::with_metrics`]).
    metrics: ReplicationMetrics,
    /// Logs when streams to a peer start or stop failing.
    health: PeerHealth,
    _types: PhantomData<fn() -> C>,
}

impl<C> RaftNetworkFactoryImpl<C> {
    pub fn new(group_id: u64, pool: ChannelPool) -> Self {
        RaftNetworkFactoryImpl {
            group_id,
            pool,
            metrics: ReplicationMetrics::default(),
            health: PeerHealth::default(),
            _types: PhantomData,
        }
    }

    /// Counts replication streams in `metrics` (registered by the caller).
    pub fn with_metrics(mut self, metrics: ReplicationMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

impl<C> Clone for RaftNetworkFactoryImpl<C> {
    fn clone(&self) -> Self {
        RaftNetworkFactoryImpl {
            group_id: self.group_id,
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypes> RaftNetworkFactory<C> for RaftNetworkFactoryImpl<C> {
    type Network = PeerClient<C>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            group_id: self.group_id,
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
            streaming: true,
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            _types: PhantomData,
        }
    }
}

/// Raft RPCs to one peer.
pub struct PeerClient<C> {
    group_id: u64,
    target: NodeId,
    addr: String,
    pool: ChannelPool,
    /// False once the peer answered `StreamAppend` with `Unimplemented`.
    streaming: bool,
    metrics: ReplicationMetrics,
    health: PeerHealth,
    _types: PhantomData<fn() -> C>,
}

/// Failure of one transport call, before openraft's error wrapping.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("rpc to {addr}: {status}")]
    Status { addr: String, status: tonic::Status },
    #[error("decode reply from {addr}: {source}")]
    Decode {
        addr: String,
        source: postcard::Error,
    },
    #[error("encode request: {0}")]
    Encode(postcard::Error),
    /// A replication request got no answer within the deadline.
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    /// The peer's Raft answered with an error (it is stopped or stopping).
    #[error("peer {target} at {addr} failed: {reason}")]
    Remote {
        target: NodeId,
        addr: String,
        reason: String,
    },
}

impl CallError {
    /// Refused or dropped connections (tonic reports them as `Unavailable`)
    /// and a peer whose Raft has stopped make the peer unreachable, so
    /// openraft backs off; anything else is a network error it retries.
    fn is_unreachable(&self) -> bool {
        match self {
            CallError::Connect { .. } | CallError::Remote { .. } => true,
            CallError::Status { status, .. } => status.code() == tonic::Code::Unavailable,
            CallError::Decode { .. } | CallError::Encode(_) | CallError::Timeout { .. } => false,
        }
    }

    /// A short label for metrics.
    fn reason(&self) -> &'static str {
        match self {
            CallError::Connect { .. } => "connect",
            CallError::Status { .. } => "status",
            CallError::Decode { .. } => "decode",
            CallError::Encode(_) => "encode",
            CallError::Timeout { .. } => "timeout",
            CallError::Remote { .. } => "remote",
        }
    }

    fn into_rpc<C: RaftTypes>(self) -> RPCError<C> {
        if self.is_unreachable() {
            RPCError::Unreachable(Unreachable::new(&self))
        } else {
            RPCError::Network(NetworkError::new(&self))
        }
    }

    fn into_streaming<C: RaftTypes>(self) -> StreamingError<C> {
        if self.is_unreachable() {
            StreamingError::Unreachable(Unreachable::new(&self))
        } else {
            StreamingError::Network(NetworkError::new(&self))
        }
    }
}

impl<C: RaftTypes> PeerClient<C> {
    /// One unary RPC whose reply is the postcard encoding of
    /// `Result<Resp, E>`; an `E` (the peer's Raft failed) is a
    /// [`CallError::Remote`].
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::fmt::Display + DeserializeOwned,
    {
        let payload = postcard::to_allocvec(req).map_err(CallError::Encode)?;
        let mut client = self.client()?;
        let mut request = tonic::Request::new(RaftMessage {
            group_id: self.group_id,
            payload,
        });
        request.set_timeout(ttl);
        let reply = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::TransferLeader => client.transfer_leader(request).await,
        };
        self.decode_reply::<Resp, E>(reply)
    }

    fn client(&self) -> Result<RaftTransportClient<Channel>, CallError> {
        let channel = self
            .pool
            .get(&self.addr)
            .map_err(|source| CallError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        Ok(RaftTransportClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    fn decode_reply<Resp, E>(
        &self,
        reply: Result<tonic::Response<RaftMessage>, tonic::Status>,
    ) -> Result<Resp, CallError>
    where
        Resp: DeserializeOwned,
        E: std::fmt::Display + DeserializeOwned,
    {
        let reply = reply.map_err(|status| CallError::Status {
            addr: self.addr.clone(),
            status,
        })?;
        let decoded: Result<Resp, E> =
            postcard::from_bytes(&reply.into_inner().payload).map_err(|source| {
                CallError::Decode {
                    addr: self.addr.clone(),
                    source,
                }
            })?;
        decoded.map_err(|e| CallError::Remote {
            target: self.target,
            addr: self.addr.clone(),
            reason: e.to_string(),
        })
    }

    /// Streams `snapshot` to the peer: a header with `(vote, meta)`, then
    /// its bytes in chunks of `chunk` bytes. The deadline is `ttl` per chunk.
    async fn send_snapshot<Resp: DeserializeOwned>(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        chunk: usize,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        let header: (Vote, SnapshotMeta) = (vote, snapshot.meta);
        let header = postcard::to_allocvec(&header).map_err(CallError::Encode)?;
        let bytes = snapshot.snapshot.into_inner();
        let group_id = self.group_id;
        let mut messages = vec![RaftMessage {
            group_id,
            payload: header,
        }];
        messages.extend(bytes.chunks(chunk.max(1)).map(|c| RaftMessage {
            group_id,
            payload: c.to_vec(),
        }));
        let chunks = u32::try_from(messages.len() - 1).unwrap_or(u32::MAX).max(1);
        let mut client = self.client()?;
        let mut request = tonic::Request::new(futures::stream::iter(messages));
        request.set_timeout(ttl.saturating_mul(chunks));
        let reply = client.full_snapshot(request).await;
        self.decode_reply::<Resp, Fatal<C>>(reply)
    }

    /// Opens a `StreamAppend` stream that carries `input` and returns the
    /// peer's answers, decoded, in request order.
    async fn open_stream<S>(
        &self,
        input: S,
        ttl: Duration,
    ) -> Result<BoxStream<'static, Result<StreamAppendResult<C>, RPCError<C>>>, CallError>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + Send + Unpin + 'static,
    {
        let group_id = self.group_id;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let sent = in_flight.clone();
        let requests = CommitLinger::new(input, COMMIT_LINGER)
            .map(|request| postcard::to_allocvec(&request))
            .take_while(|encoded| {
                if let Err(error) = encoded {
                    tracing::error!(%error, "cannot encode an AppendEntries request; ending the replication stream");
                }
                futures::future::ready(encoded.is_ok())
            })
            .filter_map(move |encoded| {
                let message = encoded.ok().map(|payload| {
                    sent.fetch_add(1, Ordering::AcqRel);
                    RaftMessage { group_id, payload }
                });
                futures::future::ready(message)
            });
        let mut client = self.client()?;
        let opened = tokio::time::timeout(ttl, client.stream_append(tonic::Request::new(requests)))
            .await
            .map_err(|_| CallError::Timeout {
                addr: self.addr.clone(),
                after: ttl,
            })?
            .map_err(|status| CallError::Status {
                addr: self.addr.clone(),
                status,
            })?;
        self.metrics.opened(self.target);
        let answers = Answers {
            inbound: opened.into_inner(),
            in_flight,
            ttl,
            target: self.target,
            addr: self.addr.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            answered: false,
            _types: PhantomData,
        };
        Ok(Box::pin(futures::stream::unfold(
            Some(answers),
            |state| async move {
                let mut answers = state?;
                match answers.next().await? {
                    Ok(answer) => {
                        if !answers.answered {
                            answers.answered = true;
                            answers.health.reached(answers.target, &answers.addr);
                        }
                        // openraft's stream ends after a refusal (conflict,
                        // higher vote); so does this one.
                        let go_on = answer.is_ok();
                        Some((Ok(answer), go_on.then_some(answers)))
                    }
                    Err(e) => {
                        answers.metrics.failed(answers.target, e.reason());
                        answers
                            .health
                            .failed(answers.target, &answers.addr, e.reason(), &e);
                        Some((Err(e.into_rpc()), None))
                    }
                }
            },
        )))
    }
}

/// The answer side of one `StreamAppend` stream.
struct Answers<C> {
    inbound: tonic::Streaming<RaftMessage>,
    /// Requests sent and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// Longest wait for an answer while a request is outstanding.
    ttl: Duration,
    target: NodeId,
    addr: String,
    metrics: ReplicationMetrics,
    health: PeerHealth,
    /// Whether an answer came on this stream yet (the peer works).
    answered: bool,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypes> Answers<C> {
    /// The next answer; `None` when the peer ended the stream. Waiting is
    /// unbounded while nothing is in flight, and fails after `ttl` without
    /// an answer while a request is.
    async fn next(&mut self) -> Option<Result<StreamAppendResult<C>, CallError>> {
        let received = loop {
            let waiting = self.in_flight.load(Ordering::Acquire) > 0;
            match tokio::time::timeout(self.ttl, self.inbound.message()).await {
                Ok(received) => break received,
                Err(_) if waiting => {
                    return Some(Err(CallError::Timeout {
                        addr: self.addr.clone(),
                        after: self.ttl,
                    }))
                }
                Err(_) => continue,
            }
        };
        let message = match received {
            Ok(Some(message)) => message,
            Ok(None) => return None,
            Err(status) => {
                return Some(Err(CallError::Status {
                    addr: self.addr.clone(),
                    status,
                }))
            }
        };
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
        let decoded: Result<StreamAppendResult<C>, Fatal<C>> =
            match postcard::from_bytes(&message.payload) {
                Ok(decoded) => decoded,
                Err(source) => {
                    return Some(Err(CallError::Decode {
                        addr: self.addr.clone(),
                        source,
                    }))
                }
            };
        Some(decoded.map_err(|fatal| CallError::Remote {
            target: self.target,
            addr: self.addr.clone(),
            reason: fatal.to_string(),
        }))
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Append,
    Vote,
    TransferLeader,
}

impl<C: RaftTypes> RaftNetworkV2<C> for PeerClient<C> {
    type SnapshotData = SnapshotData;

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>, RPCError<C>>>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
    {
        if !self.streaming {
            return stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            // Connect only once the first request is taken: openraft waits
            // out its replication backoff inside the request stream, so a
            // transport that connected first would retry an unreachable
            // peer in a tight loop (a core spinning, thousands of failures a
            // second, for as long as a member is down).
            let mut input = input;
            let Some(first) = input.next().await else {
                let none: BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>> =
                    Box::pin(futures::stream::empty());
                return Ok(none);
            };
            let input = futures::stream::iter([first]).chain(input);
            match self.open_stream(input, option.soft_ttl()).await {
                Ok(answers) => Ok(answers),
                Err(CallError::Status { status, addr })
                    if status.code() == tonic::Code::Unimplemented =>
                {
                    tracing::warn!(target = self.target, %addr, "peer has no StreamAppend; replicating one request at a time");
                    self.streaming = false;
                    Err(CallError::Status { status, addr }.into_rpc())
                }
                Err(e) => {
                    self.metrics.failed(self.target, e.reason());
                    self.health.failed(self.target, &self.addr, e.reason(), &e);
                    Err(e.into_rpc())
                }
            }
        })
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.call::<_, _, RaftError<C>>(Method::Append, &rpc, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call::<_, _, RaftError<C>>(Method::Vote, &rpc, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let chunk = option
            .snapshot_chunk_size()
            .unwrap_or(DEFAULT_SNAPSHOT_CHUNK);
        let send = self.send_snapshot(vote, snapshot, chunk, option.hard_ttl());
        tokio::select! {
            reply = send => reply.map_err(CallError::into_streaming),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.call::<_, _, Fatal<C>>(Method::TransferLeader, &req, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)
    }
}
