//! `shardline playground`: a local cluster on loopback for trying Shardline
//! and for multi-process tests.
//!
//! Steps: find the `shard-node` binary, build a [`PlaygroundSpec`], start it
//! under a [`Supervisor`], poll `Admin.Status` (no fixed sleeps) until a
//! leader is elected, write `$SHARDLINE_HOME/playground.json` so other
//! commands find the cluster with no flags, print how to use it, then run
//! until Ctrl-C or SIGTERM and stop every child. A child that dies on its own
//! is reported (its log path included) and the rest keep running, so killing
//! a member by hand to watch a failover works.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use super::output::Report;
use super::Context;
use crate::controller::ControllerClient;
use crate::endpoints::{self, PlaygroundFile, PlaygroundGroup};
use crate::group_status::GroupStatus;
use crate::options::ClientOptions;
use crate::AdminClient;
use shardline_proto::shardmap::Config;

pub mod spec;
pub mod supervisor;

pub use spec::{GroupSpec, PlaygroundSpec, ProcessKind, ProcessSpec, SingleGroup};
pub use supervisor::Supervisor;

/// Name of the shard-node binary.
pub const NODE_BIN: &str = "shard-node";
/// Name of the shard-controller binary.
pub const CONTROLLER_BIN: &str = "shard-controller";

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// Keep data here and reuse it on the next start (default: a temporary
    /// directory removed on exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// gRPC port of the first member; members use consecutive ports, and
    /// HTTP (metrics, health) ports are 100 higher.
    #[arg(long, default_value_t = 7401)]
    pub base_port: u16,
    /// Number of members of the group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub members: u16,
    /// Partitioning mode of a new cluster: hash or range.
    #[arg(long, value_parser = ["hash", "range"])]
    pub partitioning: Option<String>,
    /// The shard-node binary (default: next to this executable, then $PATH).
    #[arg(long, env = "SHARDLINE_NODE_BIN")]
    pub node_bin: Option<PathBuf>,
    /// Members of the shard controller (0: run the group alone). They
    /// listen on the ports 100 below the group's (7301.. by default).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=5))]
    pub controllers: u16,
    /// The shard-controller binary (default: next to this executable, then $PATH).
    #[arg(long, env = "SHARDLINE_CONTROLLER_BIN")]
    pub controller_bin: Option<PathBuf>,
    /// How long to wait for a leader before giving up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub ready_timeout: Duration,
}

pub async fn run(ctx: &Context, a: PlaygroundArgs) -> anyhow::Result<Report> {
    let node_bin = find_node_bin(a.node_bin.as_deref())?;
    let controller_bin = match a.controllers {
        0 => None,
        _ => Some(find_bin(CONTROLLER_BIN, a.controller_bin.as_deref())?),
    };
    let home = endpoints::shardline_home();
    let file_path = endpoints::playground_path(&home);
    if let Some(existing) = endpoints::read_playground_file(&file_path).ok().flatten() {
        if existing.pid != std::process::id() && pid_alive(existing.pid) {
            bail!(
                "a playground is already running (pid {}, endpoints {}); stop it first",
                existing.pid,
                existing.endpoints.join(",")
            );
        }
    }
    // Keep the TempDir alive until the end: dropping it removes the data.
    let (temp, data_dir) = match &a.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (None, std::fs::canonicalize(d)?)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("shardline-playground-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut spec = PlaygroundSpec::single_group(&SingleGroup {
        node_bin: &node_bin,
        data_dir: &data_dir,
        base_port: a.base_port,
        members: a.members,
        partitioning: a.partitioning.as_deref(),
    })
    .map_err(anyhow::Error::msg)?;
    if let Some(bin) = &controller_bin {
        spec.add_controllers(bin, a.controllers, a.base_port, a.partitioning.as_deref())
            .map_err(anyhow::Error::msg)?;
    }

    check_ports_free(&spec)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sup = Supervisor::start(&spec).await?;
    let ready = tokio::select! {
        r = async {
            let leader = wait_ready(&spec, &mut sup, a.ready_timeout).await?;
            let config = register_groups(ctx, &spec, a.ready_timeout).await?;
            Ok::<_, anyhow::Error>((leader, config))
        } => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted before the group was ready")),
        _ = sigterm.recv() => Err(anyhow::anyhow!("terminated before the group was ready")),
    };
    let (leader, config) = match ready {
        Ok(l) => l,
        Err(e) => {
            sup.shutdown(Duration::from_secs(10)).await;
            drop(temp);
            return Err(e);
        }
    };

    let file = playground_file(&spec);
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    std::fs::write(&file_path, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("writing {}", file_path.display()))?;
    print_ready(
        ctx,
        &spec,
        &file,
        &file_path,
        &leader,
        config.as_ref(),
        temp.is_some(),
    );

    loop {
        tokio::select! {
            exit = sup.next_exit() => match exit {
                Some(e) => {
                    eprintln!(
                        "playground: {} exited unexpectedly ({}); log: {}",
                        e.name, supervisor::describe(&e.status), e.log_path.display()
                    );
                    if sup.running() == 0 {
                        remove_file_if_ours(&file_path);
                        bail!("every playground process has exited; logs are in {}", data_dir.join("logs").display());
                    }
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    eprintln!("playground: stopping {} processes...", sup.running());
    let stopped = sup.shutdown(Duration::from_secs(10)).await;
    remove_file_if_ours(&file_path);
    let kept = if temp.is_some() {
        String::new()
    } else {
        format!("; data kept in {}", data_dir.display())
    };
    drop(temp);
    eprintln!(
        "playground: stopped ({} cleanly, {} killed){kept}",
        stopped.terminated, stopped.killed
    );
    Ok(Report::new("", serde_json::Value::Null))
}

/// Polls every group until each has an elected leader that answers as
/// leader, or `timeout` passes, or a child dies. Returns a description of
/// the first group's leader.
async fn wait_ready(
    spec: &PlaygroundSpec,
    sup: &mut Supervisor,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let opts = ClientOptions::default().with_call_timeout(Duration::from_millis(500));
    let mut admins = Vec::new();
    for g in &spec.groups {
        admins.push(
            AdminClient::connect(g.members.iter().map(ToString::to_string), opts.clone()).await?,
        );
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = String::from("no answer yet");
    loop {
        tick.tick().await;
        if let Some(e) = sup.exited_so_far().into_iter().next() {
            let tail = log_tail(&e.log_path, 5);
            bail!(
                "{} exited during startup ({}); log {}:\n{tail}",
                e.name,
                supervisor::describe(&e.status),
                e.log_path.display()
            );
        }
        let mut leaders = Vec::new();
        for admin in &admins {
            let g = GroupStatus::from_reports(&admin.status_all().await);
            let led = g.leader.as_ref().filter(|l| {
                g.members
                    .iter()
                    .any(|m| m.address == l.address && m.reachable && m.state == "leader")
            });
            match led {
                Some(l) => leaders.push(format!("node {} at {}", l.id, l.address)),
                None => {
                    last = format!(
                        "{} of {} members answering, no leader yet",
                        g.reachable(),
                        g.members.len()
                    )
                }
            }
        }
        if leaders.len() == admins.len() {
            return Ok(leaders.join(", "));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no leader elected within {timeout:?} ({last}); logs are in {}",
                spec.data_dir.join("logs").display()
            );
        }
    }
}

fn playground_file(spec: &PlaygroundSpec) -> PlaygroundFile {
    let groups: Vec<PlaygroundGroup> = spec
        .groups
        .iter()
        .map(|g| PlaygroundGroup {
            id: g.id,
            endpoints: g.members.iter().map(ToString::to_string).collect(),
        })
        .collect();
    PlaygroundFile {
        endpoints: groups
            .first()
            .map(|g| g.endpoints.clone())
            .unwrap_or_default(),
        groups,
        http: spec
            .processes
            .iter()
            .map(|p| p.http_addr.to_string())
            .collect(),
        controllers: spec.controllers.iter().map(ToString::to_string).collect(),
        data_dir: spec.data_dir.clone(),
        pid: std::process::id(),
    }
}

/// Registers every group with the controller (when the playground runs
/// one) and returns the resulting config. A group already registered — a
/// playground restarted on its `--data-dir` — is left as it is.
async fn register_groups(
    ctx: &Context,
    spec: &PlaygroundSpec,
    timeout: Duration,
) -> anyhow::Result<Option<Config>> {
    if spec.controllers.is_empty() {
        return Ok(None);
    }
    let endpoints: Vec<String> = spec.controllers.iter().map(ToString::to_string).collect();
    let opts = ctx.client_options().with_total_timeout(timeout);
    let client = ControllerClient::connect(endpoints, opts).await?;
    let latest = client
        .query(None)
        .await
        .context("querying the controller")?;
    let missing: Vec<(u64, Vec<String>)> = spec
        .groups
        .iter()
        .filter(|g| !latest.groups.contains_key(&g.id))
        .map(|g| (g.id, g.members.iter().map(ToString::to_string).collect()))
        .collect();
    if missing.is_empty() {
        return Ok(Some(latest));
    }
    let config = client
        .join(missing)
        .await
        .context("joining the group to the controller")?;
    Ok(Some(config))
}

fn print_ready(
    ctx: &Context,
    spec: &PlaygroundSpec,
    file: &PlaygroundFile,
    path: &Path,
    leader: &str,
    config: Option<&Config>,
    temp: bool,
) {
    let json = json!({
        "endpoints": file.endpoints,
        "http": file.http,
        "data_dir": file.data_dir,
        "playground_file": path,
        "groups": file.groups,
        "controllers": file.controllers,
        "config": config.map(|c| json!({
            "num": c.num,
            "ranges": c.ranges.len(),
            "groups": c.groups.keys().collect::<Vec<_>>(),
        })),
    });
    let mut human = format!(
        "Shardline playground is up: {} processes; group leader {leader}.\n\n",
        spec.processes.len()
    );
    for p in &spec.processes {
        human.push_str(&format!(
            "  {:<10}  grpc {}  http {}  log {}\n",
            p.name,
            p.grpc_addr,
            p.http_addr,
            p.log_path.display()
        ));
    }
    let data = if temp {
        "temporary, removed on exit"
    } else {
        "kept"
    };
    if let Some(c) = config {
        human.push_str(&format!(
            "\nController: {} (config {}: {} ranges over groups {:?}; try `shardline controller status`)",
            file.controllers.join(","),
            c.num,
            c.ranges.len(),
            c.groups.keys().collect::<Vec<_>>(),
        ));
    }
    human.push_str(&format!(
        "\nEndpoints: {}\nData:      {} ({data})\n\nTry, in another terminal:\n  shardline put hello world\n  shardline get hello\n  shardline status\n\nPress Ctrl-C to stop.\n",
        file.endpoints.join(","),
        file.data_dir.display(),
    ));
    Report::new(human, json).print(ctx.output);
}

/// The shard-node binary: `explicit`, else next to the running executable,
/// else on `$PATH`.
pub fn find_node_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    find_bin(NODE_BIN, explicit)
}

/// The binary `name`: `explicit`, else next to the running executable, else
/// on `$PATH`.
pub fn find_bin(name: &str, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("{name} binary {} does not exist", p.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot find the `{name}` binary next to this executable or on $PATH; \
             build it with `cargo build --release` (or pass its path)"
            )
        })
}

/// Fails clearly when a port the playground needs is taken, instead of
/// starting children that die on bind (or, worse, finding someone else's
/// cluster on those ports and calling it ready).
fn check_ports_free(spec: &PlaygroundSpec) -> anyhow::Result<()> {
    for p in &spec.processes {
        for addr in [p.grpc_addr, p.http_addr] {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                bail!("port {} is not free ({e}); is another cluster running? choose other ports with --base-port", addr.port());
            }
        }
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_ok()
}

fn remove_file_if_ours(path: &Path) {
    if let Ok(Some(f)) = endpoints::read_playground_file(path) {
        if f.pid == std::process::id() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_node_bin_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("shard-node");
        std::fs::write(&bin, "").unwrap();
        assert_eq!(find_node_bin(Some(&bin)).unwrap(), bin);
        let e = find_node_bin(Some(&dir.path().join("missing"))).unwrap_err();
        assert!(e.to_string().contains("does not exist"));
    }

    #[test]
    fn playground_file_lists_the_first_group() {
        let spec = PlaygroundSpec::single_group(&SingleGroup {
            node_bin: Path::new("x"),
            data_dir: Path::new("/d"),
            base_port: 8401,
            members: 3,
            partitioning: None,
        })
        .unwrap();
        let f = playground_file(&spec);
        assert_eq!(
            f.endpoints,
            ["127.0.0.1:8401", "127.0.0.1:8402", "127.0.0.1:8403"]
        );
        assert_eq!(f.http[2], "127.0.0.1:8503");
        assert_eq!(f.groups[0].id, 1);
        assert!(pid_alive(std::process::id()));
    }
}
