//! [`ShardMap`]: the applied config history in memory, shared by the state
//! machine (which writes it) and the gRPC service (which reads it), with a
//! change feed for `WatchConfig`.
//!
//! Reads take a short `std` read lock and clone what they return; the state
//! machine takes the write lock only to append configs or swap in a
//! snapshot. After each change the number of the latest config is published
//! on a `tokio::sync::watch`, which wakes every watcher; a watcher then reads
//! [`ShardMap::since`] its last delivered number, so it never misses or
//! repeats a config however many changes one wake-up covers.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use shardline_proto::shardmap::Config;
use shardline_raft::{LogId, StoredMembership};
use tokio::sync::watch;

use crate::command::Bootstrap;
use crate::error::ControllerError;
use crate::state::ControllerState;

/// The state machine's in-memory state.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub state: ControllerState,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Cheap to clone; all clones see the same history.
#[derive(Clone)]
pub struct ShardMap {
    inner: Arc<RwLock<Applied>>,
    /// Number of the latest applied config.
    latest: Arc<watch::Sender<u64>>,
}

impl ShardMap {
    pub(crate) fn new(applied: Applied) -> Self {
        let (tx, _) = watch::channel(applied.state.latest().num);
        ShardMap {
            inner: Arc::new(RwLock::new(applied)),
            latest: Arc::new(tx),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the applied state under the read lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        f(&self.read())
    }

    /// Runs `f` on the applied state under the write lock, then publishes
    /// the latest config number.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Applied) -> R) -> R {
        let (out, latest) = {
            let mut guard: RwLockWriteGuard<'_, Applied> =
                self.inner.write().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut guard);
            (out, guard.state.latest().num)
        };
        self.latest.send_if_modified(|n| {
            let changed = *n != latest;
            *n = latest;
            changed
        });
        out
    }

    pub fn bootstrap(&self) -> Bootstrap {
        *self.read().state.bootstrap()
    }

    /// The newest applied config.
    pub fn latest(&self) -> Config {
        self.read().state.latest().clone()
    }

    /// Config `num` (the latest for `None`) as applied here.
    pub fn query(&self, num: Option<u64>) -> Result<Config, ControllerError> {
        self.read().state.query(num).cloned()
    }

    /// Up to `max` configs numbered above `after`, oldest first.
    pub fn since(&self, after: u64, max: usize) -> Vec<Config> {
        let guard = self.read();
        let all = guard.state.since(after);
        all[..all.len().min(max)].to_vec()
    }

    /// A receiver of the latest config number, for waiting on changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}
