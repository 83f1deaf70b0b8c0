//! [`GroupStatus`]: one view of a group assembled from every member's
//! `Admin.Status` answer — who leads, each member's role, progress and lag.
//!
//! Roles (leader, follower, learner) come from the leader's membership view
//! when a leader answered, else from each member's own state. Lag is the
//! leader's last log index minus the index the leader knows the member has
//! matched; it is unknown (`None`) without an answering leader.

use serde::Serialize;
use shardline_proto::pb;

use crate::admin::MemberReport;
use crate::pool::normalize_address;

/// The status of one group. Serialized as-is by `shardline status -o json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group id any member reported.
    pub group_id: Option<u64>,
    /// The leader, as seen by the member with the highest term.
    pub leader: Option<LeaderRef>,
    /// Highest term any member reported.
    pub term: Option<u64>,
    /// Every member, sorted by id (unknown ids last), then address.
    pub members: Vec<MemberView>,
}

/// Which member leads.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaderRef {
    pub id: u64,
    pub address: String,
}

/// One member's line in the status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberView {
    /// Node id (unknown for an unreachable member no one else listed).
    pub id: Option<u64>,
    pub address: String,
    /// "leader", "follower" or "learner" ("unknown" when nobody said).
    pub role: String,
    /// Whether the member answered.
    pub reachable: bool,
    /// The member's own Raft state ("leader", "follower", "candidate",
    /// "learner", "shutdown"), or "unreachable".
    pub state: String,
    pub term: Option<u64>,
    pub commit_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub last_log_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Highest log index the leader knows this member holds.
    pub matched_index: Option<u64>,
    /// Leader's last log index minus `matched_index`.
    pub lag: Option<u64>,
    /// Why the member did not answer.
    pub error: Option<String>,
}

impl GroupStatus {
    /// Builds the view from per-member reports.
    pub fn from_reports(reports: &[MemberReport]) -> GroupStatus {
        let answers: Vec<(&str, &pb::StatusResponse)> = reports
            .iter()
            .filter_map(|r| r.status.as_ref().ok().map(|s| (r.address.as_str(), s)))
            .collect();
        let term = answers.iter().map(|(_, s)| s.term).max();
        let group_id = answers.first().map(|(_, s)| s.group_id);
        // The leader's own answer, preferring the highest term.
        let leader_answer = answers
            .iter()
            .filter(|(_, s)| s.state == "leader")
            .max_by_key(|(_, s)| s.term)
            .copied();
        let leader = match leader_answer {
            Some((addr, s)) => Some(LeaderRef {
                id: s.node_id,
                address: normalize_address(addr),
            }),
            None => answers
                .iter()
                .filter(|(_, s)| s.leader_id.is_some())
                .max_by_key(|(_, s)| s.term)
                .map(|(_, s)| LeaderRef {
                    id: s.leader_id.unwrap_or_default(),
                    address: normalize_address(&s.leader_addr),
                }),
        };
        // Membership as the leader (else any answering member) sees it.
        let roster: Vec<pb::Member> = leader_answer
            .or_else(|| answers.iter().max_by_key(|(_, s)| s.term).copied())
            .map(|(_, s)| s.members.clone())
            .unwrap_or_default();

        let mut members: Vec<MemberView> = Vec::new();
        for r in reports {
            let listed = roster
                .iter()
                .find(|m| normalize_address(&m.address) == r.address);
            let status = r.status.as_ref().map_err(|e| e.to_string());
            members.push(member_view(
                &r.address,
                status,
                listed,
                leader_answer.map(|(_, s)| s),
            ));
        }
        // Listed members nobody could ask (should not happen: status_all
        // asks every listed member) still appear.
        for m in &roster {
            let a = normalize_address(&m.address);
            if !members.iter().any(|v| v.address == a) {
                let status = Err("not asked".to_string());
                members.push(member_view(
                    &a,
                    status,
                    Some(m),
                    leader_answer.map(|(_, s)| s),
                ));
            }
        }
        members.sort_by(|a, b| {
            (a.id.is_none(), a.id, &a.address).cmp(&(b.id.is_none(), b.id, &b.address))
        });
        GroupStatus {
            group_id,
            leader,
            term,
            members,
        }
    }

    /// Number of members that answered.
    pub fn reachable(&self) -> usize {
        self.members.iter().filter(|m| m.reachable).count()
    }
}

fn member_view(
    address: &str,
    status: Result<&pb::StatusResponse, String>,
    listed: Option<&pb::Member>,
    leader: Option<&pb::StatusResponse>,
) -> MemberView {
    let matched_index = listed.and_then(|m| m.matched_index);
    let lag = match (leader, matched_index) {
        (Some(l), Some(m)) => Some(l.last_log_index.saturating_sub(m)),
        _ => None,
    };
    match status {
        Ok(s) => MemberView {
            id: Some(s.node_id),
            address: address.to_string(),
            role: listed
                .map(|m| m.role.clone())
                .unwrap_or_else(|| own_role(&s.state)),
            reachable: true,
            state: s.state.clone(),
            term: Some(s.term),
            commit_index: Some(s.commit_index),
            last_applied: Some(s.last_applied),
            last_log_index: Some(s.last_log_index),
            snapshot_index: Some(s.snapshot_index),
            matched_index,
            lag,
            error: None,
        },
        Err(e) => MemberView {
            id: listed.map(|m| m.id),
            address: address.to_string(),
            role: listed
                .map(|m| m.role.clone())
                .unwrap_or_else(|| "unknown".into()),
            reachable: false,
            state: "unreachable".into(),
            term: None,
            commit_index: None,
            last_applied: None,
            last_log_index: None,
            snapshot_index: None,
            matched_index,
            lag,
            error: Some(e),
        },
    }
}

/// A member's role from its own state when no membership view is at hand.
fn own_role(state: &str) -> String {
    match state {
        "leader" | "learner" => state.to_string(),
        _ => "follower".to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ClientError;

    pub(crate) fn answer(
        id: u64,
        state: &str,
        last_log: u64,
        members: &[(u64, &str, &str, Option<u64>)],
    ) -> pb::StatusResponse {
        pb::StatusResponse {
            node_id: id,
            group_id: 1,
            address: format!("127.0.0.1:740{id}"),
            state: state.into(),
            term: 3,
            leader_id: Some(1),
            leader_addr: "127.0.0.1:7401".into(),
            commit_index: last_log,
            last_applied: last_log,
            last_log_index: last_log,
            members: members
                .iter()
                .map(|(id, addr, role, matched)| pb::Member {
                    id: *id,
                    address: addr.to_string(),
                    role: role.to_string(),
                    matched_index: *matched,
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn three_member_reports() -> Vec<MemberReport> {
        let roster = [
            (1, "127.0.0.1:7401", "leader", Some(100)),
            (2, "127.0.0.1:7402", "follower", Some(90)),
            (3, "127.0.0.1:7403", "follower", Some(40)),
        ];
        vec![
            MemberReport {
                address: "127.0.0.1:7401".into(),
                status: Ok(answer(1, "leader", 100, &roster)),
            },
            MemberReport {
                address: "127.0.0.1:7402".into(),
                status: Ok(answer(2, "follower", 90, &[])),
            },
            MemberReport {
                address: "127.0.0.1:7403".into(),
                status: Err(ClientError::Unavailable {
                    op: "status",
                    attempts: 1,
                    elapsed: std::time::Duration::from_secs(1),
                    last_address: "127.0.0.1:7403".into(),
                    last_error: "connection refused".into(),
                }),
            },
        ]
    }

    #[test]
    fn roles_and_lag_come_from_the_leader_and_down_members_show() {
        let g = GroupStatus::from_reports(&three_member_reports());
        assert_eq!(
            g.leader,
            Some(LeaderRef {
                id: 1,
                address: "127.0.0.1:7401".into()
            })
        );
        assert_eq!(g.reachable(), 2);
        let roles: Vec<_> = g
            .members
            .iter()
            .map(|m| (m.id, m.role.as_str(), m.lag))
            .collect();
        assert_eq!(
            roles,
            vec![
                (Some(1), "leader", Some(0)),
                (Some(2), "follower", Some(10)),
                (Some(3), "follower", Some(60))
            ]
        );
        assert_eq!(g.members[2].state, "unreachable");
        assert!(g.members[2]
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused"));
    }

    #[test]
    fn without_a_leader_answer_roles_fall_back_to_own_state() {
        let reports = vec![MemberReport {
            address: "127.0.0.1:7402".into(),
            status: Ok(answer(2, "candidate", 5, &[])),
        }];
        let g = GroupStatus::from_reports(&reports);
        assert_eq!(g.members[0].role, "follower");
        assert_eq!(g.members[0].lag, None);
        assert_eq!(g.leader.as_ref().map(|l| l.id), Some(1));
    }
}
