//! The `Controller` gRPC service. Any member answers every call:
//! - `Join`, `Leave`, `Move`, `Split` go through the Raft log on the leader
//!   (forwarded there by [`Forwarder`]); a rejected command changes nothing
//!   and answers its typed [`ControllerError`](crate::ControllerError).
//! - `Query(n)` for a config this member has applied is answered locally:
//!   configs never change once made. `Query(latest)`, and `Query(n)` for an
//!   `n` not applied here, run on the leader after a read-index barrier, so
//!   they are linearizable (`ConfigNotFound` means it does not exist yet).
//! - `WatchConfig` streams from this member's applied history.
//! - `ReportLoad` records soft state on the leader; `ClusterStatus` answers
//!   from the leader, or from this member if no leader can be reached, with
//!   per-group and per-range load and the hot ranges ([`crate::hot`]).

use openraft::async_runtime::watch::WatchReceiver;
use std::future::Future;

use shardline_proto::pb::controller_server::Controller;
use shardline_proto::pb::{self, controller_client::ControllerClient};
use shardline_raft::raft_view::RaftView;
use shardline_raft::read_index::ReadIndex;
use shardline_raft::ApiError;
use tokio::sync::watch as tokio_watch;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::forward::Forwarder;
use super::watch::{self, ConfigStream};
use crate::command::{Bootstrap, Command};
use crate::error::ControllerError;
use crate::hot::{self, HotPolicy};
use crate::load::LoadTable;
use crate::metrics::{Metrics, RequestTimer};
use crate::store::ShardMap;
use crate::types::{Outcome, Proposal, Raft};

pub struct ControllerService {
    pub raft: Raft,
    pub map: ShardMap,
    pub read_index: ReadIndex,
    pub forwarder: Forwarder,
    pub loads: LoadTable,
    /// Default threshold and staleness limit of hot ranges.
    pub hot: HotPolicy,
    pub metrics: Metrics,
    /// Stamped on every proposal (see `types::Proposal`).
    pub bootstrap: Bootstrap,
    /// Turns true at shutdown; ends open watches.
    pub stop: tokio_watch::Receiver<bool>,
}

fn config_response(config: &shardline_proto::shardmap::Config) -> pb::ConfigResponse {
    pb::ConfigResponse {
        config: Some(config.into()),
    }
}

impl ControllerService {
    fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// Proposes `command` here (this member should lead) and waits until it
    /// is applied or `deadline` passes.
    async fn propose(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<pb::ConfigResponse, Status> {
        let proposal = Proposal {
            bootstrap: self.bootstrap,
            command,
        };
        let written = tokio::time::timeout_at(deadline, self.raft.client_write(proposal)).await;
        match written {
            Err(_) => Err(Status::deadline_exceeded(
                "the change was not applied before the deadline; its outcome is unknown",
            )),
            Ok(Err(e)) => Err(ApiError::from_write(e, self.term()).into()),
            Ok(Ok(resp)) => match resp.data {
                Outcome::Config(config) => Ok(config_response(&config)),
                Outcome::Rejected(e) => Err(e.into()),
                Outcome::None => Err(Status::internal("a command entry produced no outcome")),
            },
        }
    }

    /// A write: `to_command(request)` through the log on the leader.
    async fn write<Req, R, RF>(
        &self,
        method: &'static str,
        request: Request<Req>,
        to_command: fn(Req) -> Command,
        remote: R,
    ) -> Result<Response<pb::ConfigResponse>, Status>
    where
        Req: Clone,
        R: Fn(ControllerClient<Channel>, Request<Req>) -> RF,
        RF: Future<Output = Result<Response<pb::ConfigResponse>, Status>>,
    {
        let timer = RequestTimer::start();
        let result = self
            .forwarder
            .on_leader(
                request,
                |req, deadline| self.propose(to_command(req), deadline),
                remote,
            )
            .await;
        timer
            .finish(&self.metrics, method, result)
            .map(Response::new)
    }

    /// Query on the leader, after a read-index barrier.
    async fn query_on_leader(
        &self,
        num: Option<u64>,
        deadline: Instant,
    ) -> Result<pb::ConfigResponse, Status> {
        tokio::time::timeout_at(deadline, self.read_index.barrier())
            .await
            .map_err(|_| Status::deadline_exceeded("read barrier timed out"))?
            .map_err(Status::from)?;
        let config = self.map.query(num).map_err(Status::from)?;
        Ok(config_response(&config))
    }

    fn report_load_here(
        &self,
        req: pb::ReportLoadRequest,
    ) -> Result<pb::ReportLoadResponse, Status> {
        if !self.map.latest().groups.contains_key(&req.gid) {
            return Err(ControllerError::UnknownGroup { gid: req.gid }.into());
        }
        self.loads.record(req.gid, req.ranges);
        Ok(pb::ReportLoadResponse {})
    }

    /// This member's answer; `hot_ops_per_sec` is an already checked
    /// threshold.
    fn status_here(&self, hot_ops_per_sec: f64) -> pb::ClusterStatusResponse {
        let view = RaftView::from_metrics(&self.raft.metrics().borrow_watched());
        let latest = self.map.latest();
        let ranges = self.loads.ranges(&latest);
        let hot_ranges = hot::hot_ranges(&ranges, hot_ops_per_sec, self.hot.max_report_age);
        pb::ClusterStatusResponse {
            members: view
                .members
                .iter()
                .map(|m| pb::ControllerMember {
                    id: m.id,
                    address: m.address.clone(),
                    role: m.role.as_str().to_string(),
                })
                .collect(),
            leader_id: view.leader_id,
            term: view.term,
            groups: self.loads.summary(&latest),
            latest: Some((&latest).into()),
            ranges,
            hot_ranges,
            hot_ops_per_sec,
        }
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    #[instrument(skip_all, fields(groups = request.get_ref().groups.len()))]
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        self.write("join", request, Command::from, |mut c, r| async move {
            c.join(r).await
        })
        .await
    }

    #[instrument(skip_all, fields(gids = ?request.get_ref().gids))]
    async fn leave(
        &self,
        request: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        self.write("leave", request, Command::from, |mut c, r| async move {
            c.leave(r).await
        })
        .await
    }

    #[instrument(skip_all, fields(range_id = request.get_ref().range_id, gid = request.get_ref().gid))]
    async fn r#move(
        &self,
        request: Request<pb::MoveRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        self.write("move", request, Command::from, |mut c, r| async move {
            c.r#move(r).await
        })
        .await
    }

    #[instrument(skip_all, fields(range_id = request.get_ref().range_id))]
    async fn split(
        &self,
        request: Request<pb::SplitRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        self.write("split", request, Command::from, |mut c, r| async move {
            c.split(r).await
        })
        .await
    }

    #[instrument(skip_all, fields(num = ?request.get_ref().num))]
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let timer = RequestTimer::start();
        // A config this member has applied never changes: answer it here.
        if let Some(num) = request.get_ref().num {
            if let Ok(config) = self.map.query(Some(num)) {
                return timer
                    .finish(&self.metrics, "query", Ok(config_response(&config)))
                    .map(Response::new);
            }
        }
        let result = self
            .forwarder
            .on_leader(
                request,
                |req, deadline| self.query_on_leader(req.num, deadline),
                |mut c, r| async move { c.query(r).await },
            )
            .await;
        timer
            .finish(&self.metrics, "query", result)
            .map(Response::new)
    }

    type WatchConfigStream = ConfigStream;

    #[instrument(skip_all, fields(from_num = request.get_ref().from_num))]
    async fn watch_config(
        &self,
        request: Request<pb::WatchConfigRequest>,
    ) -> Result<Response<Self::WatchConfigStream>, Status> {
        let from_num = request.into_inner().from_num;
        self.metrics
            .observe("watch_config", Ok(()), Default::default());
        Ok(Response::new(watch::spawn(
            self.map.clone(),
            from_num,
            self.stop.clone(),
            self.metrics.watch_opened(),
        )))
    }

    #[instrument(skip_all, fields(gid = request.get_ref().gid, ranges = request.get_ref().ranges.len()))]
    async fn report_load(
        &self,
        request: Request<pb::ReportLoadRequest>,
    ) -> Result<Response<pb::ReportLoadResponse>, Status> {
        let timer = RequestTimer::start();
        let result = self
            .forwarder
            .on_leader(
                request,
                |req, _| async move { self.report_load_here(req) },
                |mut c, r| async move { c.report_load(r).await },
            )
            .await;
        timer
            .finish(&self.metrics, "report_load", result)
            .map(Response::new)
    }

    #[instrument(skip_all)]
    async fn cluster_status(
        &self,
        request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let timer = RequestTimer::start();
        let threshold = match hot::threshold(
            request.get_ref().hot_ops_per_sec,
            self.hot.default_ops_per_sec,
        ) {
            Ok(t) => t,
            Err(e) => {
                return timer
                    .finish(&self.metrics, "cluster_status", Err(e.into()))
                    .map(Response::new)
            }
        };
        // Load is known on the leader: ask it when one is known, and fall
        // back to this member's own view when none can be reached.
        let result = if self
            .raft
            .metrics()
            .borrow_watched()
            .current_leader
            .is_none()
        {
            Ok(self.status_here(threshold))
        } else {
            let forwarded = Forwarder::is_forwarded(request.metadata());
            let asked = self
                .forwarder
                .on_leader(
                    request,
                    |_, _| async { Ok(self.status_here(threshold)) },
                    |mut c, r| async move { c.cluster_status(r).await },
                )
                .await;
            match asked {
                Err(e) if !forwarded => {
                    tracing::debug!(error = %e.message(), "leader unreachable; answering locally");
                    Ok(self.status_here(threshold))
                }
                other => other,
            }
        };
        timer
            .finish(&self.metrics, "cluster_status", result)
            .map(Response::new)
    }
}
