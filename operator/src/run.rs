//! Wiring of the `shardline-operator` binary: flags, the Kubernetes client,
//! start-up checks, the HTTP endpoint, leader election and the Controller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cluster_api::grpc::GrpcClusterApi;
use crate::crd::ShardedCluster;
use crate::error::{Error, Result};
use crate::http::{self, HttpState};
use crate::leader::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::reconcile::{self, Context, Requeue};

/// Command line of `shardline-operator`: no subcommand runs the operator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "shardline-operator",
    version,
    about = "Kubernetes operator for Shardline clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: Args,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the objects the operator creates for the ShardedClusters in a
    /// YAML file, without contacting a cluster.
    Render {
        /// YAML file with one or more ShardedCluster documents.
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
        /// Namespace for clusters that name none.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

/// Flags of the operator itself.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "SHARDLINE_OPERATOR_HTTP_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub http_listen: SocketAddr,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "SHARDLINE_OPERATOR_LEASE_NAME",
        default_value = "shardline-operator"
    )]
    pub lease_name: String,

    /// Namespace of the Lease; defaults to the client's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Identity in the Lease; defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds the Lease stays valid without renewal (at least 3: it is
    /// renewed a third of this before it expires; shorter would renew in a
    /// loop against the API server).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_duration_secs: u64,

    /// Deadline of every call to a cluster's controller.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub controller_timeout: Duration,

    /// Deadline of a Raft membership change or leadership transfer
    /// (`AddMember` returns once the new member has caught up; a longer
    /// catch-up is finished by a later reconcile).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub membership_timeout: Duration,

    /// Reconcile without a Lease (only for a single replica, e.g. local runs).
    #[arg(long)]
    pub no_leader_election: bool,

    /// At start-up, server-side apply this version's ShardedCluster CRD over
    /// the installed one (Helm does not upgrade CRDs).
    #[arg(long, env = "SHARDLINE_OPERATOR_APPLY_CRD")]
    pub apply_crd: bool,
}

/// A clonable future that resolves once `tx` sends `true`.
pub fn shutdown_signal(
    rx: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let fut = async move {
        let mut rx = rx;
        let _ = rx.wait_for(|stop| *stop).await;
    };
    futures::FutureExt::shared(Box::pin(fut))
}

/// Runs the operator until `stop` turns true.
pub async fn run(args: Args, stop: watch::Receiver<bool>) -> Result<()> {
    let client = Client::try_default()
        .await
        .map_err(Error::kube("create client"))?;
    let metrics = Metrics::default();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind(args.http_listen)
        .await
        .map_err(Error::Http)?;
    info!(addr = %args.http_listen, "serving /metrics, /healthz and /readyz");
    let http_task = tokio::spawn(http::serve(
        listener,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        shutdown_signal(stop.clone()),
    ));

    if args.apply_crd {
        match crate::crd::apply_crd(&client).await {
            Ok(()) => info!("applied the ShardedCluster CRD"),
            Err(e) => {
                warn!(error = %e, "could not apply the ShardedCluster CRD; using the installed one")
            }
        }
    }
    Api::<ShardedCluster>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
        .map_err(Error::kube("list ShardedClusters (is the CRD installed?)"))?;
    ready.store(true, Ordering::Relaxed);

    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("shardline-operator-{}", std::process::id()))
    });
    let reporter = Reporter {
        controller: "shardline-operator".into(),
        instance: Some(identity.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        cluster_api: Arc::new(
            GrpcClusterApi::new(args.controller_timeout)
                .with_membership_timeout(args.membership_timeout),
        ),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        requeue: Requeue::default(),
        move_failures: Default::default(),
    });
    let work = || reconcile::run_controller(ctx, shutdown_signal(stop.clone()));
    let result = if args.no_leader_election {
        work().await;
        Ok(())
    } else {
        let cfg = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
            identity,
            duration_secs: args.lease_duration_secs,
            grace_secs: (args.lease_duration_secs / 3).max(1),
        };
        leader::run_as_leader(client, cfg, metrics, work).await
    };
    http_task.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "shardline-operator",
            "--controller-timeout",
            "2s",
            "--no-leader-election",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.controller_timeout, Duration::from_secs(2));
        assert_eq!(cli.run.membership_timeout, Duration::from_secs(30));
        assert!(cli.run.no_leader_election);
        for short in ["0", "2"] {
            let err = Cli::try_parse_from(["shardline-operator", "--lease-duration-secs", short])
                .unwrap_err()
                .to_string();
            assert!(err.contains("lease-duration-secs"), "{err}");
        }
        let cli = Cli::try_parse_from(["shardline-operator", "render", "-f", "x.yaml"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Render { ref namespace, .. }) if namespace == "default")
        );
    }
}
