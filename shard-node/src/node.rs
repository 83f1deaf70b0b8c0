//! Wiring of one member: opens the store, starts Raft, serves the gRPC
//! services and the HTTP endpoints, bootstraps or joins the group, starts
//! the load reporter when `--controller` is set, and shuts everything down
//! in order when the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;

use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::{admin_server::AdminServer, kv_server::KvServer};
use shardline_raft::admin::{AdminService, StatusSource};
use shardline_raft::lifecycle::Lifecycle;
use shardline_raft::network::{ChannelPool, RaftNetworkFactoryImpl};
use shardline_raft::read_index::ReadIndex;
use shardline_raft::store::StoreError;
use shardline_raft::transport::RaftService;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::NodeArgs;
use crate::error::NodeError;
use crate::grpc::kv_service::KvService;
use crate::load::reporter::{Reporter, ReporterSettings};
use crate::load::LoadTracker;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use crate::store::{self, KvReader};
use crate::types::{Raft, TypeConfig};
use shardline_raft::ApiError;

/// File name of the member's redb database inside `--data-dir`.
pub const DB_FILE: &str = "shard.redb";

/// Runs a member until `shutdown` resolves. `listener` serves gRPC and
/// `http_listener` the probe and metrics endpoints; both are bound by the
/// caller so tests can use port 0.
pub async fn run(
    args: NodeArgs,
    listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    args.validate()?;
    let data_dir = &args.raft.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| NodeError::Io {
        context: format!("create {}", data_dir.display()),
        source,
    })?;
    let opened = store::open(&data_dir.join(DB_FILE), args.group_id, args.partitioning)?;
    let reader = opened.reader.clone();

    let pool = ChannelPool::default();
    let metrics = Metrics::new();
    let network = RaftNetworkFactoryImpl::new(args.group_id, pool.clone())
        .with_metrics(metrics.replication());
    let config = Arc::new(args.raft_config()?);
    let raft = Raft::new(args.raft.node_id, config, network, opened.log, opened.sm)
        .await
        .map_err(|e| NodeError::from(ApiError::Raft(e.to_string())))?;

    let watcher = metrics.spawn_raft_watcher(raft.clone());
    let address = args.advertise_addr();

    let load = LoadTracker::new(args.partitioning, args.load_report_interval);
    let reporter = if args.controller.is_empty() {
        None
    } else {
        let settings = ReporterSettings {
            controllers: args.controller.clone(),
            interval: args.load_report_interval,
            call_timeout: args.controller_timeout,
            group_id: args.group_id,
            node_id: args.raft.node_id,
        };
        let started = Reporter::spawn(
            settings,
            load.clone(),
            reader.clone(),
            raft.clone(),
            metrics.clone(),
        );
        Some(started.map_err(|e| {
            NodeError::from(ApiError::BadFlag {
                flag: "--controller",
                reason: e.to_string(),
            })
        })?)
    };

    let mut startup =
        shardline_raft::bootstrap::initialize_or_join(&args.raft, &raft, &pool, &address).await?;

    let mut life = Lifecycle::new();
    life.spawn_probes::<TypeConfig>(http_listener, raft.metrics(), {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    });

    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            KvServer::new(KvService {
                reader: reader.clone(),
                metrics: metrics.clone(),
                read_index: ReadIndex::spawn(raft.clone()),
                proposer: Proposer::spawn(raft.clone(), args.session_ttl),
                load,
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(AdminService {
            raft: raft.clone(),
            source: reader.clone(),
            group_id: args.group_id,
            address: address.clone(),
        }))
        .add_service(RaftService::server(
            args.group_id,
            raft.clone(),
            startup.gate(),
        ))
        .serve_with_incoming_shutdown(
            shardline_raft::process::nodelay_incoming(listener),
            life.stopped(),
        );
    let grpc_task = tokio::spawn(grpc);
    info!(node_id = args.raft.node_id, group_id = args.group_id, %address, "member serving");

    let failed = startup.until_stopped(shutdown).await;
    shardline_raft::handover::hand_over(
        &raft,
        shardline_raft::handover::WAIT.min(args.raft.shutdown_grace),
    )
    .await;
    life.drain(grpc_task, args.raft.shutdown_grace).await;
    drop(reporter);
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    watcher.abort();
    info!("member stopped");
    match failed {
        Some(e) => Err(NodeError::from(e)),
        None => Ok(()),
    }
}

/// A shard group's admin status reports its partitioning and key count.
impl StatusSource for KvReader {
    fn partitioning(&self) -> String {
        self.partition_mode().to_string()
    }

    fn item_count(&self) -> Result<u64, StoreError> {
        self.key_count()
    }
}
