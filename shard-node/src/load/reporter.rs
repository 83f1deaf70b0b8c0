//! The load reporter: while this member leads its group and `--controller`
//! is set, every `--load-report-interval` it asks the controller for the
//! latest config, installs the ranges the config gives this group into the
//! [`LoadTracker`], and sends `ReportLoad` with each range's ops/s, stored
//! keys (see `keys`) and sampled routing keys.
//!
//! Every call has a deadline (`call_timeout`); a failed call is retried a
//! bounded number of times with doubling delays, then the round is given up
//! and the next interval tries again. A member that stops leading forgets
//! its ranges, so followers count nothing. Each round is counted in the
//! `shardline_load_reports` metric by result. The task stops when the
//! [`Reporter`] guard is dropped.

use openraft::async_runtime::watch::WatchReceiver;
use std::future::Future;
use std::time::Duration;

use openraft::ServerState;
use shardline_proto::pb::{self, controller_client::ControllerClient};
use shardline_proto::shardmap::{Config, ShardMapError};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use super::{keys, LoadTracker};
use crate::metrics::Metrics;
use crate::store::{KvReader, StoreError};
use crate::types::Raft;

/// Attempts of one call within a round (the first try included).
const ATTEMPTS: u32 = 3;
/// Delay before the first retry; doubles per retry, capped at [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// What the reporter needs to know.
#[derive(Debug, Clone)]
pub struct ReporterSettings {
    /// Controller members' gRPC addresses (`host:port` or a URL); any
    /// member answers.
    pub controllers: Vec<String>,
    pub interval: Duration,
    /// Deadline of each call to the controller.
    pub call_timeout: Duration,
    pub group_id: u64,
    pub node_id: u64,
}

/// Why a report round failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("bad controller address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("{call} to the controller failed: {source}")]
    Rpc {
        call: &'static str,
        source: Box<tonic::Status>,
    },
    #[error("{call} to the controller timed out after {after:?}")]
    Timeout { call: &'static str, after: Duration },
    #[error("the controller answered a malformed config: {0}")]
    Config(#[from] ShardMapError),
    #[error("counting keys: {0}")]
    Store(#[from] StoreError),
    #[error("the key counting task failed: {0}")]
    Counting(String),
}

impl ReportError {
    /// A stable snake-case name, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ReportError::BadAddress { .. } => "bad_address",
            ReportError::Rpc { .. } => "rpc",
            ReportError::Timeout { .. } => "timeout",
            ReportError::Config(_) => "bad_config",
            ReportError::Store(_) => "store",
            ReportError::Counting(_) => "counting",
        }
    }
}

/// Owns the reporter task; dropping it stops the task.
pub struct Reporter {
    task: JoinHandle<()>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A lazily connecting channel balanced over the controller's members.
fn channel(s: &ReporterSettings) -> Result<Channel, ReportError> {
    let mut endpoints = Vec::with_capacity(s.controllers.len());
    for address in &s.controllers {
        let url = if address.contains("://") {
            address.clone()
        } else {
            format!("http://{address}")
        };
        let bad = |e: tonic::transport::Error| ReportError::BadAddress {
            address: address.clone(),
            reason: e.to_string(),
        };
        endpoints.push(
            Endpoint::from_shared(url)
                .map_err(bad)?
                .connect_timeout(s.call_timeout)
                .timeout(s.call_timeout),
        );
    }
    Ok(Channel::balance_list(endpoints.into_iter()))
}

impl Reporter {
    /// Starts the reporter. Fails only on a malformed controller address.
    pub fn spawn(
        settings: ReporterSettings,
        tracker: LoadTracker,
        reader: KvReader,
        raft: Raft,
        metrics: Metrics,
    ) -> Result<Self, ReportError> {
        let client = ControllerClient::new(channel(&settings)?);
        let task = tokio::spawn(run(settings, client, tracker, reader, raft, metrics));
        Ok(Reporter { task })
    }
}

async fn run(
    s: ReporterSettings,
    client: ControllerClient<Channel>,
    tracker: LoadTracker,
    reader: KvReader,
    raft: Raft,
    metrics: Metrics,
) {
    info!(controllers = ?s.controllers, interval = ?s.interval, "load reporter started");
    let mut ticker = tokio::time::interval(s.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    // Failures since the last report that got through: the first one is a
    // warning, repeats (a controller still starting, or down) are debug
    // lines, and the recovery says how many rounds were lost.
    let mut failing: u64 = 0;
    loop {
        ticker.tick().await;
        let leads = {
            let m = raft.metrics().borrow_watched().clone();
            m.state == ServerState::Leader && m.current_leader == Some(s.node_id)
        };
        if !leads {
            if leading {
                debug!("no longer leading; load counters dropped");
                tracker.clear();
            }
            leading = false;
            continue;
        }
        leading = true;
        let outcome = round(&s, &client, &tracker, &reader).await;
        if outcome.is_ok() && failing > 0 {
            info!(
                group_id = s.group_id,
                failed_rounds = failing,
                "load reports reach the controller again"
            );
            failing = 0;
        }
        match outcome {
            Ok(0) => {
                metrics.observe_load_report("no_ranges");
                debug!(
                    group_id = s.group_id,
                    "the latest config gives this group no ranges"
                );
            }
            Ok(ranges) => {
                metrics.observe_load_report("ok");
                debug!(group_id = s.group_id, ranges, "load reported");
            }
            Err(e) => {
                metrics.observe_load_report(e.kind());
                failing += 1;
                if failing == 1 {
                    warn!(group_id = s.group_id, kind = e.kind(), error = %e, "load report failed; retrying every interval");
                } else {
                    debug!(group_id = s.group_id, kind = e.kind(), error = %e, failed_rounds = failing, "load report failed again");
                }
            }
        }
    }
}

/// One round: refresh ranges, then report them. Returns the ranges reported.
async fn round(
    s: &ReporterSettings,
    client: &ControllerClient<Channel>,
    tracker: &LoadTracker,
    reader: &KvReader,
) -> Result<usize, ReportError> {
    let latest = call(s, "Query", || {
        let mut c = client.clone();
        async move { c.query(pb::QueryRequest { num: None }).await }
    })
    .await?;
    let config = Config::try_from(latest.config.unwrap_or_default())?;
    let owned: Vec<_> = config
        .ranges
        .iter()
        .filter(|r| r.gid == s.group_id)
        .cloned()
        .collect();
    tracker.install(owned);
    let readings = tracker.readings();
    if readings.is_empty() {
        return Ok(0);
    }
    let counted = {
        let reader = reader.clone();
        let ranges: Vec<_> = readings.iter().map(|r| r.range.clone()).collect();
        tokio::task::spawn_blocking(move || keys::per_range(&reader, &ranges))
            .await
            .map_err(|e| ReportError::Counting(e.to_string()))??
    };
    let ranges: Vec<pb::RangeLoad> = readings
        .into_iter()
        .zip(counted)
        .map(|(r, size)| pb::RangeLoad {
            range_id: r.range.id,
            epoch: r.range.epoch,
            ops_per_sec: r.ops_per_sec,
            bytes: size.bytes,
            keys: size.keys,
            sample_keys: r.sample_keys,
        })
        .collect();
    let n = ranges.len();
    let request = pb::ReportLoadRequest {
        gid: s.group_id,
        ranges,
    };
    call(s, "ReportLoad", || {
        let mut c = client.clone();
        let request = request.clone();
        async move { c.report_load(request).await }
    })
    .await?;
    Ok(n)
}

/// Runs `make()` with a deadline, retrying failures up to [`ATTEMPTS`]
/// times with doubling delays.
async fn call<T, F, Fut>(
    s: &ReporterSettings,
    name: &'static str,
    mut make: F,
) -> Result<T, ReportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 1;
    loop {
        let err = match tokio::time::timeout(s.call_timeout, make()).await {
            Ok(Ok(resp)) => return Ok(resp.into_inner()),
            Ok(Err(status)) => ReportError::Rpc {
                call: name,
                source: Box::new(status),
            },
            Err(_) => ReportError::Timeout {
                call: name,
                after: s.call_timeout,
            },
        };
        if attempt >= ATTEMPTS {
            return Err(err);
        }
        debug!(call = name, attempt, error = %err, retry_in = ?delay, "controller call failed");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(controllers: &[&str]) -> ReporterSettings {
        ReporterSettings {
            controllers: controllers.iter().map(|s| s.to_string()).collect(),
            interval: Duration::from_secs(1),
            call_timeout: Duration::from_millis(200),
            group_id: 1,
            node_id: 1,
        }
    }

    #[tokio::test]
    async fn calls_are_retried_a_bounded_number_of_times() {
        let s = settings(&["127.0.0.1:1"]);
        let mut tries = 0;
        let started = tokio::time::Instant::now();
        let res: Result<(), _> = call(&s, "Query", || {
            tries += 1;
            async { Err(tonic::Status::unavailable("down")) }
        })
        .await;
        assert_eq!(tries, ATTEMPTS);
        assert_eq!(res.unwrap_err().kind(), "rpc");
        // Waited 200 ms + 400 ms between the three tries.
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[tokio::test]
    async fn a_hung_call_times_out() {
        let s = settings(&["127.0.0.1:1"]);
        let res: Result<(), _> = call(&s, "ReportLoad", || async {
            std::future::pending::<Result<tonic::Response<()>, tonic::Status>>().await
        })
        .await;
        assert_eq!(res.unwrap_err().kind(), "timeout");
    }

    #[tokio::test]
    async fn controller_addresses_are_checked() {
        assert!(channel(&settings(&["127.0.0.1:7301", "http://c:1"])).is_ok());
        assert_eq!(
            channel(&settings(&["bad address"])).unwrap_err().kind(),
            "bad_address"
        );
    }
}
