//! The client against scripted in-process KV servers on `127.0.0.1:0`:
//! leader hints are followed, unavailable members are skipped, retried
//! writes keep their request header, and invalid requests are not retried.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_client::{ClientError, ClientOptions, KvClient, RetryPolicy};
use shardline_proto::pb::kv_server::{Kv, KvServer};
use shardline_proto::pb::{self, RequestHeader};
use shardline_proto::status as st;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// What a fake member answers to each call, in order; when the script runs
/// out it keeps answering with `fallback`.
#[derive(Clone)]
enum Answer {
    Ok,
    NotLeader(String),
    Unavailable,
    Invalid,
}

#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Answer>>>,
    fallback: Arc<Mutex<Option<Answer>>>,
    /// Headers of the writes received (None for reads).
    calls: Arc<Mutex<Vec<Option<RequestHeader>>>>,
}

impl Fake {
    fn answering(fallback: Answer) -> Self {
        let f = Fake::default();
        *f.fallback.lock().unwrap() = Some(fallback);
        f
    }

    fn then(self, answers: &[Answer]) -> Self {
        self.script.lock().unwrap().extend(answers.iter().cloned());
        self
    }

    fn calls(&self) -> Vec<Option<RequestHeader>> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(&self, header: Option<RequestHeader>) -> Result<(), Status> {
        self.calls.lock().unwrap().push(header);
        let next = self.script.lock().unwrap().pop_front();
        match next
            .or_else(|| self.fallback.lock().unwrap().clone())
            .unwrap_or(Answer::Ok)
        {
            Answer::Ok => Ok(()),
            Answer::NotLeader(addr) => Err(st::not_leader(Some(9), Some(addr))),
            Answer::Unavailable => Err(Status::unavailable("warming up")),
            Answer::Invalid => Err(st::invalid_argument("key", "too long")),
        }
    }

    async fn serve(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(self))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }
}

#[tonic::async_trait]
impl Kv for Fake {
    async fn get(&self, _r: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.answer(None)?;
        Ok(Response::new(pb::GetResponse {
            found: true,
            value: b"v".to_vec(),
        }))
    }
    async fn put(&self, r: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        self.answer(r.into_inner().header)?;
        Ok(Response::new(pb::PutResponse { index: 7 }))
    }
    async fn delete(
        &self,
        _r: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn compare_and_swap(
        &self,
        _r: Request<pb::CompareAndSwapRequest>,
    ) -> Result<Response<pb::CompareAndSwapResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn scan(
        &self,
        _r: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn batch(
        &self,
        _r: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

fn fast() -> ClientOptions {
    ClientOptions::default()
        .with_total_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_attempts: 10,
            jitter: true,
        })
}

/// An address nothing listens on.
async fn dead_addr() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn follows_the_leader_hint_and_remembers_it() {
    let leader = Fake::answering(Answer::Ok);
    let leader_addr = leader.clone().serve().await;
    let follower = Fake::answering(Answer::NotLeader(leader_addr.clone()));
    let follower_addr = follower.clone().serve().await;

    let kv = KvClient::connect([follower_addr], fast()).await.unwrap();
    assert_eq!(kv.put("k", "v").await.unwrap(), 7);
    assert_eq!(kv.leader().as_deref(), Some(leader_addr.as_str()));
    kv.put("k2", "v").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(
        follower.calls().len(),
        1,
        "after the hint, calls go straight to the leader"
    );
    assert_eq!(leader.calls().len(), 3);
}

#[tokio::test]
async fn a_retried_write_keeps_its_header_and_is_then_acknowledged() {
    let member = Fake::answering(Answer::Ok).then(&[Answer::Unavailable, Answer::Unavailable]);
    let addr = member.clone().serve().await;
    let kv = KvClient::connect([addr], fast()).await.unwrap();
    kv.put("k", "v").await.unwrap();
    let calls = member.calls();
    assert_eq!(calls.len(), 3);
    let first = calls[0].clone().unwrap();
    assert!(
        calls.iter().all(|h| h.as_ref() == Some(&first)),
        "same header on every attempt: {calls:?}"
    );
    assert_eq!(first.client_id.len(), 16);
    assert_eq!(first.client_id, kv.session().client_id().to_vec());
    assert_eq!((first.seq, first.ack_below), (1, 1));
    assert_eq!(kv.session().in_flight(), 0);
    kv.put("k", "v2").await.unwrap();
    let next = member.calls().last().cloned().flatten().unwrap();
    assert_eq!(
        (next.seq, next.ack_below),
        (2, 2),
        "seq 1 is acknowledged once it finished"
    );
}

#[tokio::test]
async fn explicit_headers_are_sent_verbatim() {
    let member = Fake::answering(Answer::Ok);
    let addr = member.clone().serve().await;
    let kv = KvClient::connect([addr], fast()).await.unwrap();
    let ticket = kv.begin_write();
    kv.put_with_header(ticket.header(), "k", "a").await.unwrap();
    kv.put_with_header(ticket.header(), "k", "a").await.unwrap();
    let calls = member.calls();
    assert_eq!(calls[0], calls[1]);
    assert_eq!(kv.session().in_flight(), 1, "the ticket is still held");
    drop(ticket);
    assert_eq!(kv.session().in_flight(), 0);
}

#[tokio::test]
async fn invalid_arguments_are_not_retried() {
    let member = Fake::answering(Answer::Invalid);
    let addr = member.clone().serve().await;
    let kv = KvClient::connect([addr], fast()).await.unwrap();
    match kv.put("k", "v").await {
        Err(ClientError::InvalidArgument { field, reason }) => {
            assert_eq!((field.as_str(), reason.as_str()), ("key", "too long"))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(member.calls().len(), 1);
    // Checked locally: never sent.
    assert!(matches!(
        kv.put("", "v").await,
        Err(ClientError::InvalidArgument { .. })
    ));
    assert_eq!(member.calls().len(), 1);
}

#[tokio::test]
async fn unreachable_members_are_skipped() {
    let member = Fake::answering(Answer::Ok);
    let addr = member.clone().serve().await;
    let kv = KvClient::connect([dead_addr().await, addr.clone()], fast())
        .await
        .unwrap();
    kv.put("k", "v").await.unwrap();
    assert_eq!(kv.leader().as_deref(), Some(addr.as_str()));
}

#[tokio::test]
async fn gives_up_within_the_attempt_budget_when_nobody_answers() {
    let kv = KvClient::connect([dead_addr().await, dead_addr().await], fast())
        .await
        .unwrap();
    let err = kv.get("k").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        matches!(err, ClientError::Unavailable { attempts: 10, .. }),
        "{err}"
    );
    // A short total deadline ends the call first.
    let opts = fast()
        .with_total_timeout(Duration::from_millis(1))
        .with_retry(RetryPolicy::default());
    let kv = KvClient::connect([dead_addr().await], opts).await.unwrap();
    assert!(matches!(
        kv.get("k").await,
        Err(ClientError::DeadlineExceeded { .. })
    ));
}
