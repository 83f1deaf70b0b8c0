//! [`AdminClient`]: status of every member and the leader-only maintenance
//! calls (membership changes, compaction) of one shard group.
//!
//! Status is asked of each member separately, one attempt each, so one down
//! member shows up as unreachable instead of failing the whole report; the
//! leader-only calls go through the same routing and retries as KV writes.

use std::sync::Arc;

use futures::future::join_all;
use shardline_proto::pb;

use crate::error::ClientError;
use crate::kv::timed;
use crate::options::ClientOptions;
use crate::pool::{self, normalize_address, ChannelPool};
use crate::router::Router;

/// One member's answer to `Admin.Status`, or why there was none.
#[derive(Debug)]
pub struct MemberReport {
    /// The address asked (normalized).
    pub address: String,
    pub status: Result<pb::StatusResponse, ClientError>,
}

/// Administration client of one shard group. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminClient {
    router: Arc<Router>,
}

impl AdminClient {
    /// A client of the group whose members listen at `endpoints`. Connects
    /// lazily.
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
        Ok(AdminClient {
            router: Arc::new(Router::new(endpoints, pool, opts)?),
        })
    }

    /// The configured endpoints, normalized.
    pub fn endpoints(&self) -> &[String] {
        self.router.endpoints()
    }

    /// `Admin.Status` of the member at `address`: one attempt within the
    /// per-call deadline, no retries.
    pub async fn status_of(&self, address: &str) -> Result<pb::StatusResponse, ClientError> {
        let address = normalize_address(address);
        let timeout = self.router.options().call_timeout;
        let channel = self.router.pool().channel(&address)?;
        let mut stub = pool::admin_stub(channel);
        let call = stub.status(timed(pb::StatusRequest {}, timeout));
        let unavailable = |last_error: String| ClientError::Unavailable {
            op: "status",
            attempts: 1,
            elapsed: timeout,
            last_address: address.clone(),
            last_error,
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(match crate::router::classify(&status) {
                crate::router::Disposition::Fail => ClientError::from_status(&address, &status),
                _ => unavailable(format!("{:?}: {}", status.code(), status.message())),
            }),
            Err(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
        }
    }

    /// `Admin.Status` of every configured endpoint and of every member any
    /// of them lists, asked concurrently. Sorted by address.
    pub async fn status_all(&self) -> Vec<MemberReport> {
        let mut asked: Vec<String> = Vec::new();
        let mut reports: Vec<MemberReport> = Vec::new();
        let mut todo: Vec<String> = self.endpoints().to_vec();
        // Two rounds: the configured endpoints, then members they name.
        for _ in 0..2 {
            todo.retain(|a| !asked.contains(a));
            todo.dedup();
            if todo.is_empty() {
                break;
            }
            let round = join_all(todo.iter().map(|a| async move {
                MemberReport {
                    address: a.clone(),
                    status: self.status_of(a).await,
                }
            }))
            .await;
            asked.append(&mut todo);
            for r in &round {
                if let Ok(s) = &r.status {
                    for m in &s.members {
                        let a = normalize_address(&m.address);
                        if !a.is_empty() && !asked.contains(&a) && !todo.contains(&a) {
                            todo.push(a);
                        }
                    }
                }
            }
            reports.extend(round);
        }
        reports.sort_by(|a, b| a.address.cmp(&b.address));
        reports
    }

    /// Adds member `node_id` at `address` (learner first, then voter).
    pub async fn add_member(
        &self,
        node_id: u64,
        address: &str,
    ) -> Result<Vec<pb::Member>, ClientError> {
        let req = pb::AddMemberRequest {
            node_id,
            address: address.to_string(),
        };
        let resp = self
            .router
            .call("add_member", true, |ch, timeout| {
                let req = req.clone();
                async move {
                    pool::admin_stub(ch)
                        .add_member(timed(req, timeout))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(resp.members)
    }

    /// Removes member `node_id` from the group.
    pub async fn remove_member(&self, node_id: u64) -> Result<Vec<pb::Member>, ClientError> {
        let req = pb::RemoveMemberRequest { node_id };
        let resp = self
            .router
            .call("remove_member", true, |ch, timeout| async move {
                pool::admin_stub(ch)
                    .remove_member(timed(req, timeout))
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok(resp.members)
    }

    /// Asks the leader to hand leadership to voter `node_id`; returns the
    /// term the target leads in.
    pub async fn transfer_leader(&self, node_id: u64) -> Result<u64, ClientError> {
        let req = pb::TransferLeaderRequest { node_id };
        let resp = self
            .router
            .call("transfer_leader", true, |ch, timeout| async move {
                pool::admin_stub(ch)
                    .transfer_leader(timed(req, timeout))
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok(resp.term)
    }

    /// Asks the leader to snapshot and purge its log; returns the snapshot
    /// index.
    pub async fn compact(&self) -> Result<u64, ClientError> {
        let resp = self
            .router
            .call("compact", true, |ch, timeout| async move {
                pool::admin_stub(ch)
                    .compact(timed(pb::CompactRequest {}, timeout))
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok(resp.snapshot_index)
    }
}
