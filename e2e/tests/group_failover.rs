//! A 3-member group as real processes: 10,000 writes with the leader killed
//! (`kill -9`) in the middle. Writes resume through the client, every
//! acknowledged write is readable afterwards, and no write is applied twice
//! (checked with a CAS counter, whose double application would be visible).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use shardline_e2e::TestGroup;

const KEYS: u64 = 10_000;
const WRITERS: u64 = 32;
const KILL_AFTER: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_no_acknowledged_write() -> Result<()> {
    let mut group = TestGroup::start(3, &[])?;
    let first_leader = group.wait_for_leader(Duration::from_secs(20)).await?;
    let client = Arc::new(group.client().await?);

    let acked = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (client, acked, done, next) =
            (client.clone(), acked.clone(), done.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= KEYS {
                    return failures;
                }
                let (k, v) = (format!("key-{i:05}"), format!("value-{i}"));
                match client.put(&k, &v).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(i, i);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.push((i, e.to_string())),
                }
            }
        }));
    }

    // A sequence of CAS increments runs alongside: each must succeed exactly
    // once; a retried CAS applied twice would report a mismatch.
    let counter = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut mismatches = Vec::new();
            while n < 400 {
                let expected = (n > 0).then(|| n.to_string().into_bytes());
                let out = client
                    .compare_and_swap(
                        "counter",
                        expected.as_deref(),
                        Some((n + 1).to_string().as_bytes()),
                    )
                    .await;
                match out {
                    Ok(o) if o.succeeded => n += 1,
                    Ok(o) => {
                        mismatches.push(format!(
                            "step {n}: found {:?}",
                            o.current.map(String::from_utf8)
                        ));
                        break;
                    }
                    Err(e) => {
                        mismatches.push(format!("step {n}: {e}"));
                        break;
                    }
                }
            }
            (n, mismatches)
        })
    };

    shardline_e2e::wait_until("3000 acknowledged writes", Duration::from_secs(120), || {
        let d = done.load(Ordering::SeqCst);
        async move { (d >= KILL_AFTER).then_some(()) }
    })
    .await?;
    let before_kill = done.load(Ordering::SeqCst);
    let killed_at = Instant::now();
    group.kill(first_leader);
    // Time to the first write acknowledged after the kill.
    let resumed = shardline_e2e::wait_until(
        "a write acknowledged after the kill",
        Duration::from_secs(10),
        || {
            let d = done.load(Ordering::SeqCst);
            async move { (d > before_kill + WRITERS).then_some(()) }
        },
    )
    .await;
    let resume_time = killed_at.elapsed();
    resumed?;
    eprintln!("writes resumed {resume_time:?} after killing leader {first_leader}");

    let mut failed = Vec::new();
    for w in writers {
        failed.extend(w.await?);
    }
    let (count, mismatches) = counter.await?;
    ensure!(
        failed.is_empty(),
        "{} writes failed after retries, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    ensure!(
        mismatches.is_empty(),
        "CAS counter saw a double-applied or failed step: {mismatches:?}"
    );

    let new_leader = group.wait_for_leader(Duration::from_secs(10)).await?;
    ensure!(
        new_leader != first_leader,
        "the killed member cannot still lead"
    );
    let acked = acked.lock().unwrap().clone();
    ensure!(
        acked.len() as u64 == KEYS,
        "all {KEYS} writes acknowledged, got {}",
        acked.len()
    );
    for i in acked.keys() {
        let got = client
            .get(format!("key-{i:05}"))
            .await
            .with_context(|| format!("read key {i}"))?;
        ensure!(
            got.as_deref() == Some(format!("value-{i}").as_bytes()),
            "key {i}: {got:?}"
        );
    }
    let final_count = client.get("counter").await?;
    ensure!(
        final_count == Some(count.to_string().into_bytes()),
        "counter {final_count:?} != {count}"
    );

    // The killed member restarts from its directory and catches up.
    group.restart(first_leader)?;
    let leader_status = group.status(new_leader).await?;
    let st = group
        .wait_applied(
            first_leader,
            leader_status.last_applied,
            Duration::from_secs(30),
        )
        .await?;
    ensure!(
        st.key_count == KEYS + 1,
        "restarted member holds {} keys",
        st.key_count
    );
    Ok(())
}
