//! Joining through members that point at each other (an election under
//! way): hints are followed, but a hint after a hint waits out the backoff,
//! so the attempts last instead of being used up in milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_proto::pb;
use shardline_proto::pb::admin_server::{Admin, AdminServer};
use shardline_proto::status as st;
use shardline_raft::join::{join_group_with, Retry};
use shardline_raft::network::ChannelPool;
use tonic::{Request, Response, Status};

/// Answers `AddMember` with a `NotLeader` hint to `other`.
#[derive(Clone, Default)]
struct PointsAt {
    other: Arc<Mutex<String>>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Admin for PointsAt {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn add_member(
        &self,
        _: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(st::not_leader(
            Some(9),
            Some(self.other.lock().unwrap().clone()),
        ))
    }
    async fn remove_member(
        &self,
        _: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn compact(
        &self,
        _: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn transfer_leader(
        &self,
        _: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

async fn serve(member: PointsAt) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(member))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn hints_pointing_at_each_other_wait_out_the_backoff() {
    let (a, b) = (PointsAt::default(), PointsAt::default());
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b.clone()).await);
    *a.other.lock().unwrap() = addr_b.clone();
    *b.other.lock().unwrap() = addr_a.clone();
    let retry = Retry {
        attempts: 6,
        first_delay: Duration::from_millis(40),
        max_delay: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(5),
    };
    let started = Instant::now();
    let err = join_group_with(&ChannelPool::default(), &addr_a, 4, "127.0.0.1:1", retry)
        .await
        .expect_err("nobody leads");
    let took = started.elapsed();
    assert!(
        err.to_string().contains("gave up after 6 attempts"),
        "{err}"
    );
    let calls = a.calls.load(Ordering::SeqCst) + b.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 6, "every attempt asked a member");
    // A, hint to B at once; B's hint waits 40 ms; A at once; B waits 80 ms;
    // A at once; B: the last attempt. At least 120 ms of waiting.
    assert!(
        took >= Duration::from_millis(120),
        "six attempts in {took:?}: hints were followed without waiting"
    );
}
