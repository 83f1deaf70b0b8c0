//! Joining a running group: a new member asks any existing member to add it
//! (the `Admin.AddMember` RPC), following NotLeader hints to the leader, with
//! bounded retries and backoff. A member that lost its state asks the same
//! way to be removed first (`Admin.RemoveMember`; see `bootstrap`).

use std::time::Duration;

use shardline_proto::pb::admin_client::AdminClient;
use shardline_proto::pb::{error_detail::Kind, AddMemberRequest, RemoveMemberRequest};
use shardline_proto::status::detail_of;
use tracing::{info, warn};

use crate::error::ApiError;
use crate::network::ChannelPool;

/// How often and how patiently a join is retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts before giving up (hints followed count as attempts).
    pub attempts: u32,
    /// Wait after the first failure; doubles up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt deadline (adding a learner waits for it to catch up).
    pub attempt_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 30,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// Asks the group reachable at `via` to add `(node_id, address)` as a voter.
pub async fn join_group(
    pool: &ChannelPool,
    via: &str,
    node_id: u64,
    address: &str,
) -> Result<(), ApiError> {
    join_group_with(pool, via, node_id, address, Retry::default()).await
}

/// [`join_group`] with its retry policy.
pub async fn join_group_with(
    pool: &ChannelPool,
    via: &str,
    node_id: u64,
    address: &str,
    retry: Retry,
) -> Result<(), ApiError> {
    let change = Change::Add { node_id, address };
    ask_leader(pool, via, change, retry).await?;
    info!(via, "joined group");
    Ok(())
}

/// Asks the group reachable at `via` to remove `node_id` (voter or
/// learner). A member that is not in the group counts as removed.
pub async fn leave_group(
    pool: &ChannelPool,
    via: &str,
    node_id: u64,
    retry: Retry,
) -> Result<(), ApiError> {
    ask_leader(pool, via, Change::Remove { node_id }, retry).await?;
    info!(via, node_id, "removed from group");
    Ok(())
}

/// A membership change asked of a group's leader.
#[derive(Clone, Copy)]
enum Change<'a> {
    Add { node_id: u64, address: &'a str },
    Remove { node_id: u64 },
}

impl Change<'_> {
    /// Sends the change to `client`.
    async fn send(
        self,
        client: &mut AdminClient<tonic::transport::Channel>,
        timeout: Duration,
    ) -> Result<(), tonic::Status> {
        match self {
            Change::Add { node_id, address } => {
                let mut req = tonic::Request::new(AddMemberRequest {
                    node_id,
                    address: address.to_string(),
                });
                req.set_timeout(timeout);
                client.add_member(req).await.map(drop)
            }
            Change::Remove { node_id } => {
                let mut req = tonic::Request::new(RemoveMemberRequest { node_id });
                req.set_timeout(timeout);
                client.remove_member(req).await.map(drop)
            }
        }
    }
}

/// Sends `change` to the member at `via`, following `NotLeader` hints, with
/// `retry`'s bounded attempts and backoff. A hint is followed at once, but a
/// second hint in a row (members pointing at each other during an election)
/// waits out the backoff first, so an election cannot use up every attempt
/// in a few milliseconds. `InvalidArgument` ends the attempts: for an add it
/// is an error (the id is taken by another address), for a removal it means
/// the member is not in the group, which is what was asked.
async fn ask_leader(
    pool: &ChannelPool,
    via: &str,
    change: Change<'_>,
    retry: Retry,
) -> Result<(), ApiError> {
    let mut target = via.to_string();
    let mut delay = retry.first_delay;
    let mut last = String::new();
    // Set by a hint followed without waiting; cleared by a wait.
    let mut hopped = false;
    for attempt in 1..=retry.attempts {
        let channel = pool.get(&target).map_err(|e| ApiError::Join {
            addr: target.clone(),
            reason: e.to_string(),
        })?;
        let mut client = AdminClient::new(channel);
        match change.send(&mut client, retry.attempt_timeout).await {
            Ok(()) => return Ok(()),
            Err(status) => {
                last = status.message().to_string();
                match detail_of(&status) {
                    Some(Kind::NotLeader(nl)) if !nl.leader_addr.is_empty() => {
                        target = nl.leader_addr;
                        if !hopped {
                            hopped = true;
                            continue;
                        }
                        // A hint again: wait, then follow it.
                        back_off(&mut delay, attempt, retry.max_delay).await;
                        hopped = false;
                        continue;
                    }
                    Some(Kind::InvalidArgument(_)) if matches!(change, Change::Remove { .. }) => {
                        return Ok(());
                    }
                    Some(Kind::InvalidArgument(a)) => {
                        return Err(ApiError::Join {
                            addr: target,
                            reason: format!("{}: {}", a.field, a.reason),
                        })
                    }
                    _ => {
                        warn!(via = %target, attempt, error = %status.message(), "membership change attempt failed")
                    }
                }
            }
        }
        back_off(&mut delay, attempt, retry.max_delay).await;
        hopped = false;
        target = via.to_string();
    }
    Err(ApiError::Join {
        addr: via.to_string(),
        reason: format!("gave up after {} attempts: {last}", retry.attempts),
    })
}

/// Sleeps `delay` plus a little jitter, then doubles `delay` up to `max`.
async fn back_off(delay: &mut Duration, attempt: u32, max: Duration) {
    let jitter = Duration::from_millis(u64::from(attempt) * 7 % 50);
    tokio::time::sleep(*delay + jitter).await;
    *delay = (*delay * 2).min(max);
}
