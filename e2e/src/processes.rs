//! [`Processes`]: the members of one Raft group as child processes on
//! loopback, whatever the binary (`shard-node` for [`crate::TestGroup`],
//! `shard-controller` for [`crate::controller::TestController`]).
//!
//! Each member has its own ports, data directory and log file under one
//! temporary directory. Members can be killed (`SIGKILL`), stopped
//! (`SIGTERM`), restarted on the same directory and ports (optionally with
//! more flags), and added later with `--join`. Their Raft state is read
//! through the `Admin` service both binaries serve. When a test panics, the
//! tail of every member's log is printed; dropping the value kills them all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shardline_client::AdminClient;
use shardline_proto::pb;

use crate::{free_port, quick_options, wait_until};

pub struct Member {
    pub id: u64,
    pub addr: String,
    pub http: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Set for members started with `--join` instead of `--peers`.
    join: Option<String>,
    /// Set for members started with `--seeds` (waiting to be added).
    seeds: Option<String>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// What kind of member a [`Processes`] runs.
pub struct Role {
    /// Names members' directories and logs, and log dumps ("node", "controller").
    pub name: &'static str,
    pub binary: PathBuf,
    /// Flags every member of this role gets before the common ones.
    pub args: Vec<String>,
}

pub struct Processes {
    dir: tempfile::TempDir,
    role: Role,
    pub members: Vec<Member>,
    peers: String,
    /// Flags given to every member.
    extra: Vec<String>,
}

impl Processes {
    /// Starts an `n`-member group of `role`; `extra` flags go to every member.
    pub fn start(role: Role, n: u64, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let members: Vec<Member> = (1..=n)
            .map(|id| new_member(&dir, role.name, id, None))
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut p = Processes {
            dir,
            role,
            members,
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=n {
            p.spawn(id, &[])?;
        }
        Ok(p)
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

    /// Starts member `id` with the role's flags, the common ones, then `more`.
    fn spawn(&mut self, id: u64, more: &[&str]) -> Result<()> {
        let (peers, extra) = (self.peers.clone(), self.extra.clone());
        let (binary, role_args, name) = (
            self.role.binary.clone(),
            self.role.args.clone(),
            self.role.name,
        );
        let m = self.member_mut(id);
        // A joining member names the member it joins through instead of peers.
        let bootstrap = match (&m.join, &m.seeds) {
            (Some(via), _) => vec!["--join".to_string(), via.clone()],
            (None, Some(seeds)) => vec!["--seeds".to_string(), seeds.clone()],
            (None, None) => vec!["--peers".to_string(), peers],
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let child = Command::new(&binary)
            .args(&role_args)
            .args([
                "--node-id",
                &id.to_string(),
                "--listen",
                &m.addr,
                "--http-listen",
                &m.http,
            ])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(&bootstrap)
            .args(&extra)
            .args(more)
            // The binaries' default log filter, whatever the test's RUST_LOG.
            .env_remove("RUST_LOG")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {} member {id}", name))?;
        m.child = Some(child);
        Ok(())
    }

    /// Starts a new member that joins the running group through `via`.
    pub fn add_joining_member(&mut self, via: &str) -> Result<u64> {
        let id = self.members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let member = new_member(&self.dir, self.role.name, id, Some(via.to_string()));
        self.members.push(member);
        self.spawn(id, &[])?;
        Ok(id)
    }

    /// Starts a new member that waits to be added (as the operator starts
    /// pods added after the group was created), knowing `seeds`.
    pub fn add_waiting_member(&mut self, seeds: &str) -> Result<u64> {
        let id = self.members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let mut member = new_member(&self.dir, self.role.name, id, None);
        member.seeds = Some(seeds.to_string());
        self.members.push(member);
        self.spawn(id, &[])?;
        Ok(id)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.addr.clone()).collect()
    }

    pub fn addr(&self, id: u64) -> String {
        self.member(id).addr.clone()
    }

    pub fn running(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.id)
            .collect()
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
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        wait_exit(&mut c, timeout).map(|s| s.success())
    }

    /// Restarts a stopped member on its data directory and ports.
    pub fn restart(&mut self, id: u64) -> Result<()> {
        self.restart_with(id, &[])
    }

    /// Restarts a stopped member with `more` flags after the common ones.
    pub fn restart_with(&mut self, id: u64, more: &[&str]) -> Result<()> {
        if self.member(id).is_running() {
            bail!("member {id} is still running");
        }
        self.spawn(id, more)
    }

    /// `kill -9` member `id`, delete its data directory (a wiped or
    /// re-created volume), and start it again with the same flags.
    pub fn wipe_and_restart(&mut self, id: u64) -> Result<()> {
        self.kill(id);
        std::fs::remove_dir_all(&self.member(id).data_dir)?;
        self.restart(id)
    }

    /// The leader's status, as the running members other than `except`
    /// know the leader (a member without state knows none, so
    /// [`Processes::wait_for_leader`] would not settle while it runs).
    pub async fn leader_status_except(&self, except: u64) -> Option<pb::StatusResponse> {
        for id in self.running().into_iter().filter(|id| *id != except) {
            let Some(leader) = self.status(id).await.ok().and_then(|s| s.leader_id) else {
                continue;
            };
            let st = self.status(leader).await.ok()?;
            return (st.state == "leader").then_some(st);
        }
        None
    }

    /// Waits until member `id` is a voter in the leader's view and holds
    /// `keys` keys; returns its status.
    pub async fn wait_voter_holding(
        &self,
        id: u64,
        keys: u64,
        timeout: Duration,
    ) -> Result<pb::StatusResponse> {
        wait_until(
            &format!("member {id} to be a voter holding {keys} keys"),
            timeout,
            || async move {
                let lst = self.leader_status_except(id).await?;
                let voter = lst
                    .members
                    .iter()
                    .any(|m| m.id == id && m.role != "learner");
                let st = self.status(id).await.ok()?;
                (voter && st.key_count == keys).then_some(st)
            },
        )
        .await
    }

    /// Waits for member `id` to exit on its own (e.g. refusing bad flags).
    pub fn wait_exit(&mut self, id: u64, timeout: Duration) -> Result<ExitStatus> {
        let Some(mut c) = self.member_mut(id).child.take() else {
            bail!("member {id} is not running")
        };
        wait_exit(&mut c, timeout)
    }

    /// Member `id`'s log so far.
    pub fn log_text(&self, id: u64) -> String {
        std::fs::read_to_string(&self.member(id).log).unwrap_or_default()
    }

    /// `Admin.Status` of member `id` (one short attempt).
    pub async fn status(&self, id: u64) -> Result<pb::StatusResponse> {
        let admin = AdminClient::connect(vec![self.addr(id)], quick_options()).await?;
        Ok(admin.status_of(&self.addr(id)).await?)
    }

    /// Waits until every running member reports the same leader, which
    /// itself claims leadership; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64> {
        let running = self.running();
        let what = format!("a {} leader all running members agree on", self.role.name);
        wait_until(&what, timeout, || {
            let running = running.clone();
            async move {
                let mut leader = None;
                for id in running {
                    let l = self.status(id).await.ok()?.leader_id?;
                    if leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                let l = leader?;
                (self.status(l).await.ok()?.state == "leader").then_some(l)
            }
        })
        .await
    }

    /// Passes `result` through, printing every member's log tail first if
    /// it is an error (a scenario that returns `Err` does not panic).
    pub fn logs_on_error<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            self.dump_logs();
        }
        result
    }

    /// Prints the tail of every member's log (done automatically on panic).
    pub fn dump_logs(&self) {
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "----- {} member {} ({}) log tail -----",
                self.role.name, m.id, m.addr
            );
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn new_member(dir: &tempfile::TempDir, name: &str, id: u64, join: Option<String>) -> Member {
    Member {
        id,
        addr: format!("127.0.0.1:{}", free_port()),
        http: format!("127.0.0.1:{}", free_port()),
        data_dir: dir.path().join(format!("{name}-{id}")),
        log: dir.path().join(format!("{name}-{id}.log")),
        child: None,
        join,
        seeds: None,
    }
}

fn wait_exit(c: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = c.try_wait()? {
            return Ok(st);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            bail!("process {} did not exit within {timeout:?}", c.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Processes {
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
