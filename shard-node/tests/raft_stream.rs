//! The replication stream of the Raft transport (`shardline_raft::network`'s
//! `stream_append`) against fake peers on loopback, in process: requests go
//! out without waiting for answers and answers come back in order; a
//! request left unanswered fails the stream after openraft's soft TTL; a
//! peer without `StreamAppend` is replicated to one request at a time; no
//! connection is tried before a request is taken (openraft's backoff waits
//! inside the request stream).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use openraft::errors::{Fatal, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, StreamAppendResult};
use openraft::{BasicNode, EntryPayload};
use prometheus_client::registry::Registry;
use shard_node::types::{Entry, TypeConfig};
use shardline_proto::pb::raft_transport_server::{RaftTransport, RaftTransportServer};
use shardline_proto::pb::RaftMessage;
use shardline_raft::metrics::{render, ReplicationMetrics};
use shardline_raft::network::{ChannelPool, PeerClient, RaftNetworkFactoryImpl};
use shardline_raft::transport::AnswerStream;
use shardline_raft::{LogId, Vote};
use tonic::{Request, Response, Status, Streaming};

const GROUP: u64 = 7;

/// How a fake peer treats `StreamAppend`.
#[derive(Clone, Copy)]
enum Mode {
    /// Waits until it holds this many requests, then answers them all:
    /// a sender that waits for each answer never gets one.
    AnswerAfter(usize),
    /// Reads requests and never answers.
    Silent,
    /// An older version: no such method.
    Unimplemented,
}

struct FakePeer {
    mode: Mode,
    /// Unary `AppendEntries` calls received.
    unary_appends: Arc<AtomicUsize>,
}

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

fn request(index: u64) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: index.checked_sub(1).map(log_id),
        entries: vec![Entry {
            log_id: log_id(index),
            payload: EntryPayload::Blank,
        }],
        leader_commit: None,
    }
}

fn encode<T: serde::Serialize>(value: &T) -> RaftMessage {
    RaftMessage {
        group_id: GROUP,
        payload: postcard::to_allocvec(value).expect("encodable"),
    }
}

fn decode(message: &RaftMessage) -> AppendEntriesRequest<TypeConfig> {
    postcard::from_bytes(&message.payload).expect("a request")
}

/// What a follower that stored every entry answers.
fn matched(request: &AppendEntriesRequest<TypeConfig>) -> StreamAppendResult<TypeConfig> {
    Ok(request
        .entries
        .last()
        .map(|e| e.log_id)
        .or(request.prev_log_id))
}

#[tonic::async_trait]
impl RaftTransport for FakePeer {
    type StreamAppendStream = AnswerStream;

    async fn stream_append(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let inbound = request.into_inner();
        match self.mode {
            Mode::Unimplemented => Err(Status::unimplemented("no StreamAppend here")),
            Mode::Silent => {
                Ok(Response::new(Box::pin(inbound.filter_map(|_| async {
                    None::<Result<RaftMessage, Status>>
                }))))
            }
            Mode::AnswerAfter(n) => {
                // Headers go back at once; the answers only once `n`
                // requests are in.
                let held = futures::stream::once(inbound.take(n).collect::<Vec<_>>());
                let answers = held.flat_map(|messages| {
                    futures::stream::iter(messages.into_iter().map(|message| {
                        let request = decode(&message?);
                        let answer: Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>> =
                            Ok(matched(&request));
                        Ok(encode(&answer))
                    }))
                });
                Ok(Response::new(Box::pin(answers)))
            }
        }
    }

    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        decode(request.get_ref());
        self.unary_appends.fetch_add(1, Ordering::SeqCst);
        let reply: Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> =
            Ok(AppendEntriesResponse::Success);
        Ok(Response::new(encode(&reply)))
    }

    async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn full_snapshot(
        &self,
        _: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn transfer_leader(
        &self,
        _: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves a fake peer on loopback and returns a client to it, its count of
/// unary appends, and the registry holding the client's stream counters.
async fn peer(mode: Mode) -> (PeerClient<TypeConfig>, Arc<AtomicUsize>, Registry) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let unary_appends = Arc::new(AtomicUsize::new(0));
    let fake = FakePeer {
        mode,
        unary_appends: unary_appends.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftTransportServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut registry = Registry::default();
    let metrics = ReplicationMetrics::register(&mut registry);
    let mut factory = RaftNetworkFactoryImpl::<TypeConfig>::new(GROUP, ChannelPool::default())
        .with_metrics(metrics);
    let client = factory
        .new_client(2, &BasicNode::new(addr.to_string()))
        .await;
    (client, unary_appends, registry)
}

/// Every answer of one stream of `requests`, within a deadline.
async fn answers(
    client: &mut PeerClient<TypeConfig>,
    requests: Vec<AppendEntriesRequest<TypeConfig>>,
    option: RPCOption,
) -> Result<Vec<Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>
{
    let run = async {
        let stream = client
            .stream_append(futures::stream::iter(requests), option)
            .await?;
        Ok(stream.collect().await)
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the stream ended within 10 s")
}

#[tokio::test]
async fn requests_are_pipelined_and_answered_in_order() {
    let (mut client, unary, registry) = peer(Mode::AnswerAfter(3)).await;
    let requests: Vec<_> = (1..=3).map(request).collect();
    let expected: Vec<_> = requests.iter().map(matched).collect();
    let got = answers(
        &mut client,
        requests,
        RPCOption::new(Duration::from_secs(5)),
    )
    .await
    .expect("stream opened");
    let got: Vec<_> = got.into_iter().map(|a| a.expect("an answer")).collect();
    assert_eq!(got, expected);
    assert_eq!(unary.load(Ordering::SeqCst), 0, "no unary append");
    let text = render(&registry);
    assert!(
        text.contains(r#"raft_replication_streams_opened_total{peer="2"} 1"#),
        "{text}"
    );
    assert!(!text.contains("failures_total{"), "{text}");
}

#[tokio::test]
async fn an_unanswered_request_fails_the_stream_after_the_soft_ttl() {
    let (mut client, _, registry) = peer(Mode::Silent).await;
    let option = RPCOption::new(Duration::from_millis(400));
    // The input stays open: the peer's silence, not the end of input, must
    // end the stream.
    let input = futures::stream::iter(vec![request(1)]).chain(futures::stream::pending());
    let started = std::time::Instant::now();
    let mut stream = client
        .stream_append(input, option)
        .await
        .expect("stream opened");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an answer or an error within 10 s");
    let waited = started.elapsed();
    match first {
        Some(Err(RPCError::Network(e))) => {
            assert!(e.to_string().contains("no answer"), "{e}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(300),
        "failed only after the soft TTL, not before: {waited:?}"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after its error"
    );
    let text = render(&registry);
    assert!(
        text.contains(r#"raft_replication_stream_failures_total{peer="2",reason="timeout"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_peer_without_stream_append_gets_one_request_at_a_time() {
    let (mut client, unary, _) = peer(Mode::Unimplemented).await;
    let option = RPCOption::new(Duration::from_secs(5));
    let refused = answers(&mut client, vec![request(1)], option.clone()).await;
    assert!(refused.is_err(), "the first stream is refused");
    let requests: Vec<_> = (1..=3).map(request).collect();
    let expected: Vec<_> = requests.iter().map(matched).collect();
    let got = answers(&mut client, requests, option)
        .await
        .expect("the sequential stream opens");
    let got: Vec<_> = got.into_iter().map(|a| a.expect("an answer")).collect();
    assert_eq!(got, expected);
    assert_eq!(unary.load(Ordering::SeqCst), 3, "one unary append each");
}

#[tokio::test]
async fn no_connection_is_tried_before_the_first_request_is_taken() {
    // A port nothing listens on: the connection is refused at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut registry = Registry::default();
    let metrics = ReplicationMetrics::register(&mut registry);
    let mut factory = RaftNetworkFactoryImpl::<TypeConfig>::new(GROUP, ChannelPool::default())
        .with_metrics(metrics);
    let mut client = factory
        .new_client(2, &BasicNode::new(addr.to_string()))
        .await;
    let option = RPCOption::new(Duration::from_secs(2));

    // While openraft's request stream waits (its backoff after a failure
    // sleeps there), the peer is not dialled.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let taken = Arc::new(AtomicUsize::new(0));
    let counted = taken.clone();
    let input = futures::stream::once(async move {
        let _ = released.await;
        counted.fetch_add(1, Ordering::SeqCst);
        request(1)
    });
    let open = tokio::spawn(async move {
        let result = client
            .stream_append(Box::pin(input), option)
            .await
            .map(|_| ());
        (result, client)
    });
    tokio::task::yield_now().await;
    assert!(
        !render(&registry).contains("failures_total{"),
        "dialled before a request"
    );
    release.send(()).unwrap();
    let (result, mut client) = tokio::time::timeout(Duration::from_secs(10), open)
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );
    assert_eq!(
        taken.load(Ordering::SeqCst),
        1,
        "the request was taken first"
    );
    let text = render(&registry);
    assert!(
        text.contains(r#"raft_replication_stream_failures_total{peer="2",reason="status"} 1"#),
        "{text}"
    );

    // An input that ends at once opens nothing and fails nothing.
    let empty = client
        .stream_append(
            futures::stream::empty(),
            RPCOption::new(Duration::from_secs(2)),
        )
        .await
        .expect("an empty stream");
    assert_eq!(empty.count().await, 0);
    assert!(render(&registry).contains(r#"reason="status"} 1"#));
}
