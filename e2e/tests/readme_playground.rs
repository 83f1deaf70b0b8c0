//! The README's promise: `shardline playground` starts a working cluster and
//! `shardline put/get` in another terminal reach it with no flags (through
//! the playground file); Ctrl-C stops every child. Also checks that the
//! README still shows the commands this test exercises.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use shardline_e2e::{binaries, free_port};

#[test]
fn readme_quick_start_commands_are_the_tested_ones() -> Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    ensure!(
        readme.contains("shardline playground"),
        "README lost the playground command"
    );
    ensure!(
        readme.contains("cargo test --workspace --locked"),
        "README lost the test command"
    );
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run"))?;
    ensure!(
        ci.contains("cargo test --workspace --locked"),
        ".ci/run must run the README's test command"
    );
    Ok(())
}

#[test]
fn playground_serves_the_cli_without_flags_and_stops_on_ctrl_c() -> Result<()> {
    let bins = binaries();
    let home = tempfile::tempdir()?;
    // The playground's ports span base-100..base+102 (controllers below the
    // base, HTTP ports 100 above each gRPC port). Bases come from below
    // Linux's ephemeral range (32768+), where outgoing connections of other
    // tests and processes take ports at any moment; a playground that still
    // finds a port taken exits at once, and the next attempt moves on.
    let mut attempt = 0;
    let mut pg = loop {
        attempt += 1;
        // free_port() hands out consecutive ports; 409 (coprime to 12,000)
        // spreads them so two bases never share their 200-port span.
        let base = 20_000 + (u32::from(free_port()) * 409) % 12_000;
        let mut pg = Command::new(&bins.shardline)
            .args(["playground", "--base-port", &base.to_string()])
            .env("SHARDLINE_HOME", home.path())
            .env_remove("SHARDLINE_ENDPOINTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start playground")?;
        let stdout = pg.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let up = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("Press Ctrl-C") => break true,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = pg.kill();
                    bail!("playground did not come up within 60 s");
                }
            }
        };
        if up {
            break pg;
        }
        let status = pg.wait()?;
        ensure!(
            attempt < 5,
            "playground exited before coming up ({status}), {attempt} times"
        );
    };
    let cli = |args: &[&str]| -> Result<std::process::Output> {
        Ok(Command::new(&bins.shardline)
            .args(args)
            .env("SHARDLINE_HOME", home.path())
            .env_remove("SHARDLINE_ENDPOINTS")
            .output()?)
    };
    let put = cli(&["put", "hello", "world"])?;
    ensure!(
        put.status.success(),
        "put failed: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = cli(&["get", "hello"])?;
    ensure!(
        String::from_utf8_lossy(&get.stdout).trim() == "world",
        "get printed {:?}",
        get.stdout
    );
    let status = cli(&["-o", "json", "status"])?;
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let members = doc["members"].as_array().context("members")?;
    ensure!(members.len() == 3, "status lists {} members", members.len());
    ensure!(
        members.iter().filter(|m| m["role"] == "leader").count() == 1,
        "exactly one leader: {doc}"
    );

    // The playground's controller knows the group: it was joined at start-up.
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        home.path().join("playground.json"),
    )?)?;
    let controllers: Vec<String> = file["controllers"]
        .as_array()
        .context("controllers in the playground file")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    ensure!(controllers.len() == 3, "controllers: {controllers:?}");
    let config = tokio::runtime::Runtime::new()?.block_on(async {
        let c = shardline_client::controller::ControllerClient::connect(
            controllers,
            Default::default(),
        )
        .await?;
        c.query(None).await
    })?;
    ensure!(
        config.groups.contains_key(&1),
        "group 1 not registered: {config:?}"
    );
    ensure!(
        config.ranges.iter().all(|r| r.gid == 1),
        "every range belongs to the only group"
    );

    // Ctrl-C: the playground stops its children and exits cleanly.
    Command::new("kill")
        .args(["-INT", &pg.id().to_string()])
        .status()?;
    let exit = wait_exit(&mut pg, Duration::from_secs(30))?;
    ensure!(exit.success(), "playground exited with {exit:?}");
    let after = cli(&["--timeout", "1s", "get", "hello"])?;
    ensure!(
        !after.status.success(),
        "cluster still answering after Ctrl-C"
    );
    Ok(())
}

fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
