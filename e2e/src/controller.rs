//! Multi-process harness of the shard controller: real `shard-controller`
//! processes on loopback, each with its own data directory under one
//! temporary directory.
//!
//! [`TestController`] is [`Processes`] of `shard-controller` (kill, stop,
//! restart, join, leader, log dumps on panic, like [`crate::TestGroup`]),
//! plus the controller API through [`ControllerClient`].

use std::time::Duration;

use anyhow::Result;
use shardline_client::controller::ControllerClient;
use shardline_client::ClientOptions;

use crate::processes::{Processes, Role};
use crate::{binaries, quick_options, wait_until};

/// A replica group to Join in controller tests: `gid` with three made-up
/// member addresses (the controller never dials them).
pub fn three_member_group(gid: u64) -> (u64, Vec<String>) {
    (
        gid,
        (1..=3).map(|m| format!("10.0.{gid}.{m}:7400")).collect(),
    )
}

/// A controller group: [`Processes`] of `shard-controller`, plus what only
/// a controller answers.
pub struct TestController {
    processes: Processes,
}

impl std::ops::Deref for TestController {
    type Target = Processes;
    fn deref(&self) -> &Processes {
        &self.processes
    }
}

impl std::ops::DerefMut for TestController {
    fn deref_mut(&mut self) -> &mut Processes {
        &mut self.processes
    }
}

impl TestController {
    /// Starts an `n`-member controller; `extra` flags go to every member.
    pub fn start(n: u64, extra: &[&str]) -> Result<Self> {
        let role = Role {
            name: "controller",
            binary: binaries().shard_controller.clone(),
            args: Vec::new(),
        };
        Ok(TestController {
            processes: Processes::start(role, n, extra)?,
        })
    }

    /// Waits until member `id` has applied config `num` (its admin item
    /// count is the latest config number).
    pub async fn wait_config(&self, id: u64, num: u64, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("controller member {id} to apply config {num}"),
            timeout,
            || async move { (self.status(id).await.ok()?.key_count >= num).then_some(()) },
        )
        .await
    }

    /// A client of the whole controller with default options.
    pub async fn client(&self) -> Result<ControllerClient> {
        Ok(ControllerClient::connect(self.endpoints(), ClientOptions::default()).await?)
    }

    /// A client that asks member `first` first, then the others in order.
    pub async fn client_via(&self, first: u64) -> Result<ControllerClient> {
        let mut eps = vec![self.addr(first)];
        eps.extend(
            self.endpoints()
                .into_iter()
                .filter(|a| *a != self.addr(first)),
        );
        Ok(ControllerClient::connect(eps, ClientOptions::default()).await?)
    }

    /// A client of member `id` alone, one short attempt per call.
    pub async fn member_client(&self, id: u64) -> Result<ControllerClient> {
        Ok(ControllerClient::connect(vec![self.addr(id)], quick_options()).await?)
    }
}
