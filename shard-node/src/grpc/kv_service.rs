//! The client KV service: validates requests, proposes writes through Raft,
//! and serves reads linearizably (read index) or, on request, stale.

use std::time::Instant;

use shardline_proto::pb::kv_server::Kv;
use shardline_proto::pb::{self};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::error::NodeError;
use crate::load::LoadTracker;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use crate::store::KvReader;
use crate::types::{BatchOp, Command, CommandResult, Op, Session};
use crate::validate;
use shardline_raft::read_index::ReadIndex;
use shardline_raft::ApiError;

pub struct KvService {
    pub reader: KvReader,
    pub metrics: Metrics,
    pub read_index: ReadIndex,
    pub proposer: Proposer,
    /// Per-range operation counts for load reports.
    pub load: LoadTracker,
}

impl KvService {
    async fn write(&self, session: Session, op: Op) -> Result<(CommandResult, u64), NodeError> {
        let applied = self
            .proposer
            .propose(Command {
                session: Some(session),
                op,
            })
            .await?;
        match applied.result {
            CommandResult::DuplicateExpired { floor } => Err(NodeError::DuplicateExpired {
                seq: session.seq,
                floor,
            }),
            result => Ok((result, applied.index)),
        }
    }

    /// Waits until this member may serve a linearizable read (batched read
    /// index; see `read_index`). Stale reads skip the check.
    async fn read_barrier(&self, stale: bool) -> Result<(), NodeError> {
        if stale {
            return Ok(());
        }
        Ok(self.read_index.barrier().await?)
    }

    /// Runs a handler body, recording its outcome in the request metrics.
    async fn observe<T>(
        &self,
        method: &'static str,
        fut: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let res = fut.await;
        let result = match &res {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.metrics
            .observe_request(method, result, started.elapsed());
        res.map(Response::new).map_err(Status::from)
    }
}

fn stale(options: &Option<pb::ReadOptions>) -> bool {
    options.as_ref().is_some_and(|o| o.stale)
}

#[tonic::async_trait]
impl Kv for KvService {
    #[instrument(skip_all, fields(key_len = request.get_ref().key.len()))]
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = request.into_inner();
        self.observe("get", async {
            validate::key("key", &req.key)?;
            self.load.record(&req.key);
            self.read_barrier(stale(&req.options)).await?;
            Ok(match self.reader.get(&req.key)? {
                Some(value) => pb::GetResponse { found: true, value },
                None => pb::GetResponse {
                    found: false,
                    value: Vec::new(),
                },
            })
        })
        .await
    }

    #[instrument(skip_all, fields(key_len = request.get_ref().key.len()))]
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = request.into_inner();
        self.observe("put", async {
            let session = validate::session(req.header.as_ref())?;
            validate::key("key", &req.key)?;
            validate::value("value", &req.value)?;
            self.load.record(&req.key);
            let (_, index) = self
                .write(
                    session,
                    Op::Put {
                        key: req.key,
                        value: req.value,
                    },
                )
                .await?;
            Ok(pb::PutResponse { index })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = request.into_inner();
        self.observe("delete", async {
            let session = validate::session(req.header.as_ref())?;
            validate::key("key", &req.key)?;
            self.load.record(&req.key);
            let (res, index) = self.write(session, Op::Delete { key: req.key }).await?;
            let existed = matches!(res, CommandResult::Delete { existed: true });
            Ok(pb::DeleteResponse { existed, index })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn compare_and_swap(
        &self,
        request: Request<pb::CompareAndSwapRequest>,
    ) -> Result<Response<pb::CompareAndSwapResponse>, Status> {
        let req = request.into_inner();
        self.observe("cas", async {
            let session = validate::session(req.header.as_ref())?;
            validate::key("key", &req.key)?;
            if let Some(v) = &req.expected {
                validate::value("expected", v)?;
            }
            if let Some(v) = &req.new_value {
                validate::value("new_value", v)?;
            }
            self.load.record(&req.key);
            let op = Op::CompareAndSwap {
                key: req.key,
                expected: req.expected,
                new_value: req.new_value,
            };
            match self.write(session, op).await? {
                (CommandResult::CompareAndSwap { succeeded, current }, index) => {
                    Ok(pb::CompareAndSwapResponse {
                        succeeded,
                        current,
                        index,
                    })
                }
                (other, _) => {
                    Err(ApiError::Raft(format!("unexpected result for CAS: {other:?}")).into())
                }
            }
        })
        .await
    }

    #[instrument(skip_all)]
    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let req = request.into_inner();
        self.observe("scan", async {
            let limit = validate::scan(&req)?;
            self.load.record_scan(&req.start, &req.end);
            self.read_barrier(stale(&req.options)).await?;
            let (pairs, more) = self.reader.scan(&req.start, &req.end, limit)?;
            let kvs = pairs
                .into_iter()
                .map(|(key, value)| pb::KeyValue { key, value })
                .collect();
            Ok(pb::ScanResponse { kvs, more })
        })
        .await
    }

    #[instrument(skip_all, fields(ops = request.get_ref().ops.len()))]
    async fn batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let req = request.into_inner();
        self.observe("batch", async {
            let session = validate::session(req.header.as_ref())?;
            let ops = validate::batch(&req.ops)?;
            self.load.record_batch(ops.iter().map(|op| match op {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => key.as_slice(),
            }));
            let (_, index) = self.write(session, Op::Batch { ops }).await?;
            Ok(pb::BatchResponse { index })
        })
        .await
    }
}
