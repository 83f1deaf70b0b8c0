//! Starting a member's Raft group: initialize a new group from `--peers`,
//! join a running one with `--join`, or recover from the data directory.

use std::collections::BTreeMap;

use openraft::errors::{InitializeError, RaftError};
use openraft::BasicNode;
use tracing::{info, warn};

use crate::args::RaftArgs;
use crate::error::ApiError;
use crate::network::ChannelPool;
use crate::{Raft, RaftTypes};

/// Initializes a new group from `--peers`, or joins one with `--join`. A
/// member that already has state does neither. `address` is this member's
/// advertised address.
pub async fn initialize_or_join<C: RaftTypes>(
    args: &RaftArgs,
    raft: &Raft<C>,
    pool: &ChannelPool,
    address: &str,
) -> Result<(), ApiError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ApiError::Raft(e.to_string()))?;
    if initialized {
        info!("recovered existing state from the data directory");
        return Ok(());
    }
    let members = args.initial_members()?;
    if !members.is_empty() {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        // Every initial member initializes with the same membership; openraft
        // treats the identical initial entry as the same log.
        match raft.initialize(nodes).await {
            Ok(()) => info!("initialized new group"),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                info!(reason = %e, "already initialized")
            }
            Err(e) => return Err(ApiError::Raft(e.to_string())),
        }
    } else if let Some(via) = &args.join {
        let (pool, via, id, addr) = (pool.clone(), via.clone(), args.node_id, address.to_string());
        // Joining needs this member's servers up (the leader replicates to
        // it), so it runs in the background.
        tokio::spawn(async move {
            if let Err(e) = crate::join::join_group(&pool, &via, id, &addr).await {
                tracing::error!(error = %e, "could not join the group");
            }
        });
    } else {
        warn!("no --peers and no --join: waiting to be added by an existing member");
    }
    Ok(())
}
