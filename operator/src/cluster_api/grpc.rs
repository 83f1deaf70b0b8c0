//! [`ClusterApi`] over gRPC: the controller's `Controller` service, and the
//! `Admin` service of every Raft group (shard groups and the controller) for
//! status and membership changes.
//!
//! One channel per target (a cluster's controller group, or one shard
//! group), balanced over its members and kept for reuse (any member answers),
//! plus one channel per member address for the calls that must reach a
//! particular member. Every call has a deadline: the channel's per-request
//! timeout and, around it, a tokio timeout that also bounds connection
//! set-up.
//!
//! A pod that was started for a new member but not yet added knows no
//! leader and answers status calls with an empty view. So a status answer
//! without a leader is not taken as the group's: the members are then asked
//! one by one (at most once each) for an answer that names a leader.
//!
//! Membership changes and leadership transfers go to the leader: first the
//! leader address the caller knows, then each member address in turn; a
//! `NotLeader` answer naming the leader is followed at once, at most
//! [`MAX_LEADER_HOPS`] times. Every address is tried at most once per call,
//! so the call is bounded; the next reconcile is the retry.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use shardline_proto::pb;
use shardline_proto::pb::admin_client::AdminClient;
use shardline_proto::pb::controller_client::ControllerClient;
use shardline_proto::pb::error_detail::Kind;
use shardline_proto::status::detail_of;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tracing::debug;

use super::{ClusterApi, ClusterView, GroupLeader, GroupReport, RaftMember, Target};
use crate::error::{Error, Result};

/// Leader hints followed at most per membership call or status query.
pub const MAX_LEADER_HOPS: u32 = 3;
/// Default deadline of `AddMember` (which waits for the learner to catch
/// up) and `RemoveMember`.
pub const DEFAULT_MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// `http://host:port` for a member address given as `host:port` or a URL.
fn url(address: &str) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

/// Cached channels by target key, with the endpoints they were built for.
type ChannelCache = HashMap<String, (Vec<String>, Channel)>;

/// The real controller client.
pub struct GrpcClusterApi {
    /// Deadline of every call but membership changes and leadership transfers.
    timeout: Duration,
    /// Deadline of `AddMember` (it returns once the new member caught up),
    /// `RemoveMember` and `TransferLeader`.
    membership_timeout: Duration,
    /// One channel per target (a cluster's controller, or one shard group),
    /// reused across reconciles.
    channels: Mutex<ChannelCache>,
}

impl GrpcClusterApi {
    /// A client whose calls each take at most `timeout` (membership
    /// changes [`DEFAULT_MEMBERSHIP_TIMEOUT`], or `timeout` if longer).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            membership_timeout: DEFAULT_MEMBERSHIP_TIMEOUT.max(timeout),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the deadline of `AddMember` and `RemoveMember`.
    pub fn with_membership_timeout(mut self, timeout: Duration) -> Self {
        self.membership_timeout = timeout;
        self
    }

    /// A channel to one member (`http://host:port`), cached under the
    /// target's key so [`ClusterApi::forget`] drops it with the target.
    fn member_channel(&self, target: &Target, endpoint: &str) -> Result<Channel> {
        let key = format!("{}/@{endpoint}", target.key);
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, channel)) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|err| Error::Endpoint {
                endpoint: endpoint.to_string(),
                reason: err.to_string(),
            })?
            .connect_timeout(self.timeout)
            .timeout(self.timeout.max(self.membership_timeout))
            .connect_lazy();
        channels.insert(key, (vec![endpoint.to_string()], channel.clone()));
        Ok(channel)
    }

    async fn admin_status(&self, channel: Channel) -> Result<pb::StatusResponse> {
        let mut client = AdminClient::new(channel);
        self.call("Status", client.status(pb::StatusRequest {}))
            .await
    }

    /// Status of the group at `target` as its leader reports it: from the
    /// balanced channel, else each member in turn, the first answer that
    /// names a leader; then from that leader itself when another member
    /// answered (a member removed from the group but still running may
    /// hold a stale membership), following at most [`MAX_LEADER_HOPS`] hints.
    /// Falls back to the best answer it got.
    async fn led_status(&self, target: &Target) -> Result<pb::StatusResponse> {
        let has_leader = |r: &pb::StatusResponse| r.leader_id.is_some_and(|id| id > 0);
        let first = self.admin_status(self.channel(target)?).await;
        let mut led = first.as_ref().ok().filter(|r| has_leader(r)).cloned();
        if led.is_none() {
            for endpoint in &target.endpoints {
                match self
                    .admin_status(self.member_channel(target, endpoint)?)
                    .await
                {
                    Ok(r) if has_leader(&r) => {
                        led = Some(r);
                        break;
                    }
                    Ok(_) => debug!(%endpoint, "member knows no leader"),
                    Err(e) => debug!(%endpoint, error = %e, "member did not answer Status"),
                }
            }
        }
        let Some(mut answer) = led else { return first };
        // Follow the named leader until one confirms it leads; a hint is
        // taken only from a term at least as new (a member that has not
        // heard of a leadership transfer yet names the old leader, which
        // names the new one).
        let mut asked = HashSet::from([answer.node_id]);
        for _ in 0..MAX_LEADER_HOPS {
            let Some(next) = answer.leader_id else { break };
            if next == answer.node_id || answer.leader_addr.is_empty() || !asked.insert(next) {
                break;
            }
            let leader = url(&answer.leader_addr);
            match self
                .admin_status(self.member_channel(target, &leader)?)
                .await
            {
                Ok(r) if has_leader(&r) && r.term >= answer.term => answer = r,
                Ok(_) => break,
                Err(e) => {
                    debug!(%leader, id = next, error = %e, "leader did not answer Status");
                    break;
                }
            }
        }
        Ok(answer)
    }

    /// Makes `call` (an Admin RPC made by `send`) on the leader of the group
    /// at `target`, each attempt bounded by the membership deadline.
    async fn on_leader<T, F, Fut>(
        &self,
        target: &Target,
        leader: Option<&str>,
        call: &'static str,
        send: F,
    ) -> Result<T>
    where
        F: Fn(AdminClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut queue: VecDeque<String> = leader
            .map(url)
            .into_iter()
            .chain(target.endpoints.iter().cloned())
            .collect();
        let mut tried = HashSet::new();
        let mut hops = 0;
        let mut answers: Vec<String> = Vec::new();
        while let Some(endpoint) = queue.pop_front() {
            if !tried.insert(endpoint.clone()) {
                continue;
            }
            let client = AdminClient::new(self.member_channel(target, &endpoint)?);
            let status = match tokio::time::timeout(self.membership_timeout, send(client)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => status,
                // The change may still be under way on the leader; trying
                // another member would not help. The next reconcile looks.
                Err(_) => {
                    return Err(Error::ControllerTimeout {
                        call,
                        after: self.membership_timeout,
                    })
                }
            };
            let answer = format!("{endpoint}: {}", status.message());
            match detail_of(&status) {
                Some(Kind::NotLeader(nl)) if !nl.leader_addr.is_empty() => {
                    if hops < MAX_LEADER_HOPS {
                        hops += 1;
                        let next = url(&nl.leader_addr);
                        tried.remove(&next);
                        queue.push_front(next);
                    }
                }
                Some(Kind::NotLeader(_)) | Some(Kind::NoLeader(_)) => {}
                _ if status.code() == Code::Unavailable => {}
                _ => {
                    return Err(Error::Controller {
                        call,
                        source: Box::new(status),
                    })
                }
            }
            debug!(%endpoint, call, %answer, "trying the next member");
            answers.push(answer);
        }
        Err(Error::NoLeaderReached {
            call,
            target: target.key.clone(),
            answers: if answers.is_empty() {
                "no member address to try".into()
            } else {
                answers.join("; ")
            },
        })
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
                .await;
            if resp.as_ref().is_ok_and(|r| r.leader_id.is_some()) {
                return Ok(ClusterView::from_pb(resp?));
            }
            // A member that knows no leader (a new pod not yet added) answers
            // with an empty view: ask the members one by one.
            for endpoint in &target.endpoints {
                let mut one = ControllerClient::new(self.member_channel(target, endpoint)?);
                match self
                    .call("ClusterStatus", one.cluster_status(request))
                    .await
                {
                    Ok(r) if r.leader_id.is_some() => return Ok(ClusterView::from_pb(r)),
                    Ok(_) => debug!(%endpoint, "controller member knows no leader"),
                    Err(e) => debug!(%endpoint, error = %e, "controller member did not answer"),
                }
            }
            Ok(ClusterView::from_pb(resp?))
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
            let resp = self.led_status(target).await?;
            let leader = resp.leader_id.filter(|id| *id > 0).map(|id| GroupLeader {
                id,
                address: resp.leader_addr,
            });
            Ok(GroupReport {
                leader,
                key_count: resp.key_count,
                members: resp.members.into_iter().map(RaftMember::from).collect(),
            })
        }
        .boxed()
    }

    fn add_member<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RaftMember>>> {
        async move {
            let request = pb::AddMemberRequest {
                node_id: id,
                address: address.to_string(),
            };
            let resp = self
                .on_leader(target, leader, "AddMember", |mut c| {
                    let request = request.clone();
                    async move { c.add_member(request).await }
                })
                .await?;
            Ok(resp.members.into_iter().map(RaftMember::from).collect())
        }
        .boxed()
    }

    fn remove_member<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
    ) -> BoxFuture<'a, Result<Vec<RaftMember>>> {
        async move {
            let request = pb::RemoveMemberRequest { node_id: id };
            let resp = self
                .on_leader(target, leader, "RemoveMember", |mut c| async move {
                    c.remove_member(request).await
                })
                .await?;
            Ok(resp.members.into_iter().map(RaftMember::from).collect())
        }
        .boxed()
    }

    fn transfer_leader<'a>(
        &'a self,
        target: &'a Target,
        leader: Option<&'a str>,
        id: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        async move {
            let request = pb::TransferLeaderRequest { node_id: id };
            let resp = self
                .on_leader(target, leader, "TransferLeader", |mut c| async move {
                    c.transfer_leader(request).await
                })
                .await?;
            Ok(resp.term)
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
    use std::sync::Arc;

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

    /// An Admin server answering `Status` with what the test set.
    #[derive(Clone, Default)]
    struct StatusOnly(Arc<Mutex<pb::StatusResponse>>);

    #[tonic::async_trait]
    impl pb::admin_server::Admin for StatusOnly {
        async fn status(
            &self,
            _: tonic::Request<pb::StatusRequest>,
        ) -> std::result::Result<tonic::Response<pb::StatusResponse>, tonic::Status> {
            Ok(tonic::Response::new(self.0.lock().unwrap().clone()))
        }
        async fn add_member(
            &self,
            _: tonic::Request<pb::AddMemberRequest>,
        ) -> std::result::Result<tonic::Response<pb::MembershipResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("status only"))
        }
        async fn remove_member(
            &self,
            _: tonic::Request<pb::RemoveMemberRequest>,
        ) -> std::result::Result<tonic::Response<pb::MembershipResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("status only"))
        }
        async fn compact(
            &self,
            _: tonic::Request<pb::CompactRequest>,
        ) -> std::result::Result<tonic::Response<pb::CompactResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("status only"))
        }
        async fn transfer_leader(
            &self,
            _: tonic::Request<pb::TransferLeaderRequest>,
        ) -> std::result::Result<tonic::Response<pb::TransferLeaderResponse>, tonic::Status>
        {
            Err(tonic::Status::unimplemented("status only"))
        }
    }

    async fn serve(member: StatusOnly) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::admin_server::AdminServer::new(member))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    fn status(node_id: u64, term: u64, leader: (u64, &str)) -> pb::StatusResponse {
        pb::StatusResponse {
            node_id,
            term,
            leader_id: Some(leader.0),
            leader_addr: leader.1.to_string(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn group_status_follows_leader_hints_of_newer_terms() {
        // Node 2 has not heard of the transfer from 3 to 1 yet; node 3 has.
        let [one, two, three] = [(); 3].map(|_| StatusOnly::default());
        let [a1, a2, a3] = [
            serve(one.clone()).await,
            serve(two.clone()).await,
            serve(three.clone()).await,
        ];
        *one.0.lock().unwrap() = status(1, 2, (1, &a1));
        *two.0.lock().unwrap() = status(2, 1, (3, &a3));
        *three.0.lock().unwrap() = status(3, 2, (1, &a1));
        let api = GrpcClusterApi::new(Duration::from_secs(2));
        let target = Target {
            key: "ns/kv/g1".into(),
            endpoints: vec![format!("http://{a2}")],
        };
        let report = api.group_status(&target).await.unwrap();
        assert_eq!(
            report.leader.map(|l| (l.id, l.address)),
            Some((1, a1.clone()))
        );

        // A hint from an older term than the answer's is not followed.
        *three.0.lock().unwrap() = status(3, 0, (1, &a1));
        api.forget(&target);
        let report = api.group_status(&target).await.unwrap();
        assert_eq!(report.leader.map(|l| l.id), Some(3));
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
