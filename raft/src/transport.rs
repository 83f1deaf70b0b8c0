//! Server side of the Raft transport: decodes openraft messages and hands
//! them to the local Raft instance, for any [`RaftTypes`] configuration.
//!
//! The reply payload is the postcard encoding of openraft's
//! `Result<Response, Error>` (a `RaftError` for append and vote, a `Fatal`
//! for snapshot and leader transfer), so remote errors cross the wire typed.
//! A snapshot arrives as a stream (header, then chunks; see
//! `crate::network`), is reassembled in memory and installed whole.
//!
//! Replication arrives on `StreamAppend`: a stream of AppendEntries requests
//! handed to openraft's pipelined `Raft::stream_append`, whose answers go
//! back in request order, each the postcard encoding of
//! `Result<StreamAppendResult, Fatal>`. A message that cannot be decoded (or
//! belongs to another group) ends the input; the answers to the requests
//! before it are still sent, then the stream ends with its error status.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;
use openraft::errors::Fatal;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
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
    /// Raft calls are refused while it is closed.
    pub gate: RaftGate,
}

/// Whether this member takes Raft traffic (votes, appends, snapshots). A
/// member that starts without state may be one that lost it (a wiped or
/// re-created volume) while its group still counts it: votes granted from
/// an empty log could elect a leader that lacks entries it had acknowledged,
/// and an append finding its log behind what it acknowledged makes
/// openraft's leader stop (log reversion). The gate stays closed until the
/// member knows it is in a new group, or has been removed from the old one
/// and so is replicated to afresh (see `bootstrap`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct RaftGate(Arc<AtomicBool>);

impl RaftGate {
    /// A gate that is open from the start (a member with state).
    pub fn open() -> Self {
        RaftGate(Arc::new(AtomicBool::new(true)))
    }

    /// A gate that stays closed until [`RaftGate::allow`].
    pub fn closed() -> Self {
        RaftGate(Arc::new(AtomicBool::new(false)))
    }

    pub fn allow(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl<C: RaftTypes> RaftService<C> {
    /// The service, wrapped in its tonic server with Shardline's message
    /// size limits.
    pub fn server(group_id: u64, raft: Raft<C>, gate: RaftGate) -> RaftTransportServer<Self> {
        RaftTransportServer::new(RaftService {
            group_id,
            raft,
            gate,
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Refuses Raft calls while the gate is closed.
    fn admit(&self) -> Result<(), Status> {
        if self.gate.is_open() {
            Ok(())
        } else {
            Err(Status::unavailable(
                "this member started without state and has not joined its group yet",
            ))
        }
    }

    fn check_group(&self, msg: &RaftMessage) -> Result<(), Status> {
        check_group(self.group_id, msg)
    }

    fn decode<T: DeserializeOwned>(&self, msg: &RaftMessage) -> Result<T, Status> {
        decode_message(self.group_id, msg)
    }

    fn encode<T: Serialize>(&self, reply: &T) -> Result<Response<RaftMessage>, Status> {
        encode_message(self.group_id, reply).map(Response::new)
    }
}

/// Refuses a message tagged with another group than `group_id`.
fn check_group(group_id: u64, msg: &RaftMessage) -> Result<(), Status> {
    if msg.group_id != group_id {
        return Err(Status::failed_precondition(format!(
            "raft message for group {} reached a member of group {group_id}",
            msg.group_id
        )));
    }
    Ok(())
}

/// The payload of a message of `group_id`.
fn decode_message<T: DeserializeOwned>(group_id: u64, msg: &RaftMessage) -> Result<T, Status> {
    check_group(group_id, msg)?;
    postcard::from_bytes(&msg.payload)
        .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
}

/// `reply` as a message of `group_id`.
fn encode_message<T: Serialize>(group_id: u64, reply: &T) -> Result<RaftMessage, Status> {
    let payload = postcard::to_allocvec(reply)
        .map_err(|e| Status::internal(format!("encode raft reply: {e}")))?;
    Ok(RaftMessage { group_id, payload })
}

/// The answers of a `StreamAppend` call.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<C: RaftTypes> RaftTransport for RaftService<C> {
    type StreamAppendStream = AnswerStream;

    async fn stream_append(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<AnswerStream>, Status> {
        self.admit()?;
        let group_id = self.group_id;
        // The first bad input message: it ends the input, and the answers
        // end with it once the requests before it are answered.
        let failure: Arc<Mutex<Option<Status>>> = Arc::default();
        let record = failure.clone();
        let requests = request
            .into_inner()
            .map(move |item| -> Result<AppendEntriesRequest<C>, Status> {
                decode_message(group_id, &item?)
            })
            .take_while(move |decoded| {
                if let Err(status) = decoded {
                    tracing::warn!(%status, "replication stream input refused");
                    *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
                }
                decoded.is_ok()
            })
            .filter_map(Result::ok);
        let answers = self.raft.stream_append(requests).map(move |answer| {
            let answer: Result<StreamAppendResult<C>, Fatal<C>> = answer;
            encode_message(group_id, &answer)
        });
        let refusal = futures::stream::once(async move {
            failure.lock().unwrap_or_else(|p| p.into_inner()).take()
        })
        .filter_map(|status| status.map(Err));
        Ok(Response::new(Box::pin(answers.chain(refusal))))
    }

    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.admit()?;
        let req = self.decode(request.get_ref())?;
        let res = self.raft.append_entries(req).await;
        self.encode(&res)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.admit()?;
        let req = self.decode(request.get_ref())?;
        let res = self.raft.vote(req).await;
        self.encode(&res)
    }

    async fn full_snapshot(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.admit()?;
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
        self.admit()?;
        let req = self.decode(request.get_ref())?;
        let res = self.raft.handle_transfer_leader(req).await;
        self.encode(&res)
    }
}
