//! Process-level pieces both server binaries share: structured logging set
//! up from `RUST_LOG`, the shutdown signal (SIGTERM or Ctrl-C), and a gRPC
//! listener whose accepted connections have Nagle's algorithm off.

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tracing_subscriber::EnvFilter;

/// The default log filter: `info`, openraft's own chatter at `warn`, and
/// not openraft's warning for every failed heartbeat or replication attempt
/// (ten or more a second while a peer is down): [`crate::peer_health`] logs
/// when replication to a peer starts and stops failing, and the metrics
/// count each attempt.
pub const DEFAULT_LOG_FILTER: &str = "info,openraft=warn,\
    openraft::core::heartbeat::worker=error,\
    openraft::replication=error,\
    openraft::replication::stream_state=warn,\
    openraft::replication::snapshot_transmitter=warn,\
    openraft::engine::handler::replication_handler=error";

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default:
/// [`DEFAULT_LOG_FILTER`]).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_target(false)
        .init();
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
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

/// Accepted connections with Nagle's algorithm off: Raft heartbeats and small
/// replies must not wait for delayed ACKs (a 40 ms stall per round trip
/// otherwise). tonic's `Server::tcp_nodelay` only covers listeners it binds
/// itself, not an incoming stream handed to `serve_with_incoming`.
pub fn nodelay_incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Box::pin(nodelay_incoming(listener));
        let _client = TcpStream::connect(addr).await.unwrap();
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().unwrap());
    }
}
