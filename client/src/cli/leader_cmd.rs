//! `shardline transfer-leader ID`: hands a group's leadership to one of its
//! voters, e.g. before restarting the member that leads.

use clap::Args;
use serde_json::json;

use super::output::Report;
use super::Context;
use crate::AdminClient;

#[derive(Debug, Args)]
pub struct TransferLeaderArgs {
    /// Node id of the voter that should lead next.
    pub node_id: u64,
}

pub async fn transfer_leader(ctx: &Context, a: TransferLeaderArgs) -> anyhow::Result<Report> {
    let eps = ctx.resolve_endpoints()?;
    let admin = AdminClient::connect(eps.endpoints, ctx.client_options()).await?;
    let term = admin.transfer_leader(a.node_id).await?;
    Ok(Report::new(
        format!("node {} leads in term {term}", a.node_id),
        json!({ "leader_id": a.node_id, "term": term }),
    ))
}
