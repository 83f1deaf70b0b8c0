//! Starting a member's Raft group: initialize a new group from `--peers`,
//! join a running one with `--join`, or recover from the data directory.
//!
//! A member without state is not trusted to be new. It may have lost its
//! state (a wiped directory, a re-created volume) while the group still
//! counts it as a voter; answering votes from an empty log could then elect
//! a leader that lacks entries it had acknowledged, and lose committed
//! writes (and an append that finds its log behind what it acknowledged
//! stops openraft's leader). So it takes no Raft traffic ([`RaftGate`])
//! until it knows better:
//! - with `--peers`, it asks the other initial members' `Admin.Status`. If
//!   the group has committed entries, it joins that group: it has itself
//!   removed if the group lists it, then is added back as a learner that
//!   becomes a voter once caught up. If a majority answers and none has
//!   committed anything, the group is new and it initializes it. Otherwise
//!   it asks again, with a backoff, for up to [`DECIDE_ATTEMPTS`] rounds
//!   (a new group needs a majority of its members to start anyway).
//! - with `--join`, it asks the member it joins through whether the group
//!   lists it; if so it has itself removed before it is added.
//! - with `--seeds` (a member that waits to be added, as the operator starts
//!   pods added after the group was created), it asks the leader, found
//!   through a seed, whether it had acknowledged entries; if so it has
//!   itself removed, and whoever adds it back (the operator) does so
//!   afresh. A leader elected after the member went down has no such
//!   record, so then the member is not caught.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use openraft::errors::{InitializeError, RaftError};
use openraft::BasicNode;
use shardline_proto::pb::admin_client::AdminClient;
use shardline_proto::pb::{StatusRequest, StatusResponse};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::args::RaftArgs;
use crate::error::ApiError;
use crate::join::{join_group, leave_group, Retry};
use crate::network::ChannelPool;
use crate::transport::RaftGate;
use crate::{Raft, RaftTypes};

/// Deadline of one `Admin.Status` call to a peer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Rounds of asking the peers before a member without state gives up
/// deciding whether its group exists ([`ask_in_rounds`]: about five
/// minutes).
pub const DECIDE_ATTEMPTS: u32 = 160;

/// How a member's start goes on after [`initialize_or_join`] returned.
pub struct Startup {
    gate: RaftGate,
    /// The background decision of a member without state, if any.
    deciding: Option<JoinHandle<Result<(), ApiError>>>,
}

impl Startup {
    /// The gate for the member's Raft service.
    pub fn gate(&self) -> RaftGate {
        self.gate.clone()
    }

    /// Resolves only if the member could not start or join its group (it
    /// gave up asking its peers, or could not be removed or added), with
    /// the reason; the binary then stops rather than wait gated forever.
    pub async fn failure(&mut self) -> ApiError {
        if let Some(deciding) = self.deciding.as_mut() {
            match deciding.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return e,
                Err(e) => return ApiError::Raft(format!("start-up task failed: {e}")),
            }
            self.deciding = None;
        }
        std::future::pending().await
    }

    /// Waits for `shutdown`, or for the start to fail (which it logs);
    /// returns the failure if that came first. Either way the member then
    /// stops as on a shutdown.
    pub async fn until_stopped(&mut self, shutdown: impl Future<Output = ()>) -> Option<ApiError> {
        let failed = tokio::select! {
            () = shutdown => None,
            e = self.failure() => {
                error!(error = %e, "could not start the group or join it; stopping");
                Some(e)
            }
        };
        if failed.is_none() {
            info!("shutdown requested; handing over leadership and draining in-flight requests");
        }
        failed
    }
}

/// Initializes a new group from `--peers`, or joins one with `--join`. A
/// member that already has state does neither. `address` is this member's
/// advertised address. A member without state decides in the background
/// (its admin service must answer meanwhile) and opens the [`Startup`]'s
/// gate once it is safe to take Raft traffic.
pub async fn initialize_or_join<C: RaftTypes>(
    args: &RaftArgs,
    raft: &Raft<C>,
    pool: &ChannelPool,
    address: &str,
) -> Result<Startup, ApiError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ApiError::Raft(e.to_string()))?;
    if initialized {
        info!("recovered existing state from the data directory");
        return Ok(Startup {
            gate: RaftGate::open(),
            deciding: None,
        });
    }
    let members = args.initial_members()?;
    let gate = RaftGate::closed();
    let start = Start {
        raft: raft.clone(),
        pool: pool.clone(),
        node_id: args.node_id,
        address: address.to_string(),
        gate: gate.clone(),
    };
    let deciding = if !members.is_empty() {
        Some(tokio::spawn(start.decide_with_peers(members)))
    } else if let Some(via) = args.join.clone() {
        // Joining needs this member's servers up (the leader replicates to
        // it), so it runs in the background.
        Some(tokio::spawn(async move { start.join(&via).await }))
    } else if !args.seeds.is_empty() {
        info!("no --peers and no --join: waiting to be added by an existing member");
        let seeds = args.seeds.clone();
        Some(tokio::spawn(async move {
            start.leave_if_acknowledged(&seeds).await
        }))
    } else {
        warn!("no --peers, --join or --seeds: waiting to be added by an existing member");
        // Nothing to ask: a group that adds it replicates to it from the
        // start. Unprotected: a member started this way that the group
        // already counts (added earlier, then its directory wiped); that is
        // what `--seeds` is for.
        gate.allow();
        None
    };
    Ok(Startup { gate, deciding })
}

/// What a member without state needs to start.
struct Start<C: RaftTypes> {
    raft: Raft<C>,
    pool: ChannelPool,
    node_id: u64,
    address: String,
    gate: RaftGate,
}

/// What the other initial members say about the group.
#[derive(Debug, PartialEq)]
enum Found {
    /// It has committed entries; `via` reaches it (its leader if known),
    /// `listed` if its membership names this member.
    Existing { via: String, listed: bool },
    /// A majority answered and none has committed anything.
    New,
    /// Too few answered to tell.
    Unknown { answered: usize },
}

impl<C: RaftTypes> Start<C> {
    async fn decide_with_peers(self, members: BTreeMap<u64, String>) -> Result<(), ApiError> {
        let this = &self;
        let found = ask_in_rounds(|round| {
            let members = &members;
            async move {
                match this.probe(members).await {
                    Found::Unknown { answered } => {
                        if round == 1 || round % 10 == 0 {
                            info!(
                                answered,
                                of = members.len(),
                                "waiting for a majority of --peers to tell whether the group exists"
                            );
                        }
                        None
                    }
                    found => Some(found),
                }
            }
        })
        .await;
        match found {
            Some(Found::New) => self.initialize(members).await,
            Some(Found::Existing { via, listed }) => {
                warn!(%via, listed, "no state in the data directory but the group has committed entries: joining it as a new member");
                self.rejoin(&via, listed).await
            }
            _ => Err(ApiError::Join {
                addr: members.values().cloned().collect::<Vec<_>>().join(","),
                reason: format!(
                    "no majority of --peers answered in {DECIDE_ATTEMPTS} rounds; not starting a group from an empty data directory"
                ),
            }),
        }
    }

    async fn join(self, via: &str) -> Result<(), ApiError> {
        let Some(status) = ask_in_rounds(|_| self.status(via)).await else {
            return Err(ApiError::Join {
                addr: via.to_string(),
                reason: format!("no answer in {DECIDE_ATTEMPTS} rounds"),
            });
        };
        let listed = status.members.iter().any(|m| m.id == self.node_id);
        self.rejoin(via, listed).await
    }

    /// For a member that waits to be added: asks the group's leader (found
    /// through the `seeds`, in rounds) whether this member had acknowledged
    /// entries, and if so has it removed, so that whoever adds it back
    /// replicates to it from the start. A member being added right now is
    /// listed too (openraft counts a short log as caught up at once), but
    /// it has acknowledged nothing yet, so it is left alone.
    async fn leave_if_acknowledged(self, seeds: &[String]) -> Result<(), ApiError> {
        let this = &self;
        let found = ask_in_rounds(|_| async move {
            for seed in seeds {
                if let Some(found) = this.leader_status(seed).await {
                    return Some(found);
                }
            }
            None
        })
        .await;
        let Some((leader, status)) = found else {
            return Err(ApiError::Join {
                addr: seeds.join(","),
                reason: format!("no leader found through the seeds in {DECIDE_ATTEMPTS} rounds"),
            });
        };
        if acknowledged(self.node_id, &status) {
            warn!(via = %leader, "no state in the data directory but the group's leader has entries acknowledged by this member: having it removed, to be added back afresh");
            leave_group(&self.pool, &leader, self.node_id, Retry::default()).await?;
        }
        self.gate.allow();
        Ok(())
    }

    /// The address and status of the leader, as `seed` knows it.
    async fn leader_status(&self, seed: &str) -> Option<(String, StatusResponse)> {
        let status = self.status(seed).await?;
        if status.state == "leader" {
            return Some((seed.to_string(), status));
        }
        if status.leader_addr.is_empty() {
            return None;
        }
        let leader = status.leader_addr;
        let status = self.status(&leader).await?;
        (status.state == "leader").then_some((leader, status))
    }

    /// Joins the group at `via`, removed first if it lists this member.
    async fn rejoin(self, via: &str, listed: bool) -> Result<(), ApiError> {
        if listed {
            leave_group(&self.pool, via, self.node_id, Retry::default()).await?;
        }
        // Removed (or never listed): the group replicates to this member
        // afresh and counts its votes only once it adds it back.
        self.gate.allow();
        join_group(&self.pool, via, self.node_id, &self.address).await
    }

    async fn initialize(self, members: BTreeMap<u64, String>) -> Result<(), ApiError> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        // Every initial member initializes with the same membership; openraft
        // treats the identical initial entry as the same log.
        match self.raft.initialize(nodes).await {
            Ok(()) => info!("initialized new group"),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                info!(reason = %e, "already initialized")
            }
            Err(e) => return Err(ApiError::Raft(e.to_string())),
        }
        self.gate.allow();
        Ok(())
    }

    /// Asks every other initial member for its status (see [`classify`]).
    async fn probe(&self, members: &BTreeMap<u64, String>) -> Found {
        let mut answers = Vec::new();
        for (id, addr) in members {
            if *id != self.node_id {
                if let Some(status) = self.status(addr).await {
                    answers.push((addr.clone(), status));
                }
            }
        }
        classify(self.node_id, members.len(), &answers)
    }

    /// `Admin.Status` of the member at `addr`, or `None` if it does not
    /// answer within [`PROBE_TIMEOUT`].
    async fn status(&self, addr: &str) -> Option<StatusResponse> {
        let channel = self.pool.get(addr).ok()?;
        let mut request = tonic::Request::new(StatusRequest {});
        request.set_timeout(PROBE_TIMEOUT);
        let mut client = AdminClient::new(channel);
        match tokio::time::timeout(PROBE_TIMEOUT, client.status(request)).await {
            Ok(Ok(response)) => Some(response.into_inner()),
            _ => None,
        }
    }
}

/// Calls `ask` (with the round number, from 1) until it answers, waiting
/// between rounds 20 ms doubling to 2 s with jitter, for up to
/// [`DECIDE_ATTEMPTS`] rounds; `None` if it never answered. The first waits
/// are short because the members of a new group start together, and one
/// that asks again only after the others elected a leader has to go
/// through a removal and rejoin.
async fn ask_in_rounds<T, F, Fut>(mut ask: F) -> Option<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(DECIDE_ATTEMPTS as usize - 1)
        .with_jitter()
        .build();
    let mut round = 1;
    loop {
        if let Some(answer) = ask(round).await {
            return Some(answer);
        }
        tokio::time::sleep(delays.next()?).await;
        round += 1;
    }
}

/// Whether the leader's `status` has entries replicated to `node_id`: the
/// member acknowledged them, so if it has no state now, it lost them.
fn acknowledged(node_id: u64, status: &StatusResponse) -> bool {
    status
        .members
        .iter()
        .any(|m| m.id == node_id && m.matched_index.is_some_and(|i| i > 0))
}

/// Decides from the `(address, status)` answers of the other members of a
/// `size`-member group whether it exists.
fn classify(node_id: u64, size: usize, answers: &[(String, StatusResponse)]) -> Found {
    if let Some((addr, status)) = answers.iter().find(|(_, s)| s.commit_index > 0) {
        let via = if status.leader_addr.is_empty() {
            addr.clone()
        } else {
            status.leader_addr.clone()
        };
        let listed = status.members.iter().any(|m| m.id == node_id);
        return Found::Existing { via, listed };
    }
    // This member counts itself.
    let answered = answers.len() + 1;
    if answered * 2 > size {
        Found::New
    } else {
        Found::Unknown { answered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::pb::Member;

    fn status(commit_index: u64, leader_addr: &str, members: &[u64]) -> StatusResponse {
        StatusResponse {
            commit_index,
            leader_addr: leader_addr.into(),
            members: members
                .iter()
                .map(|id| Member {
                    id: *id,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn answer(addr: &str, s: StatusResponse) -> (String, StatusResponse) {
        (addr.to_string(), s)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_is_reported_and_a_finished_one_never_is() {
        let mut failed = Startup {
            gate: RaftGate::closed(),
            deciding: Some(tokio::spawn(async {
                Err(ApiError::Raft("gave up".into()))
            })),
        };
        assert!(matches!(failed.failure().await, ApiError::Raft(m) if m == "gave up"));
        let mut done = Startup {
            gate: RaftGate::open(),
            deciding: Some(tokio::spawn(async { Ok(()) })),
        };
        let waited = tokio::time::timeout(Duration::from_secs(3600), done.failure()).await;
        assert!(waited.is_err(), "a start that succeeded reported a failure");
        let mut recovered = Startup {
            gate: RaftGate::open(),
            deciding: None,
        };
        let waited = tokio::time::timeout(Duration::from_secs(3600), recovered.failure()).await;
        assert!(waited.is_err());
    }

    #[test]
    fn only_a_leader_record_of_replicated_entries_counts_as_acknowledged() {
        let mut s = status(9, "", &[1, 2, 4]);
        assert!(!acknowledged(4, &s), "listed, but nothing replicated");
        s.members[2].matched_index = Some(0);
        assert!(!acknowledged(4, &s));
        s.members[2].matched_index = Some(7);
        assert!(acknowledged(4, &s));
        assert!(!acknowledged(3, &s), "not listed");
    }

    #[test]
    fn a_majority_with_nothing_committed_is_a_new_group() {
        let answers = [answer("b", status(0, "", &[]))];
        assert_eq!(classify(1, 3, &answers), Found::New);
        // A single-member group needs no answer.
        assert_eq!(classify(1, 1, &[]), Found::New);
    }

    #[test]
    fn too_few_answers_cannot_tell() {
        assert_eq!(classify(1, 3, &[]), Found::Unknown { answered: 1 });
        let answers = [answer("b", status(0, "", &[]))];
        assert_eq!(classify(1, 5, &answers), Found::Unknown { answered: 2 });
    }

    #[test]
    fn a_group_that_committed_is_joined_through_its_leader() {
        // One answer that committed is enough, even from a minority.
        let answers = [answer("b", status(7, "c", &[1, 2, 3]))];
        assert_eq!(
            classify(1, 5, &answers),
            Found::Existing {
                via: "c".into(),
                listed: true
            }
        );
        let answers = [
            answer("b", status(0, "", &[])),
            answer("c", status(3, "", &[2, 3])),
        ];
        assert_eq!(
            classify(1, 3, &answers),
            Found::Existing {
                via: "c".into(),
                listed: false
            }
        );
    }
}
