//! Server side of the Raft transport: decodes openraft messages and hands
//! them to the local Raft instance, for any [`RaftTypes`] configuration.
//!
//! The reply payload is the postcard encoding of openraft's
//! `Result<Response, Error>` (a `RaftError` for append and vote, a `Fatal`
//! for snapshot and leader transfer), so remote errors cross the wire typed.
//! A snapshot arrives as a stream (header, then chunks; see
//! `crate::network`), is reassembled in memory and installed whole.

use serde::de::DeserializeOwned;
use serde::Serialize;
use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::raft_transport_server::{RaftTransport, RaftTransportServer};
use shardline_proto::pb::RaftMessage;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{Raft, RaftTypes, Snapshot, SnapshotMeta, Vote};

/// The `RaftTransport` gRPC service of one member.
pub struct RaftService<C: RaftTypes> {
    /// Messages tagged with another group id are rejected.
    pub group_id: u64,
    pub raft: Raft<C>,
}

impl<C: RaftTypes> RaftService<C> {
    /// The service, wrapped in its tonic server with Shardline's message
    /// size limits.
    pub fn server(group_id: u64, raft: Raft<C>) -> RaftTransportServer<Self> {
        RaftTransportServer::new(RaftService { group_id, raft })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn check_group(&self, msg: &RaftMessage) -> Result<(), Status> {
        if msg.group_id != self.group_id {
            return Err(Status::failed_precondition(format!(
                "raft message for group {} reached a member of group {}",
                msg.group_id, self.group_id
            )));
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, msg: &RaftMessage) -> Result<T, Status> {
        self.check_group(msg)?;
        postcard::from_bytes(&msg.payload)
            .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
    }

    fn encode<T: Serialize>(&self, reply: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = postcard::to_allocvec(reply)
            .map_err(|e| Status::internal(format!("encode raft reply: {e}")))?;
        Ok(Response::new(RaftMessage {
            group_id: self.group_id,
            payload,
        }))
    }
}

#[tonic::async_trait]
impl<C: RaftTypes> RaftTransport for RaftService<C> {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = self.decode(request.get_ref())?;
        let res = self.raft.append_entries(req).await;
        self.encode(&res)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req = self.decode(request.get_ref())?;
        let res = self.raft.vote(req).await;
        self.encode(&res)
    }

    async fn full_snapshot(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let mut stream = request.into_inner();
        let header = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta): (Vote, SnapshotMeta) = self.decode(&header)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.check_group(&chunk)?;
            bytes.extend_from_slice(&chunk.payload);
        }
        let snapshot = Snapshot {
            meta,
            snapshot: std::io::Cursor::new(bytes),
        };
        let res = self.raft.install_full_snapshot(vote, snapshot).await;
        self.encode(&res)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = self.decode(request.get_ref())?;
        let res = self.raft.handle_transfer_leader(req).await;
        self.encode(&res)
    }
}
