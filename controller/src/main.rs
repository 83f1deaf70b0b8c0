//! `shard-controller`: parses flags, sets up logging, binds the listeners
//! and runs one controller member until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use shardline_controller::config::ControllerArgs;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shardline_raft::process::init_tracing();
    let args = ControllerArgs::parse();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind gRPC {}", args.listen))?;
    let http = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("bind HTTP {}", args.http_listen))?;
    shardline_controller::node::run(
        args,
        listener,
        http,
        shardline_raft::process::shutdown_signal(),
    )
    .await
    .context("shard-controller failed")
}
