//! Wiring of one controller member: opens the store, starts Raft, serves the
//! Controller, Admin and Raft gRPC services and the HTTP endpoints,
//! bootstraps or joins the group, and shuts everything down in order when
//! the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;

use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::admin_server::AdminServer;
use shardline_proto::pb::controller_server::ControllerServer;
use shardline_raft::admin::{AdminService, StatusSource};
use shardline_raft::lifecycle::Lifecycle;
use shardline_raft::network::{ChannelPool, RaftNetworkFactoryImpl};
use shardline_raft::read_index::ReadIndex;
use shardline_raft::store::StoreError;
use shardline_raft::transport::RaftService;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{ControllerArgs, CONTROLLER_GROUP_ID};
use crate::error::RunError;
use crate::grpc::forward::Forwarder;
use crate::grpc::ControllerService;
use crate::load::LoadTable;
use crate::metrics::Metrics;
use crate::store::{self, ShardMap};
use crate::types::Raft;

/// File name of the member's redb database inside `--data-dir`.
pub const DB_FILE: &str = "controller.redb";

/// A controller's admin status reports its partitioning mode and, as its
/// item count, the number of the latest config.
impl StatusSource for ShardMap {
    fn partitioning(&self) -> String {
        self.bootstrap().mode.to_string()
    }

    fn item_count(&self) -> Result<u64, StoreError> {
        Ok(self.latest().num)
    }
}

/// Runs a member until `shutdown` resolves. `listener` serves gRPC and
/// `http_listener` the probe and metrics endpoints; both are bound by the
/// caller so tests can use port 0.
pub async fn run(
    args: ControllerArgs,
    listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    args.validate()?;
    let data_dir = &args.raft.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| RunError::Io {
        context: format!("create {}", data_dir.display()),
        source,
    })?;
    let bootstrap = args.bootstrap();
    let opened = store::open(&data_dir.join(DB_FILE), bootstrap)?;
    let map = opened.map.clone();

    let pool = ChannelPool::default();
    let metrics = Metrics::new();
    let network = RaftNetworkFactoryImpl::new(CONTROLLER_GROUP_ID, pool.clone())
        .with_metrics(metrics.replication());
    let config = Arc::new(args.raft_config()?);
    let raft = Raft::new(args.raft.node_id, config, network, opened.log, opened.sm)
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;

    let watchers = metrics.spawn_watchers(&raft, &map);
    let address = args.advertise_addr();

    let mut startup =
        shardline_raft::bootstrap::initialize_or_join(&args.raft, &raft, &pool, &address).await?;

    // One shutdown signal fans out to both servers and to open watches.
    let mut life = Lifecycle::new();
    life.spawn_probes::<crate::types::TypeConfig>(http_listener, raft.metrics(), {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    });

    let service = ControllerService {
        raft: raft.clone(),
        map: map.clone(),
        read_index: ReadIndex::spawn(raft.clone()),
        forwarder: Forwarder {
            raft: raft.clone(),
            pool: pool.clone(),
            node_id: args.raft.node_id,
            default_timeout: args.request_timeout,
        },
        loads: LoadTable::default(),
        hot: args.hot_policy(),
        metrics: metrics.clone(),
        bootstrap,
        stop: life.stop_receiver(),
    };
    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            ControllerServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(AdminService {
            raft: raft.clone(),
            source: map.clone(),
            group_id: CONTROLLER_GROUP_ID,
            address: address.clone(),
        }))
        .add_service(RaftService::server(
            CONTROLLER_GROUP_ID,
            raft.clone(),
            startup.gate(),
        ))
        .serve_with_incoming_shutdown(
            shardline_raft::process::nodelay_incoming(listener),
            life.stopped(),
        );
    let grpc_task = tokio::spawn(grpc);
    info!(node_id = args.raft.node_id, %address, mode = %bootstrap.mode, initial_ranges = bootstrap.initial_ranges, "controller member serving");

    let failed = startup.until_stopped(shutdown).await;
    shardline_raft::handover::hand_over(
        &raft,
        shardline_raft::handover::WAIT.min(args.raft.shutdown_grace),
    )
    .await;
    life.drain(grpc_task, args.raft.shutdown_grace).await;
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    for w in watchers {
        w.abort();
    }
    info!("controller member stopped");
    match failed {
        Some(e) => Err(RunError::from(e)),
        None => Ok(()),
    }
}
