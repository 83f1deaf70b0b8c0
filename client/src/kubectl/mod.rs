//! `kubectl shardline status NAME`: a `ShardedCluster`'s status next to the
//! controller's live view of the cluster.
//!
//! The `shardline` binary is also the kubectl plugin: installed (linked or
//! copied) as `kubectl-shardline` on `PATH`, kubectl runs it for
//! `kubectl shardline ...`, and [`invoked_as_plugin`] sees that name in
//! `argv[0]` and parses [`PluginCli`] instead of the usual command line.
//! The same command is `shardline kube status NAME` without the link.
//!
//! `status` reads the resource with the kubeconfig (namespace: `-n`, else the
//! context's, else `default`), then asks the controller for `ClusterStatus`:
//! at `--controller ADDR` if given, else through a port-forward to the
//! controller pods (`<name>-ctrl-0`, `-1`, ... on port 7400). A missing live
//! view is reported beside the resource's status, not as an error; a
//! resource that cannot be read is an error (exit code 3, or 4 when the API
//! server is unreachable). Every network step has a deadline (`--timeout`).
//!
//! # Layout
//! - [`error`]: [`KubectlError`] (reading the resource), [`LiveError`] (the
//!   live view).
//! - [`resource`]: the Kubernetes client from the kubeconfig flags, the
//!   `GET` of the resource, and its status fields.
//! - [`live`]: the `ClusterStatus` answer as [`live::LiveView`], from an
//!   address or the controller pods.
//! - [`portforward`]: a tonic channel over the API server's port-forward.
//! - [`render`]: the human text and the JSON document.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cli::{OutputFormat, Report};

pub mod error;
pub mod live;
pub mod portforward;
pub mod render;
pub mod resource;

pub use error::{KubectlError, LiveError};

/// The file name under which kubectl finds the plugin.
pub const PLUGIN_NAME: &str = "kubectl-shardline";

/// Whether the binary was started as `kubectl-shardline` (`argv[0]`'s file
/// name, with or without `.exe`).
pub fn invoked_as_plugin(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .and_then(OsStr::to_str)
        .map(|n| n.strip_suffix(".exe").unwrap_or(n))
        == Some(PLUGIN_NAME)
}

/// The command line of `kubectl shardline`.
#[derive(Debug, Parser)]
#[command(
    name = PLUGIN_NAME,
    bin_name = "kubectl shardline",
    version,
    about = "Shardline's kubectl plugin: ShardedCluster status with the controller's live view",
    propagate_version = true
)]
pub struct PluginCli {
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Deadline of each network step: reading the resource, reaching the
    /// controller (e.g. 500ms, 10s).
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,

    #[command(subcommand)]
    pub command: KubeCommand,
}

/// `shardline kube ...`: the plugin's commands without the kubectl link.
#[derive(Debug, Args)]
pub struct KubeArgs {
    #[command(subcommand)]
    pub command: KubeCommand,
}

#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// A ShardedCluster's status together with the controller's live view.
    Status(StatusArgs),
}

/// `status NAME` and kubectl's connection flags.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Name of the ShardedCluster.
    pub name: String,

    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,

    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,

    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Ask the controller at this address (`host:port`) instead of
    /// port-forwarding to its pods.
    #[arg(long, value_name = "ADDR")]
    pub controller: Option<String>,
}

impl StatusArgs {
    fn target(&self) -> resource::KubeTarget {
        resource::KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Runs one plugin command.
pub async fn run(command: KubeCommand, timeout: Duration) -> anyhow::Result<Report> {
    match command {
        KubeCommand::Status(args) => status(&args, timeout).await,
    }
}

/// `status NAME`: the resource (an error if it cannot be read), then the
/// live view (its absence explained in the report).
pub async fn status(args: &StatusArgs, timeout: Duration) -> anyhow::Result<Report> {
    let conn = resource::connect(&args.target(), timeout).await?;
    let cluster = resource::get(&conn, &args.name, timeout).await?;
    let live = match &args.controller {
        Some(address) => live::direct(address, timeout).await,
        None => live::via_port_forward(&conn, &cluster, timeout).await,
    };
    if let Err(e) = &live {
        tracing::debug!(error = %e, "no live view");
    }
    Ok(render::report(&cluster, live.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_is_recognised_by_file_name() {
        for argv0 in [
            "kubectl-shardline",
            "/home/me/.local/bin/kubectl-shardline",
            "C:\\bin\\kubectl-shardline.exe",
            "./kubectl-shardline",
        ] {
            let argv0 = argv0.replace('\\', std::path::MAIN_SEPARATOR_STR);
            assert!(invoked_as_plugin(OsStr::new(&argv0)), "{argv0}");
        }
        for argv0 in [
            "shardline",
            "/usr/bin/shardline",
            "kubectl-shardline-old",
            "",
        ] {
            assert!(!invoked_as_plugin(OsStr::new(argv0)), "{argv0}");
        }
    }

    #[test]
    fn plugin_command_line_parses_kubectl_style_flags() {
        let cli = PluginCli::try_parse_from([
            "kubectl-shardline",
            "status",
            "kv",
            "-n",
            "db",
            "--context",
            "prod",
            "--kubeconfig",
            "/tmp/kc",
            "-o",
            "json",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.timeout, Duration::from_secs(2));
        let KubeCommand::Status(a) = cli.command;
        assert_eq!(a.name, "kv");
        assert_eq!(a.namespace.as_deref(), Some("db"));
        assert_eq!(a.context.as_deref(), Some("prod"));
        assert_eq!(a.kubeconfig.as_deref(), Some(Path::new("/tmp/kc")));
        assert_eq!(a.controller, None);

        let cli = PluginCli::try_parse_from([
            "kubectl-shardline",
            "--output=json",
            "status",
            "--namespace=db",
            "kv",
            "--controller",
            "127.0.0.1:7301",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        let KubeCommand::Status(a) = cli.command;
        assert_eq!(a.namespace.as_deref(), Some("db"));
        assert_eq!(a.controller.as_deref(), Some("127.0.0.1:7301"));

        assert!(
            PluginCli::try_parse_from(["kubectl-shardline", "status"]).is_err(),
            "NAME"
        );
        assert!(
            PluginCli::try_parse_from(["kubectl-shardline", "status", "kv", "-o", "yaml"]).is_err()
        );
    }
}
