//! Joining a running group: a new member asks any existing member to add it
//! (the `Admin.AddMember` RPC), following NotLeader hints to the leader, with
//! bounded retries and backoff.

use std::time::Duration;

use shardline_proto::pb::admin_client::AdminClient;
use shardline_proto::pb::{error_detail::Kind, AddMemberRequest};
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

/// [`join_group`] with its retry policy. A `NotLeader` hint is followed at
/// once, but a second hint in a row (members pointing at each other during
/// an election) waits out the backoff first, so an election cannot use up
/// every attempt in a few milliseconds.
pub async fn join_group_with(
    pool: &ChannelPool,
    via: &str,
    node_id: u64,
    address: &str,
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
        let mut req = tonic::Request::new(AddMemberRequest {
            node_id,
            address: address.to_string(),
        });
        req.set_timeout(retry.attempt_timeout);
        match client.add_member(req).await {
            Ok(_) => {
                info!(via = %target, attempt, "joined group");
                return Ok(());
            }
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
                    Some(Kind::InvalidArgument(a)) => {
                        return Err(ApiError::Join {
                            addr: target,
                            reason: format!("{}: {}", a.field, a.reason),
                        })
                    }
                    _ => {
                        warn!(via = %target, attempt, error = %status.message(), "join attempt failed")
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
