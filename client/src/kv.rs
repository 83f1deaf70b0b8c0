//! [`KvClient`]: the key-value API of one shard group, with leader routing,
//! retries and exactly-once writes.
//!
//! Reads are linearizable unless [`ReadMode::Stale`] is asked for. Every
//! write takes a [`WriteTicket`] from the client's [`Session`] and sends its
//! header unchanged on every attempt, so a write retried after a timeout or
//! a leader change is applied once. The `*_with_header` methods send a
//! caller-chosen header, for tests that replay a `(client_id, seq)` by hand.

use std::sync::Arc;

use prost::Message;
use shardline_proto::pb::{self, batch_op, RequestHeader};

use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::pool::{self, ChannelPool};
use crate::router::Router;
use crate::session::{Session, WriteTicket};
use crate::validate;

/// How a read is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// By the leader after confirming leadership: sees every acknowledged write.
    #[default]
    Linearizable,
    /// From the local state of whichever member is asked; may lag.
    Stale,
}

impl ReadMode {
    fn options(self) -> Option<pb::ReadOptions> {
        Some(pb::ReadOptions {
            stale: self == ReadMode::Stale,
        })
    }
}

/// Outcome of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Whether the key existed before.
    pub existed: bool,
    /// Raft log index of the delete.
    pub index: u64,
}

/// Outcome of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the comparison held and the new value was written.
    pub succeeded: bool,
    /// The value found before the operation (`None`: the key was absent).
    pub current: Option<Vec<u8>>,
    /// Raft log index of the operation.
    pub index: u64,
}

/// One page of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Pairs in ascending key order.
    pub kvs: Vec<pb::KeyValue>,
    /// True when the limit cut the result.
    pub more: bool,
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl Mutation {
    fn into_pb(self) -> pb::BatchOp {
        let op = match self {
            Mutation::Put { key, value } => batch_op::Op::Put(pb::KeyValue { key, value }),
            Mutation::Delete { key } => batch_op::Op::Delete(key),
        };
        pb::BatchOp { op: Some(op) }
    }
}

/// Client of one shard group. Cheap to clone; clones share the channels,
/// the leader memory and the session.
#[derive(Debug, Clone)]
pub struct KvClient {
    router: Arc<Router>,
    session: Arc<Session>,
}

impl KvClient {
    /// A client of the group whose members listen at `endpoints`
    /// (`host:port`, optionally with `http://`). Connections are made lazily,
    /// so this only fails on a malformed or empty endpoint list.
    pub async fn connect<I, S>(endpoints: I, opts: ClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let pool = ChannelPool::new(opts.connect_timeout);
        Self::with_pool(endpoints, opts, pool)
    }

    /// Like [`Self::connect`], sharing the channels of `pool`.
    pub fn with_pool<I, S>(
        endpoints: I,
        opts: ClientOptions,
        pool: ChannelPool,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints = endpoints.into_iter().map(Into::into).collect();
        let router = Router::new(endpoints, pool, opts)?;
        Ok(KvClient {
            router: Arc::new(router),
            session: Arc::new(Session::new()),
        })
    }

    /// The configured endpoints, normalized.
    pub fn endpoints(&self) -> &[String] {
        self.router.endpoints()
    }

    /// The member currently believed to be the leader.
    pub fn leader(&self) -> Option<String> {
        self.router.leader()
    }

    /// The channel pool (share it with an [`crate::AdminClient`]).
    pub fn pool(&self) -> &ChannelPool {
        self.router.pool()
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        self.router.options()
    }

    /// The exactly-once session of this client.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Starts a write by hand: its header can be sent (and re-sent) with the
    /// `*_with_header` methods; the seq stays in flight until the ticket is
    /// dropped.
    pub fn begin_write(&self) -> WriteTicket {
        self.session.begin()
    }

    /// Linearizable read of `key`; `None` if absent.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        self.get_with(key, ReadMode::Linearizable).await
    }

    /// Read of `key` in the given mode.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        mode: ReadMode,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let key = key.as_ref();
        validate::key("key", key)?;
        let req = pb::GetRequest {
            key: key.to_vec(),
            options: mode.options(),
        };
        let resp = self
            .router
            .call("get", mode == ReadMode::Linearizable, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .get(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(resp.found.then_some(resp.value))
    }

    /// Writes `value` under `key`; returns the Raft log index of the write.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<u64, ClientError> {
        let ticket = self.session.begin();
        self.put_with_header(ticket.header(), key, value).await
    }

    /// [`Self::put`] with an explicit request header.
    pub async fn put_with_header(
        &self,
        header: &RequestHeader,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<u64, ClientError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        validate::key("key", key)?;
        validate::value("value", value)?;
        let req = pb::PutRequest {
            header: Some(header.clone()),
            key: key.to_vec(),
            value: value.to_vec(),
        };
        let resp = self
            .router
            .call("put", true, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .put(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(resp.index)
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteOutcome, ClientError> {
        let ticket = self.session.begin();
        self.delete_with_header(ticket.header(), key).await
    }

    /// [`Self::delete`] with an explicit request header.
    pub async fn delete_with_header(
        &self,
        header: &RequestHeader,
        key: impl AsRef<[u8]>,
    ) -> Result<DeleteOutcome, ClientError> {
        let key = key.as_ref();
        validate::key("key", key)?;
        let req = pb::DeleteRequest {
            header: Some(header.clone()),
            key: key.to_vec(),
        };
        let resp = self
            .router
            .call("delete", true, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .delete(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(DeleteOutcome {
            existed: resp.existed,
            index: resp.index,
        })
    }

    /// Sets `key` to `new_value` (or deletes it when `None`) if its current
    /// value is `expected` (or it is absent when `None`).
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new_value: Option<&[u8]>,
    ) -> Result<CasOutcome, ClientError> {
        let ticket = self.session.begin();
        self.compare_and_swap_with_header(ticket.header(), key, expected, new_value)
            .await
    }

    /// [`Self::compare_and_swap`] with an explicit request header.
    pub async fn compare_and_swap_with_header(
        &self,
        header: &RequestHeader,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new_value: Option<&[u8]>,
    ) -> Result<CasOutcome, ClientError> {
        let key = key.as_ref();
        validate::key("key", key)?;
        for (field, v) in [("expected", expected), ("new_value", new_value)] {
            if let Some(v) = v {
                validate::value(field, v)?;
            }
        }
        let req = pb::CompareAndSwapRequest {
            header: Some(header.clone()),
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            new_value: new_value.map(<[u8]>::to_vec),
        };
        let resp = self
            .router
            .call("compare_and_swap", true, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .compare_and_swap(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(CasOutcome {
            succeeded: resp.succeeded,
            current: resp.current,
            index: resp.index,
        })
    }

    /// One page of the pairs with `start <= key < end` (empty `end`: no upper
    /// bound), at most `limit` of them (0: the server default), linearizable.
    pub async fn scan(
        &self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        limit: u32,
    ) -> Result<ScanPage, ClientError> {
        self.scan_with(start, end, limit, ReadMode::Linearizable)
            .await
    }

    /// [`Self::scan`] in the given read mode.
    pub async fn scan_with(
        &self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        limit: u32,
        mode: ReadMode,
    ) -> Result<ScanPage, ClientError> {
        let (start, end) = (start.as_ref(), end.as_ref());
        validate::scan_bounds(start, end)?;
        let req = pb::ScanRequest {
            start: start.to_vec(),
            end: end.to_vec(),
            limit,
            options: mode.options(),
        };
        let resp = self
            .router
            .call("scan", mode == ReadMode::Linearizable, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .scan(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(ScanPage {
            kvs: resp.kvs,
            more: resp.more,
        })
    }

    /// Pages through `[start, end)` until the end or until `max` pairs
    /// (`None`: all). Each page is a separate linearizable read, so the
    /// result is not one snapshot.
    pub async fn scan_all(
        &self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        max: Option<usize>,
    ) -> Result<Vec<pb::KeyValue>, ClientError> {
        use shardline_proto::limits::MAX_SCAN_LIMIT;
        let end = end.as_ref().to_vec();
        let mut cursor = start.as_ref().to_vec();
        let mut out = Vec::new();
        loop {
            let want = max
                .map_or(MAX_SCAN_LIMIT as usize, |m| m.saturating_sub(out.len()))
                .min(MAX_SCAN_LIMIT as usize);
            if want == 0 {
                return Ok(out);
            }
            let page = self.scan(&cursor, &end, want as u32).await?;
            let last = page.kvs.last().map(|kv| kv.key.clone());
            out.extend(page.kvs);
            match last {
                Some(mut k) if page.more => {
                    k.push(0); // the smallest key after the last one
                    cursor = k;
                }
                _ => return Ok(out),
            }
        }
    }

    /// Applies `ops` atomically; returns the Raft log index.
    pub async fn batch(&self, ops: Vec<Mutation>) -> Result<u64, ClientError> {
        let ticket = self.session.begin();
        self.batch_with_header(ticket.header(), ops).await
    }

    /// [`Self::batch`] with an explicit request header.
    pub async fn batch_with_header(
        &self,
        header: &RequestHeader,
        ops: Vec<Mutation>,
    ) -> Result<u64, ClientError> {
        for op in &ops {
            match op {
                Mutation::Put { key, value } => {
                    validate::key("key", key)?;
                    validate::value("value", value)?;
                }
                Mutation::Delete { key } => validate::key("key", key)?,
            }
        }
        let req = pb::BatchRequest {
            header: Some(header.clone()),
            ops: ops.into_iter().map(Mutation::into_pb).collect(),
        };
        validate::batch(req.ops.len(), req.encoded_len())?;
        let resp = self
            .router
            .call("batch", true, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::kv_stub(ch)
                        .batch(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(resp.index)
    }
}

/// Wraps `msg` in a request that carries `timeout` as its gRPC deadline.
pub(crate) fn timed<T>(msg: T, timeout: std::time::Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}
