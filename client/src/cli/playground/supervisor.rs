//! Runs the processes of a [`PlaygroundSpec`]: spawns them with their output
//! in log files, reports each exit, and stops them all (SIGTERM, a grace
//! period, then SIGKILL).
//!
//! Each child is owned by a waiter task that reports its exit on a channel;
//! the supervisor keeps only pids and which children are still alive. The
//! children run in their own process group, so a Ctrl-C in the terminal
//! reaches only the playground, which then stops them in order. Should the
//! playground itself die, tokio's `kill_on_drop` still kills the children
//! when their waiter tasks are dropped.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::spec::{PlaygroundSpec, ProcessSpec};

/// A child that exited.
#[derive(Debug)]
pub struct Exit {
    pub name: String,
    pub log_path: PathBuf,
    /// The exit status, or why waiting failed.
    pub status: Result<ExitStatus, String>,
}

/// What a shutdown did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Children that exited after SIGTERM within the grace period.
    pub terminated: usize,
    /// Children that had to be killed.
    pub killed: usize,
}

/// The running children of one playground.
pub struct Supervisor {
    procs: Vec<(ProcessSpec, Pid)>,
    alive: Vec<bool>,
    exits: mpsc::UnboundedReceiver<(usize, Result<ExitStatus, String>)>,
}

impl Supervisor {
    /// Spawns every process of `spec`. If one fails to start, the ones
    /// already started are stopped and the error returned.
    pub async fn start(spec: &PlaygroundSpec) -> anyhow::Result<Supervisor> {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut sup = Supervisor {
            procs: Vec::new(),
            alive: Vec::new(),
            exits,
        };
        for (i, p) in spec.processes.iter().enumerate() {
            match spawn(p) {
                Ok(mut child) => {
                    let pid = child.id().map(|id| Pid::from_raw(id as i32));
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let status = child.wait().await.map_err(|e| e.to_string());
                        let _ = tx.send((i, status));
                    });
                    sup.procs.push((p.clone(), pid.unwrap_or(Pid::from_raw(0))));
                    sup.alive.push(pid.is_some());
                }
                Err(e) => {
                    sup.shutdown(Duration::from_secs(5)).await;
                    return Err(e);
                }
            }
        }
        Ok(sup)
    }

    /// Number of children still running.
    pub fn running(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// Waits for the next child to exit; `None` once none is left.
    pub async fn next_exit(&mut self) -> Option<Exit> {
        if self.running() == 0 {
            return None;
        }
        let (i, status) = self.exits.recv().await?;
        Some(self.record(i, status))
    }

    /// Exits that already happened, without waiting.
    pub fn exited_so_far(&mut self) -> Vec<Exit> {
        let mut out = Vec::new();
        while let Ok((i, status)) = self.exits.try_recv() {
            out.push(self.record(i, status));
        }
        out
    }

    fn record(&mut self, i: usize, status: Result<ExitStatus, String>) -> Exit {
        self.alive[i] = false;
        let p = &self.procs[i].0;
        Exit {
            name: p.name.clone(),
            log_path: p.log_path.clone(),
            status,
        }
    }

    /// Stops every running child: SIGTERM, up to `grace` for them to exit,
    /// then SIGKILL.
    pub async fn shutdown(&mut self, grace: Duration) -> Stopped {
        let mut stopped = Stopped::default();
        self.exited_so_far();
        self.signal_alive(Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 {
            match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                Ok(Some((i, status))) => {
                    self.record(i, status);
                    stopped.terminated += 1;
                }
                Ok(None) | Err(_) => break,
            }
        }
        if self.running() > 0 {
            stopped.killed = self.running();
            self.signal_alive(Signal::SIGKILL);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.running() > 0 {
                match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                    Ok(Some((i, status))) => {
                        self.record(i, status);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        stopped
    }

    fn signal_alive(&self, signal: Signal) {
        for ((p, pid), alive) in self.procs.iter().zip(&self.alive) {
            if *alive {
                if let Err(e) = kill(*pid, signal) {
                    tracing::warn!(process = %p.name, %e, "could not signal {signal}");
                }
            }
        }
    }
}

fn spawn(p: &ProcessSpec) -> anyhow::Result<tokio::process::Child> {
    if let Some(dir) = p.log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log_path)
        .with_context(|| format!("opening log file {}", p.log_path.display()))?;
    let log_err = log.try_clone().context("duplicating the log file handle")?;
    let mut cmd = tokio::process::Command::new(&p.program);
    cmd.args(&p.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .kill_on_drop(true);
    // RUST_LOG, when set, is inherited; otherwise each binary's default
    // filter applies.
    // Plain text in the log files, no terminal colour codes.
    cmd.env("NO_COLOR", "1");
    cmd.spawn()
        .with_context(|| format!("starting {} ({})", p.name, p.program.display()))
}

/// Describes an exit status for people: "exit code 1", "signal 9 (SIGKILL)".
pub fn describe(status: &Result<ExitStatus, String>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(name) => format!("signal {sig} ({name})"),
                Err(_) => format!("signal {sig}"),
            },
            _ => s.to_string(),
        },
        Err(e) => format!("unknown status ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::playground::spec::{ProcessKind, ProcessSpec};

    fn sh(name: &str, script: &str, dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            kind: ProcessKind::ShardNode {
                group_id: 1,
                node_id: 1,
            },
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            grpc_addr: "127.0.0.1:1".parse().unwrap(),
            http_addr: "127.0.0.1:2".parse().unwrap(),
            log_path: dir.join("logs").join(format!("{name}.log")),
        }
    }

    #[tokio::test]
    async fn reports_exits_and_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("stubborn-ready");
        let r = ready.display();
        let spec = PlaygroundSpec {
            data_dir: dir.path().into(),
            processes: vec![
                // Exits once "stubborn" ignores SIGTERM, so the shutdown
                // below cannot race the trap.
                sh(
                    "quits",
                    &format!("while [ ! -e {r} ]; do sleep 0.01; done; echo bye; exit 3"),
                    dir.path(),
                ),
                sh("sleeper", "exec sleep 600", dir.path()),
                // Ignores SIGTERM, so it must be killed.
                sh(
                    "stubborn",
                    &format!("trap '' TERM; touch {r}; while :; do sleep 1; done"),
                    dir.path(),
                ),
            ],
            groups: vec![],
            controllers: vec![],
        };
        let mut sup = Supervisor::start(&spec).await.unwrap();
        let exit = sup.next_exit().await.unwrap();
        assert_eq!(exit.name, "quits");
        assert_eq!(describe(&exit.status), "exit code 3");
        assert_eq!(std::fs::read_to_string(&exit.log_path).unwrap(), "bye\n");
        assert_eq!(sup.running(), 2);
        let stopped = sup.shutdown(Duration::from_millis(300)).await;
        assert_eq!(
            stopped,
            Stopped {
                terminated: 1,
                killed: 1
            }
        );
        assert_eq!(sup.running(), 0);
        assert!(sup.next_exit().await.is_none());
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("x", "", dir.path());
        p.program = dir.path().join("nope");
        let spec = PlaygroundSpec {
            data_dir: dir.path().into(),
            processes: vec![p],
            groups: vec![],
            controllers: vec![],
        };
        let e = Supervisor::start(&spec).await.err().unwrap();
        assert!(format!("{e:#}").contains("starting x"));
    }
}
