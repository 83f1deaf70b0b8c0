//! Multi-process test harness: real `shard-node` processes on loopback.
//!
//! # Layout
//! - [`binaries`]: builds (once per test process) and locates the workspace
//!   binaries, so `cargo test --workspace` needs no separate build step.
//! - [`TestGroup`]: a replica group of child processes with its own temporary
//!   data directory; members can be killed (`SIGKILL`), stopped (`SIGTERM`)
//!   and restarted on the same directory and ports. When a test panics, the
//!   tail of every member's log is printed.
//! - [`wait_until`]: polls a condition with a deadline (no fixed sleeps).
//! - [`controller`]: [`controller::TestController`], the same for the
//!   `shard-controller` members of the controller group.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use shardline_client::{AdminClient, ClientOptions, KvClient};
use shardline_proto::pb;

pub mod controller;

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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

pub struct Member {
    pub id: u64,
    pub addr: String,
    pub http: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Set for members started with `--join` instead of `--peers`.
    join: Option<String>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct TestGroup {
    dir: tempfile::TempDir,
    pub members: Vec<Member>,
    peers: String,
    extra: Vec<String>,
}

impl TestGroup {
    /// Starts an `n`-member group; `extra` flags go to every member.
    pub fn start(n: u64, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let members: Vec<Member> = (1..=n)
            .map(|id| Member {
                id,
                addr: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
                join: None,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut g = TestGroup {
            dir,
            members,
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=n {
            g.spawn(id)?;
        }
        Ok(g)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn member(&self, id: u64) -> &Member {
        self.members.iter().find(|m| m.id == id).expect("member id")
    }

    fn member_mut(&mut self, id: u64) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.id == id)
            .expect("member id")
    }

    /// Starts a new member that joins the running group through `via`.
    pub fn add_joining_member(&mut self, via: &str) -> Result<u64> {
        let id = self.members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        self.members.push(Member {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            child: None,
            join: Some(via.to_string()),
        });
        self.spawn(id)?;
        Ok(id)
    }

    fn spawn(&mut self, id: u64) -> Result<()> {
        let (peers, extra) = (self.peers.clone(), self.extra.clone());
        let m = self.member_mut(id);
        // A joining member names the member it joins through instead of peers.
        let bootstrap = match &m.join {
            Some(via) => vec!["--join".to_string(), via.clone()],
            None => vec!["--peers".to_string(), peers],
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let child = Command::new(&binaries().shard_node)
            .args([
                "--node-id",
                &id.to_string(),
                "--group-id",
                "1",
                "--listen",
                &m.addr,
                "--http-listen",
                &m.http,
            ])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(&bootstrap)
            .args(&extra)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("spawn shard-node")?;
        m.child = Some(child);
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.addr.clone()).collect()
    }

    pub fn addr(&self, id: u64) -> String {
        self.member(id).addr.clone()
    }

    /// `kill -9` one member.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.member_mut(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM one member and wait for it to exit; returns its exit success.
    pub fn terminate(&mut self, id: u64, timeout: Duration) -> Result<bool> {
        let Some(mut c) = self.member_mut(id).child.take() else {
            bail!("member {id} is not running")
        };
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st.success());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!("member {id} did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts a stopped member on its data directory and ports.
    pub fn restart(&mut self, id: u64) -> Result<()> {
        if self.member(id).is_running() {
            bail!("member {id} is still running");
        }
        self.spawn(id)
    }

    pub async fn status(&self, id: u64) -> Result<pb::StatusResponse> {
        let admin = AdminClient::connect(vec![self.addr(id)], quick_options()).await?;
        Ok(admin.status_of(&self.addr(id)).await?)
    }

    /// Waits until every running member reports the same leader; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64> {
        let running: Vec<u64> = self
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.id)
            .collect();
        wait_until("a leader all running members agree on", timeout, || {
            let running = running.clone();
            async move {
                let mut leader = None;
                for id in running {
                    let st = self.status(id).await.ok()?;
                    let l = st.leader_id?;
                    if leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                // The leader must itself be running and claim leadership.
                let l = leader?;
                let st = self.status(l).await.ok()?;
                (st.state == "leader").then_some(l)
            }
        })
        .await
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

    fn dump_logs(&self) {
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- member {} ({}) log tail -----", m.id, m.addr);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Client options for status polling: one short attempt.
pub fn quick_options() -> ClientOptions {
    ClientOptions::default()
        .with_call_timeout(Duration::from_millis(500))
        .with_total_timeout(Duration::from_millis(800))
        .with_retry(shardline_client::RetryPolicy::no_retry())
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Unwraps a typed error detail from a client error, for assertions.
pub fn status_kind(status: &tonic::Status) -> Result<pb::error_detail::Kind> {
    shardline_proto::status::detail_of(status)
        .ok_or_else(|| anyhow!("status {status:?} carries no detail"))
}
