//! A config watch whose streams keep ending without a config (a controller
//! member shutting down) is reopened after a growing pause, not in a loop.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use shardline_client::controller::ControllerClient;
use shardline_client::ClientOptions;
use shardline_proto::pb;
use shardline_proto::pb::controller_server::{Controller, ControllerServer};
use tonic::{Request, Response, Status};

type Answer<T> = Result<Response<T>, Status>;

/// Opens every watch and ends it at once; nothing else.
#[derive(Clone, Default)]
struct EndsEveryWatch {
    opened: Arc<AtomicUsize>,
}

fn unimplemented<T>() -> Answer<T> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl Controller for EndsEveryWatch {
    async fn join(&self, _: Request<pb::JoinRequest>) -> Answer<pb::ConfigResponse> {
        unimplemented()
    }
    async fn leave(&self, _: Request<pb::LeaveRequest>) -> Answer<pb::ConfigResponse> {
        unimplemented()
    }
    async fn r#move(&self, _: Request<pb::MoveRequest>) -> Answer<pb::ConfigResponse> {
        unimplemented()
    }
    async fn split(&self, _: Request<pb::SplitRequest>) -> Answer<pb::ConfigResponse> {
        unimplemented()
    }
    async fn query(&self, _: Request<pb::QueryRequest>) -> Answer<pb::ConfigResponse> {
        unimplemented()
    }
    type WatchConfigStream =
        Pin<Box<dyn Stream<Item = Result<pb::ShardConfig, Status>> + Send + 'static>>;
    async fn watch_config(
        &self,
        _: Request<pb::WatchConfigRequest>,
    ) -> Answer<Self::WatchConfigStream> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }
    async fn report_load(
        &self,
        _: Request<pb::ReportLoadRequest>,
    ) -> Answer<pb::ReportLoadResponse> {
        unimplemented()
    }
    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Answer<pb::ClusterStatusResponse> {
        unimplemented()
    }
}

#[tokio::test]
async fn streams_ending_at_once_are_reopened_after_a_growing_pause() {
    let fake = EndsEveryWatch::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ControllerServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = ControllerClient::connect(vec![addr], ClientOptions::default())
        .await
        .unwrap();
    let mut watch = client.watch(0);
    let waited = tokio::time::timeout(Duration::from_millis(700), watch.next()).await;
    assert!(waited.is_err(), "no config was ever sent: {waited:?}");
    // Pauses of 0, 20, 40, 80, 160, 320 ms fit about seven opens into
    // 700 ms; reopening at once would open hundreds.
    let opened = fake.opened.load(Ordering::SeqCst);
    assert!(
        (1..=12).contains(&opened),
        "{opened} watches opened in 700 ms"
    );
}
