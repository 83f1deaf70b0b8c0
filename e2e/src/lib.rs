//! Multi-process test harness: real `shard-node` processes on loopback.
//!
//! # Layout
//! - [`binaries`]: builds (once per test process) and locates the workspace
//!   binaries, so `cargo test --workspace` needs no separate build step.
//! - [`processes`]: [`Processes`], the members of one Raft group as child
//!   processes (kill, stop, restart, join, leader, log dumps on panic).
//! - [`TestGroup`]: a shard group of `shard-node` processes.
//! - [`wait_until`]: polls a condition with a deadline (no fixed sleeps).
//! - [`controller`]: [`controller::TestController`], the same for the
//!   `shard-controller` members of the controller group.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use shardline_client::{ClientOptions, KvClient};
use shardline_proto::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod controller;
pub mod processes;

pub use processes::{Member, Processes, Role};

pub struct Binaries {
    pub shard_node: PathBuf,
    pub shardline: PathBuf,
    pub shard_controller: PathBuf,
}

/// The workspace binaries, built on first use with the test's profile.
pub fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("profile dir")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut cmd = Command::new(env!("CARGO"));
        // What `cargo test` sets for the test crate would reach build
        // scripts that watch it (ring's watches CARGO_MANIFEST_DIR) and
        // rebuild them, and everything above them, on every switch between
        // this build and a plain `cargo build`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_MANIFEST_LINKS",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&name.as_ref())
            {
                cmd.env_remove(name.as_ref());
            }
        }
        cmd.current_dir(workspace).args([
            "build",
            "--bins",
            "-p",
            "shard-node",
            "-p",
            "shardline-client",
            "-p",
            "shardline-controller",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        Binaries {
            shard_node: profile_dir.join("shard-node"),
            shardline: profile_dir.join("shardline"),
            shard_controller: profile_dir.join("shard-controller"),
        }
    })
}

/// A port that was free a moment ago on 127.0.0.1, for a member to bind.
///
/// Ports come from below Linux's ephemeral range (32768 and up), in turn
/// from a start that differs between test processes: a port the kernel
/// hands out for port 0 is ephemeral, and an outgoing connection of any
/// test could take it as its local port before the member binds it (the
/// member then exits, and a wait for "all running members" times out).
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = (std::process::id() % 400) * 30;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN)
}

/// Polls `cond` every 50 ms until it yields `Some`, or fails after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole HTTP/1.0 answer (status line, headers, body) of `GET path`
/// on `addr`, within 5 s.
pub async fn http_get(addr: &str, path: &str) -> Result<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        anyhow::Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .context("HTTP GET timed out")?
}

/// The value of the sample `series` (name and labels, as rendered) in a
/// Prometheus text exposition, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A shard group: [`Processes`] of `shard-node` (group 1), plus what only a
/// shard group answers.
pub struct TestGroup {
    processes: Processes,
}

impl std::ops::Deref for TestGroup {
    type Target = Processes;
    fn deref(&self) -> &Processes {
        &self.processes
    }
}

impl std::ops::DerefMut for TestGroup {
    fn deref_mut(&mut self) -> &mut Processes {
        &mut self.processes
    }
}

impl TestGroup {
    /// Starts an `n`-member group; `extra` flags go to every member.
    pub fn start(n: u64, extra: &[&str]) -> Result<Self> {
        let role = Role {
            name: "node",
            binary: binaries().shard_node.clone(),
            args: vec!["--group-id".into(), "1".into()],
        };
        Ok(TestGroup {
            processes: Processes::start(role, n, extra)?,
        })
    }

    /// Waits until member `id` has applied at least `index`.
    pub async fn wait_applied(
        &self,
        id: u64,
        index: u64,
        timeout: Duration,
    ) -> Result<pb::StatusResponse> {
        wait_until(
            &format!("member {id} to apply index {index}"),
            timeout,
            || async move {
                let st = self.status(id).await.ok()?;
                (st.last_applied >= index).then_some(st)
            },
        )
        .await
    }

    pub async fn client(&self) -> Result<KvClient> {
        Ok(KvClient::connect(self.endpoints(), ClientOptions::default()).await?)
    }
}

/// Client options for status polling: one short attempt.
pub fn quick_options() -> ClientOptions {
    ClientOptions::default()
        .with_call_timeout(Duration::from_millis(500))
        .with_total_timeout(Duration::from_millis(800))
        .with_retry(shardline_client::RetryPolicy::no_retry())
}

/// Unwraps a typed error detail from a client error, for assertions.
pub fn status_kind(status: &tonic::Status) -> Result<pb::error_detail::Kind> {
    shardline_proto::status::detail_of(status)
        .ok_or_else(|| anyhow!("status {status:?} carries no detail"))
}
