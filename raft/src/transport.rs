//! Server side of the Raft transport: decodes openraft messages and hands
//! them to the local Raft instance, for any [`RaftTypes`] configuration.
//!
//! The reply payload is the postcard encoding of openraft's
//! `Result<Response, RaftError>`, so remote errors cross the wire typed.

use serde::de::DeserializeOwned;
use serde::Serialize;
use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::raft_transport_server::{RaftTransport, RaftTransportServer};
use shardline_proto::pb::RaftMessage;
use tonic::{Request, Response, Status};

use crate::RaftTypes;

/// The `RaftTransport` gRPC service of one member.
pub struct RaftService<C: RaftTypes> {
    /// Messages tagged with another group id are rejected.
    pub group_id: u64,
    pub raft: openraft::Raft<C>,
}

impl<C: RaftTypes> RaftService<C> {
    /// The service, wrapped in its tonic server with Shardline's message
    /// size limits.
    pub fn server(group_id: u64, raft: openraft::Raft<C>) -> RaftTransportServer<Self> {
        RaftTransportServer::new(RaftService { group_id, raft })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn decode<T: DeserializeOwned>(&self, msg: &RaftMessage) -> Result<T, Status> {
        if msg.group_id != self.group_id {
            return Err(Status::failed_precondition(format!(
                "raft message for group {} reached a member of group {}",
                msg.group_id, self.group_id
            )));
        }
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

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = self.decode(request.get_ref())?;
        let res = self.raft.install_snapshot(req).await;
        self.encode(&res)
    }
}
