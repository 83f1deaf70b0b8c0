//! The systems `shardline bench` can drive, behind one small interface:
//! point reads and writes, each worker holding its own handle.
//!
//! Shardline: one shared [`KvClient`] (one channel per member, requests to
//! the leader, retries and exactly-once headers as any application gets).
//! etcd: one channel per member; worker `i` uses member `i mod n`, as etcd's
//! own client balances, and followers forward to the leader.

use clap::ValueEnum;
use serde::Serialize;

use super::etcd::EtcdKv;
use crate::pool::ChannelPool;
use crate::{ClientOptions, KvClient};

/// Which system to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Shardline,
    Etcd,
}

/// Default etcd client endpoint.
pub const DEFAULT_ETCD_ENDPOINTS: &str = "127.0.0.1:2379";

/// A connected target, from which each worker takes a [`Handle`].
#[derive(Debug, Clone)]
pub enum Target {
    Shardline(KvClient),
    Etcd(Vec<EtcdKv>),
}

impl Target {
    /// Connects (lazily) to `endpoints`.
    pub async fn connect(
        kind: TargetKind,
        endpoints: Vec<String>,
        opts: ClientOptions,
    ) -> anyhow::Result<Target> {
        Ok(match kind {
            TargetKind::Shardline => Target::Shardline(KvClient::connect(endpoints, opts).await?),
            TargetKind::Etcd => {
                let pool = ChannelPool::new(opts.connect_timeout);
                let mut kvs = Vec::new();
                for e in &endpoints {
                    kvs.push(EtcdKv::new(pool.channel(e)?));
                }
                anyhow::ensure!(!kvs.is_empty(), "no etcd endpoints");
                Target::Etcd(kvs)
            }
        })
    }

    /// The handle worker `i` uses.
    pub fn handle(&self, i: usize) -> Handle {
        match self {
            Target::Shardline(kv) => Handle::Shardline(kv.clone()),
            Target::Etcd(kvs) => Handle::Etcd(kvs[i % kvs.len()].clone()),
        }
    }
}

/// One worker's connection to the target.
#[derive(Debug, Clone)]
pub enum Handle {
    Shardline(KvClient),
    Etcd(EtcdKv),
}

impl Handle {
    /// Reads `key` (linearizably); whether it existed.
    pub async fn get(&mut self, key: &[u8]) -> Result<bool, String> {
        match self {
            Handle::Shardline(kv) => kv
                .get(key)
                .await
                .map(|v| v.is_some())
                .map_err(|e| e.to_string()),
            Handle::Etcd(kv) => kv
                .get(key)
                .await
                .map(|v| v.is_some())
                .map_err(|e| e.to_string()),
        }
    }

    /// Writes `value` under `key`.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self {
            Handle::Shardline(kv) => kv
                .put(key, value)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Handle::Etcd(kv) => kv
                .put(key, value)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}
