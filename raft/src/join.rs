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

/// Attempts before giving up on joining.
const MAX_ATTEMPTS: u32 = 30;
/// Per-attempt deadline (adding a learner waits for it to catch up).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the group reachable at `via` to add `(node_id, address)` as a voter.
pub async fn join_group(
    pool: &ChannelPool,
    via: &str,
    node_id: u64,
    address: &str,
) -> Result<(), ApiError> {
    let mut target = via.to_string();
    let mut delay = Duration::from_millis(100);
    let mut last = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let channel = pool.get(&target).map_err(|e| ApiError::Join {
            addr: target.clone(),
            reason: e.to_string(),
        })?;
        let mut client = AdminClient::new(channel);
        let mut req = tonic::Request::new(AddMemberRequest {
            node_id,
            address: address.to_string(),
        });
        req.set_timeout(ATTEMPT_TIMEOUT);
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
        let jitter = Duration::from_millis(u64::from(attempt) * 7 % 50);
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(Duration::from_secs(2));
        target = via.to_string();
    }
    Err(ApiError::Join {
        addr: via.to_string(),
        reason: format!("gave up after {MAX_ATTEMPTS} attempts: {last}"),
    })
}
