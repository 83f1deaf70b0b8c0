//! `shard-node`: parses flags, sets up logging, binds the listeners and runs
//! one member until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use shard_node::config::NodeArgs;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_target(false)
        .init();
    let args = NodeArgs::parse();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind gRPC {}", args.listen))?;
    let http = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("bind HTTP {}", args.http_listen))?;
    shard_node::node::run(args, listener, http, shutdown_signal())
        .await
        .context("shard-node failed")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
