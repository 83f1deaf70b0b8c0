//! `shardline status`: every member's `Admin.Status`, assembled into one
//! [`GroupStatus`] and shown as a table (or its JSON).

use anyhow::bail;
use serde_json::json;

use super::output::{table, Report};
use super::Context;
use crate::error::ClientError;
use crate::group_status::GroupStatus;
use crate::AdminClient;

pub async fn status(ctx: &Context) -> anyhow::Result<Report> {
    let eps = ctx.resolve_endpoints()?;
    let mut opts = ctx.client_options();
    opts.call_timeout = opts.call_timeout.min(ctx.timeout);
    let admin = AdminClient::connect(eps.endpoints.clone(), opts).await?;
    let reports = admin.status_all().await;
    let group = GroupStatus::from_reports(&reports);
    if group.reachable() == 0 {
        let last = reports
            .iter()
            .find_map(|r| r.status.as_ref().err())
            .map(ToString::to_string);
        bail!(ClientError::Unavailable {
            op: "status",
            attempts: reports.len() as u32,
            elapsed: ctx.timeout,
            last_address: eps.endpoints.join(","),
            last_error: format!("no member reachable ({})", last.unwrap_or_default()),
        });
    }
    Ok(render_status(&group))
}

pub(crate) fn render_status(g: &GroupStatus) -> Report {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let mut human = match &g.leader {
        Some(l) => format!(
            "group {}  leader {} ({})  term {}\n",
            opt(g.group_id),
            l.id,
            l.address,
            opt(g.term)
        ),
        None => format!(
            "group {}  no leader  term {}\n",
            opt(g.group_id),
            opt(g.term)
        ),
    };
    let rows: Vec<Vec<String>> = g
        .members
        .iter()
        .map(|m| {
            let role = if m.reachable {
                m.role.clone()
            } else {
                format!("{} (unreachable)", m.role)
            };
            vec![
                opt(m.id),
                m.address.clone(),
                role,
                opt(m.term),
                opt(m.commit_index),
                opt(m.last_applied),
                opt(m.lag),
            ]
        })
        .collect();
    human.push_str(&table(
        &["ID", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG"],
        &rows,
    ));
    let json = serde_json::to_value(g).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    Report::new(human, json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_status::tests::three_member_reports;

    #[test]
    fn status_table_and_json_shape() {
        let g = GroupStatus::from_reports(&three_member_reports());
        let r = render_status(&g);
        let lines: Vec<&str> = r.human.lines().collect();
        assert_eq!(lines[0], "group 1  leader 1 (127.0.0.1:7401)  term 3");
        assert!(lines[1].starts_with("ID  ADDRESS"));
        assert!(lines[2].contains("leader") && lines[2].ends_with('0'));
        assert!(lines[4].contains("follower (unreachable)") && lines[4].ends_with("60"));
        let m = &r.json["members"];
        assert_eq!(m.as_array().unwrap().len(), 3);
        assert_eq!(m[0]["id"], 1);
        assert_eq!(m[0]["address"], "127.0.0.1:7401");
        assert_eq!(m[0]["role"], "leader");
        assert_eq!(m[2]["state"], "unreachable");
        assert_eq!(m[2]["reachable"], false);
        assert_eq!(r.json["leader"]["id"], 1);
    }
}
