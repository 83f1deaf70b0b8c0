//! One reusable gRPC channel per member address.
//!
//! A tonic `Channel` is a handle onto one HTTP/2 connection that multiplexes
//! any number of concurrent calls and reconnects by itself after a failure,
//! so the pool hands out clones of a single channel per address instead of
//! dialing per request (the openraft examples' habit that STYLE.md warns
//! against). Channels connect lazily, on their first call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_proto::limits::MAX_MESSAGE_BYTES;
use shardline_proto::pb::admin_client::AdminClient as AdminStub;
use shardline_proto::pb::kv_client::KvClient as KvStub;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;

/// Shared, cloneable map from address to channel.
#[derive(Clone, Debug)]
pub struct ChannelPool {
    /// Keyed by the normalized address (`host:port`, see [`normalize_address`]).
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
}

impl ChannelPool {
    /// An empty pool whose channels use `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        ChannelPool {
            channels: Arc::default(),
            connect_timeout,
        }
    }

    /// The channel to `address`, created (unconnected) on first use.
    pub fn channel(&self, address: &str) -> Result<Channel, ClientError> {
        let key = normalize_address(address);
        let mut map = self.channels.lock().expect("pool mutex poisoned");
        if let Some(ch) = map.get(&key) {
            return Ok(ch.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{key}"))
            .map_err(|e| ClientError::InvalidEndpoint {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let ch = endpoint.connect_lazy();
        map.insert(key, ch.clone());
        Ok(ch)
    }

    /// Number of distinct channels held.
    pub fn len(&self) -> usize {
        self.channels.lock().expect("pool mutex poisoned").len()
    }

    /// Whether no channel was created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A KV stub on `channel` with Shardline's message size limits.
pub fn kv_stub(channel: Channel) -> KvStub<Channel> {
    KvStub::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// An Admin stub on `channel` with Shardline's message size limits.
pub fn admin_stub(channel: Channel) -> AdminStub<Channel> {
    AdminStub::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The canonical `host:port` form of an address: surrounding whitespace, an
/// `http://` scheme and a trailing `/` are removed, so `http://a:1/` and
/// `a:1` share one channel and compare equal.
pub fn normalize_address(address: &str) -> String {
    let a = address.trim();
    let a = a.strip_prefix("http://").unwrap_or(a);
    a.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalize_and_share_a_channel() {
        assert_eq!(
            normalize_address(" http://127.0.0.1:7401/ "),
            "127.0.0.1:7401"
        );
        assert_eq!(normalize_address("localhost:7402"), "localhost:7402");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = ChannelPool::new(Duration::from_millis(100));
            pool.channel("127.0.0.1:1").unwrap();
            pool.channel("http://127.0.0.1:1/").unwrap();
            pool.channel("127.0.0.1:2").unwrap();
            assert_eq!(pool.len(), 2);
            assert!(pool.channel("bad host:1").is_err());
        });
    }
}
