//! `shard-controller`: parses flags, sets up logging, binds the listeners
//! and runs one controller member until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use shardline_controller::config::ControllerArgs;
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
    let args = ControllerArgs::parse();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind gRPC {}", args.listen))?;
    let http = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("bind HTTP {}", args.http_listen))?;
    shardline_controller::node::run(args, listener, http, shutdown_signal())
        .await
        .context("shard-controller failed")
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
