//! The `shardline` command line: argument types, dispatch and exit codes.
//!
//! Every command resolves its endpoints (see [`crate::endpoints`]), runs, and
//! returns a [`Report`]: a human text and a JSON document, one of which is
//! printed to stdout according to `--output`. The document shapes are listed
//! in [`output`].
//!
//! # Exit codes
//! | code | meaning |
//! | ---- | ------- |
//! | 0 | success |
//! | 1 | a negative answer, not an error: `get` found no such key, `cas` compared false |
//! | 2 | bad command line (clap's usage errors) |
//! | 3 | the request failed: rejected by the cluster (invalid argument, wrong group, ...) or a local problem (missing `shard-node` binary, unreadable file); `kube status`: the ShardedCluster does not exist or cannot be read |
//! | 4 | the cluster is unavailable: no member reachable or no answer within `--timeout`; `kube status`: the Kubernetes API server is unreachable |
//!
//! An error prints exactly one line, `error: ...`, on stderr, in both output
//! modes.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::endpoints::{self, ResolvedEndpoints};
use crate::error::ClientError;
use crate::options::ClientOptions;

pub mod bench;
pub mod controller_cmd;
mod kv_cmds;
mod leader_cmd;
pub mod output;
pub mod placement;
pub mod playground;
mod status_cmd;

pub use output::Report;

/// Exit code: a negative answer (`get` of a missing key, failed `cas`).
pub const EXIT_NEGATIVE: u8 = 1;
/// Exit code: the request failed (rejected, or a local problem).
pub const EXIT_FAILED: u8 = 3;
/// Exit code: the cluster was unavailable.
pub const EXIT_UNAVAILABLE: u8 = 4;

/// `shardline`: talk to a Shardline cluster, or start one locally.
#[derive(Debug, Parser)]
#[command(name = "shardline", version, about, propagate_version = true)]
pub struct Cli {
    /// Member addresses, comma separated (default: $SHARDLINE_ENDPOINTS, then
    /// a running playground, then 127.0.0.1:7401,7402,7403).
    #[arg(long, global = true, value_name = "ADDR,...")]
    pub endpoints: Option<String>,

    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Total deadline of one request, retries included (e.g. 500ms, 10s).
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    Human,
    /// One JSON document per command, with a stable shape.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a value.
    Put(kv_cmds::PutArgs),
    /// Read a value (exit code 1 if the key does not exist).
    Get(kv_cmds::GetArgs),
    /// Delete a key.
    Delete(kv_cmds::DeleteArgs),
    /// List pairs with START <= key < END in key order.
    Scan(kv_cmds::ScanArgs),
    /// Compare-and-swap (exit code 1 if the comparison fails).
    Cas(kv_cmds::CasArgs),
    /// Show every member of the group: role, term, progress, lag.
    Status,
    /// Hand the group's leadership to voter NODE_ID (before restarting the
    /// member that leads).
    TransferLeader(leader_cmd::TransferLeaderArgs),
    /// Start a local 3-member group and keep it running until Ctrl-C.
    Playground(playground::PlaygroundArgs),
    /// Generate load (YCSB style) and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Compare placement strategies (hash ring, rendezvous) offline.
    Placement(placement::PlacementArgs),
    /// The shard controller: status, join, leave, move, split, query.
    Controller(controller_cmd::ControllerArgs),
    /// Shard-map configs: `config watch` streams them as they are made.
    Config(controller_cmd::ConfigArgs),
    /// Kubernetes: `kube status NAME` shows a ShardedCluster's status with
    /// the controller's live view (also `kubectl shardline status NAME`).
    Kube(crate::kubectl::KubeArgs),
}

/// Entry point of the binary: parses the command line, runs, prints, and
/// returns the exit code. Started as `kubectl-shardline`, it is the kubectl
/// plugin and parses [`crate::kubectl::PluginCli`] instead.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let invoked_as = std::env::args_os().next().unwrap_or_default();
    if crate::kubectl::invoked_as_plugin(&invoked_as) {
        let cli = crate::kubectl::PluginCli::parse();
        init_tracing();
        return execute(cli.output, crate::kubectl::run(cli.command, cli.timeout));
    }
    let cli = Cli::parse();
    init_tracing();
    execute(cli.output, run(cli))
}

/// Runs `command` on a new runtime, prints its report in `format` (or its
/// error as one line) and returns the exit code.
fn execute(
    format: OutputFormat,
    command: impl std::future::Future<Output = anyhow::Result<Report>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("starting the async runtime: {e}")),
    };
    match runtime.block_on(command) {
        Ok(report) => {
            report.print(format);
            ExitCode::from(report.exit_code)
        }
        Err(e) => fail(&e),
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    let ctx = Context {
        endpoints: cli.endpoints.clone(),
        output: cli.output,
        timeout: cli.timeout,
    };
    match cli.command {
        Command::Put(a) => kv_cmds::put(&ctx, a).await,
        Command::Get(a) => kv_cmds::get(&ctx, a).await,
        Command::Delete(a) => kv_cmds::delete(&ctx, a).await,
        Command::Scan(a) => kv_cmds::scan(&ctx, a).await,
        Command::Cas(a) => kv_cmds::cas(&ctx, a).await,
        Command::Status => status_cmd::status(&ctx).await,
        Command::TransferLeader(a) => leader_cmd::transfer_leader(&ctx, a).await,
        Command::Playground(a) => playground::run(&ctx, a).await,
        Command::Bench(a) => bench::run(&ctx, a).await,
        Command::Controller(a) => controller_cmd::controller(&ctx, a).await,
        Command::Config(a) => controller_cmd::config(&ctx, a).await,
        Command::Kube(a) => crate::kubectl::run(a.command, ctx.timeout).await,
        Command::Placement(a) => {
            // Prints its own output; nothing is left to print afterwards.
            placement::run(&a, ctx.output == OutputFormat::Json)?;
            Ok(Report::new("", serde_json::Value::Null))
        }
    }
}

/// What every command needs from the global flags.
#[derive(Debug, Clone)]
pub struct Context {
    pub endpoints: Option<String>,
    pub output: OutputFormat,
    pub timeout: Duration,
}

impl Context {
    /// The endpoints to use, by the precedence in [`crate::endpoints`].
    pub fn resolve_endpoints(&self) -> Result<ResolvedEndpoints, ClientError> {
        endpoints::resolve(self.endpoints.as_deref())
    }

    /// Client options honouring `--timeout`.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::default().with_total_timeout(self.timeout)
    }
}

/// Prints `e` as one line and picks the exit code from its kind.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(e));
    ExitCode::from(exit_code_of(e))
}

/// The exit code for an error: [`EXIT_UNAVAILABLE`] when the cluster (or,
/// for `kube status`, the Kubernetes API server) could not be reached, else
/// [`EXIT_FAILED`].
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if let Some(c) = e.downcast_ref::<ClientError>() {
        if c.is_unavailable() {
            return EXIT_UNAVAILABLE;
        }
    }
    if let Some(k) = e.downcast_ref::<crate::kubectl::KubectlError>() {
        if k.is_unavailable() {
            return EXIT_UNAVAILABLE;
        }
    }
    EXIT_FAILED
}

/// The error and its causes joined on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lets `shardline ... | head` end quietly, like other Unix tools, instead
/// of panicking on a closed stdout (Rust ignores SIGPIPE by default; sockets
/// are unaffected, they write with MSG_NOSIGNAL).
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called first thing in `main`, before any thread exists, and
    // installs the default disposition, not a handler.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // kube's client logs failed requests at ERROR; `kube status` returns
    // those errors and prints them once, as its one `error:` line.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,kube_client=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_parses_globals_anywhere() {
        let cli = Cli::try_parse_from([
            "shardline",
            "get",
            "k",
            "-o",
            "json",
            "--endpoints",
            "a:1,b:2",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.endpoints.as_deref(), Some("a:1,b:2"));
        let cli =
            Cli::try_parse_from(["shardline", "--timeout", "250ms", "put", "k", "v"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_millis(250));
        assert!(
            Cli::try_parse_from(["shardline", "cas", "k", "--new", "v"]).is_err(),
            "expectation required"
        );
        assert!(Cli::try_parse_from([
            "shardline",
            "cas",
            "k",
            "--expect-absent",
            "--new",
            "v",
            "--delete"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["shardline", "cas", "k", "--expected", "a", "--delete"]).is_ok()
        );
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let unavailable = anyhow::Error::new(ClientError::DeadlineExceeded {
            op: "get",
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last_address: "a:1".into(),
            last_error: "refused".into(),
        });
        assert_eq!(exit_code_of(&unavailable), EXIT_UNAVAILABLE);
        let rejected = anyhow::Error::new(ClientError::InvalidArgument {
            field: "key".into(),
            reason: "empty".into(),
        })
        .context("put");
        assert_eq!(exit_code_of(&rejected), EXIT_FAILED);
        assert_eq!(one_line(&rejected), "put: invalid key: empty");
        assert_eq!(one_line(&anyhow::anyhow!("a\nb")), "a b");
        let api_down = anyhow::Error::new(crate::kubectl::KubectlError::Unreachable {
            server: "https://127.0.0.1:6443/".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(exit_code_of(&api_down), EXIT_UNAVAILABLE);
        let missing = anyhow::Error::new(crate::kubectl::KubectlError::NotFound {
            namespace: "db".into(),
            name: "kv".into(),
        });
        assert_eq!(exit_code_of(&missing), EXIT_FAILED);
    }

    #[test]
    fn kube_status_is_a_subcommand_too() {
        let cli = Cli::try_parse_from([
            "shardline",
            "kube",
            "status",
            "kv",
            "-n",
            "db",
            "-o",
            "json",
            "--timeout",
            "3s",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.timeout, Duration::from_secs(3));
        let Command::Kube(k) = cli.command else {
            panic!("not kube: {:?}", cli.command)
        };
        let crate::kubectl::KubeCommand::Status(a) = k.command;
        assert_eq!(
            (a.name.as_str(), a.namespace.as_deref()),
            ("kv", Some("db"))
        );
    }
}
