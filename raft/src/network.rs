//! Client side of the Raft transport: openraft's `RaftNetwork` over gRPC.
//!
//! One tonic channel per peer address is created lazily and kept in a
//! [`ChannelPool`] for the life of the process (never a channel per RPC).
//! Every RPC carries openraft's TTL as its gRPC deadline; payloads are
//! postcard-encoded openraft messages tagged with the group id. The pool is
//! also what a member uses for its other member-to-member calls (joining,
//! forwarding a write to the leader).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::raft_transport_client::RaftTransportClient;
use shardline_proto::pb::RaftMessage;
use tonic::transport::{Channel, Endpoint};

use crate::{NodeId, RaftTypes};

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
    _types: PhantomData<fn() -> C>,
}

impl<C> RaftNetworkFactoryImpl<C> {
    pub fn new(group_id: u64, pool: ChannelPool) -> Self {
        RaftNetworkFactoryImpl {
            group_id,
            pool,
            _types: PhantomData,
        }
    }
}

impl<C> Clone for RaftNetworkFactoryImpl<C> {
    fn clone(&self) -> Self {
        RaftNetworkFactoryImpl::new(self.group_id, self.pool.clone())
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
}

impl<C> PeerClient<C> {
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let raw = self.call_raw(method, req, ttl).await.map_err(|e| match e {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            // tonic reports refused or dropped connections as Unavailable.
            CallError::Status { ref status, .. } if status.code() == tonic::Code::Unavailable => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            other => RPCError::Network(NetworkError::new(&other)),
        })?;
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(&raw).map_err(|source| {
                RPCError::Network(NetworkError::new(&CallError::Decode {
                    addr: self.addr.clone(),
                    source,
                }))
            })?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn call_raw<Req: Serialize>(
        &self,
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let payload = postcard::to_allocvec(req).map_err(CallError::Encode)?;
        let channel = self
            .pool
            .get(&self.addr)
            .map_err(|source| CallError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let mut client = RaftTransportClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(RaftMessage {
            group_id: self.group_id,
            payload,
        });
        request.set_timeout(ttl);
        let reply = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| CallError::Status {
            addr: self.addr.clone(),
            status,
        })?;
        Ok(reply.into_inner().payload)
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl<C: RaftTypes> RaftNetwork<C> for PeerClient<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Append, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, option.hard_ttl()).await
    }
}
