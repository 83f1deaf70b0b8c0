//! [`ClusterApi`] over gRPC: the controller's `Controller` service, and the
//! shard groups' `Admin` service for their leaders.
//!
//! One channel per target (a cluster's controller group, or one shard
//! group), balanced over its members and kept for reuse (any member answers).
//! Every call has a deadline: the channel's per-request timeout and, around
//! it, a tokio timeout that also bounds connection set-up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use shardline_proto::pb;
use shardline_proto::pb::admin_client::AdminClient;
use shardline_proto::pb::controller_client::ControllerClient;
use tonic::transport::{Channel, Endpoint};

use super::{ClusterApi, ClusterView, GroupLeader, GroupReport, Target};
use crate::error::{Error, Result};

/// Cached channels by target key, with the endpoints they were built for.
type ChannelCache = HashMap<String, (Vec<String>, Channel)>;

/// The real controller client.
pub struct GrpcClusterApi {
    /// Deadline of every call.
    timeout: Duration,
    /// One channel per target (a cluster's controller, or one shard group),
    /// reused across reconciles.
    channels: Mutex<ChannelCache>,
}

impl GrpcClusterApi {
    /// A client whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channel(&self, target: &Target) -> Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((endpoints, channel)) = channels.get(&target.key) {
            if *endpoints == target.endpoints {
                return Ok(channel.clone());
            }
        }
        let mut list = Vec::with_capacity(target.endpoints.len());
        for e in &target.endpoints {
            let ep = Endpoint::from_shared(e.clone())
                .map_err(|err| Error::Endpoint {
                    endpoint: e.clone(),
                    reason: err.to_string(),
                })?
                .connect_timeout(self.timeout)
                .timeout(self.timeout);
            list.push(ep);
        }
        let channel = Channel::balance_list(list.into_iter());
        channels.insert(
            target.key.clone(),
            (target.endpoints.clone(), channel.clone()),
        );
        Ok(channel)
    }

    fn client(&self, target: &Target) -> Result<ControllerClient<Channel>> {
        Ok(ControllerClient::new(self.channel(target)?))
    }

    async fn call<T, F>(&self, call: &'static str, fut: F) -> Result<T>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(source)) => Err(Error::Controller {
                call,
                source: Box::new(source),
            }),
            Err(_) => Err(Error::ControllerTimeout {
                call,
                after: self.timeout,
            }),
        }
    }
}

fn config_num(resp: pb::ConfigResponse) -> u64 {
    resp.config.map(|c| c.num).unwrap_or(0)
}

impl ClusterApi for GrpcClusterApi {
    fn cluster_status<'a>(
        &'a self,
        target: &'a Target,
        hot_ops_per_sec: f64,
    ) -> BoxFuture<'a, Result<ClusterView>> {
        async move {
            let mut client = self.client(target)?;
            let request = pb::ClusterStatusRequest {
                hot_ops_per_sec: Some(hot_ops_per_sec),
            };
            let resp = self
                .call("ClusterStatus", client.cluster_status(request))
                .await?;
            Ok(ClusterView::from_pb(resp))
        }
        .boxed()
    }

    fn join<'a>(
        &'a self,
        target: &'a Target,
        groups: Vec<pb::GroupMembers>,
    ) -> BoxFuture<'a, Result<u64>> {
        async move {
            let mut client = self.client(target)?;
            let resp = self
                .call("Join", client.join(pb::JoinRequest { groups }))
                .await?;
            Ok(config_num(resp))
        }
        .boxed()
    }

    fn leave<'a>(&'a self, target: &'a Target, gids: Vec<u64>) -> BoxFuture<'a, Result<u64>> {
        async move {
            let mut client = self.client(target)?;
            let resp = self
                .call("Leave", client.leave(pb::LeaveRequest { gids }))
                .await?;
            Ok(config_num(resp))
        }
        .boxed()
    }

    fn group_status<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<GroupReport>> {
        async move {
            let mut client = AdminClient::new(self.channel(target)?);
            let resp = self
                .call("Status", client.status(pb::StatusRequest {}))
                .await?;
            let leader = resp.leader_id.filter(|id| *id > 0).map(|id| GroupLeader {
                id,
                address: resp.leader_addr,
            });
            Ok(GroupReport {
                leader,
                key_count: resp.key_count,
            })
        }
        .boxed()
    }

    /// Drops the cluster's controller channel and its groups' channels
    /// (keys `<cluster key>/g<gid>`).
    fn forget(&self, target: &Target) {
        let prefix = format!("{}/", target.key);
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| *k != target.key && !k.starts_with(&prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_controller_fails_within_the_deadline() {
        // Port 1 on loopback refuses connections: the call must fail (or time
        // out) promptly rather than hang.
        let api = GrpcClusterApi::new(Duration::from_millis(300));
        let target = Target {
            key: "ns/kv".into(),
            endpoints: vec!["http://127.0.0.1:1".into()],
        };
        let started = std::time::Instant::now();
        let err = api.cluster_status(&target, 100.0).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Controller { .. } | Error::ControllerTimeout { .. }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        api.forget(&target);
    }

    #[tokio::test]
    async fn bad_endpoint_is_reported() {
        let api = GrpcClusterApi::new(Duration::from_millis(300));
        let target = Target {
            key: "ns/kv".into(),
            endpoints: vec!["not a uri".into()],
        };
        assert!(matches!(
            api.leave(&target, vec![1]).await,
            Err(Error::Endpoint { .. })
        ));
    }
}
