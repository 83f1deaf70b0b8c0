//! Wiring of one member: opens the store, starts Raft, serves the gRPC
//! services and the HTTP endpoints, bootstraps or joins the group, and shuts
//! everything down in order when the shutdown future resolves.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::{
    admin_server::AdminServer, kv_server::KvServer, raft_transport_server::RaftTransportServer,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::config::NodeArgs;
use crate::error::NodeError;
use crate::grpc::{admin_service::AdminService, kv_service::KvService, raft_service::RaftService};
use crate::http::{router, HttpState};
use crate::metrics::Metrics;
use crate::network::{ChannelPool, RaftNetworkFactoryImpl};
use crate::read_index::ReadIndex;
use crate::store;
use crate::types::Raft;

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
    std::fs::create_dir_all(&args.data_dir).map_err(|source| NodeError::Io {
        context: format!("create {}", args.data_dir.display()),
        source,
    })?;
    let opened = store::open(
        &args.data_dir.join(DB_FILE),
        args.group_id,
        args.partitioning,
    )?;
    let reader = opened.reader.clone();

    let pool = ChannelPool::default();
    let network = RaftNetworkFactoryImpl {
        group_id: args.group_id,
        pool: pool.clone(),
    };
    let config = Arc::new(args.raft_config()?);
    let raft = Raft::new(args.node_id, config, network, opened.log, opened.sm)
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

    let metrics = Metrics::new();
    let watcher = metrics.spawn_raft_watcher(raft.clone());
    let address = args.advertise_addr();
    let serving = Arc::new(AtomicBool::new(true));

    bootstrap(&args, &raft, &pool, &address).await?;

    // One shutdown signal fans out to both servers.
    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let http = axum::serve(
        http_listener,
        router(HttpState {
            raft: raft.clone(),
            metrics: metrics.clone(),
            serving: serving.clone(),
        }),
    )
    .with_graceful_shutdown(wait_stop(stop_rx.clone()));
    let http_task = tokio::spawn(async move { http.await });

    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            KvServer::new(KvService {
                raft: raft.clone(),
                reader: reader.clone(),
                metrics: metrics.clone(),
                read_index: ReadIndex::spawn(raft.clone()),
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(AdminService {
            raft: raft.clone(),
            reader: reader.clone(),
            group_id: args.group_id,
            address: address.clone(),
        }))
        .add_service(
            RaftTransportServer::new(RaftService {
                group_id: args.group_id,
                raft: raft.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), wait_stop(stop_rx.clone()));
    let grpc_task = tokio::spawn(grpc);
    info!(node_id = args.node_id, group_id = args.group_id, %address, "member serving");

    shutdown.await;
    info!("shutdown requested; draining in-flight requests");
    serving.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    match tokio::time::timeout(args.shutdown_grace, grpc_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "gRPC server ended with an error"),
        Ok(Err(e)) => warn!(error = %e, "gRPC server task failed"),
        Err(_) => warn!(grace = ?args.shutdown_grace, "in-flight requests did not finish in time"),
    }
    let _ = tokio::time::timeout(args.shutdown_grace, http_task).await;
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    watcher.abort();
    info!("member stopped");
    Ok(())
}

/// Initializes a new group from `--peers`, or joins one with `--join`. A
/// member that already has state does neither.
async fn bootstrap(
    args: &NodeArgs,
    raft: &Raft,
    pool: &ChannelPool,
    address: &str,
) -> Result<(), NodeError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if initialized {
        info!("recovered existing state from the data directory");
        return Ok(());
    }
    let members = args.initial_members()?;
    if !members.is_empty() {
        let nodes = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect::<std::collections::BTreeMap<_, _>>();
        // Every initial member initializes with the same membership; openraft
        // treats the identical initial entry as the same log.
        match raft.initialize(nodes).await {
            Ok(()) => info!("initialized new group"),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                info!(reason = %e, "already initialized")
            }
            Err(e) => return Err(NodeError::Raft(e.to_string())),
        }
    } else if let Some(via) = &args.join {
        let (pool, via, id, addr) = (pool.clone(), via.clone(), args.node_id, address.to_string());
        // Joining needs this member's servers up (the leader replicates to
        // it), so it runs in the background.
        tokio::spawn(async move {
            if let Err(e) = crate::join::join_group(&pool, &via, id, &addr).await {
                tracing::error!(error = %e, "could not join the group");
            }
        });
    } else {
        warn!("no --peers and no --join: waiting to be added by an existing member");
    }
    Ok(())
}
