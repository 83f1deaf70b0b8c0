//! `shardline bench`: a YCSB-style closed-loop load generator against
//! Shardline or etcd. A tool for the numbers in the README, not a test.
//!
//! `--concurrency` workers each run one operation at a time for
//! `--duration` (after an unmeasured `--warmup`), choosing keys from
//! `0..--keys` by `--distribution` and reads vs. writes by the workload.
//! `--preload` first writes every key once, so a get workload finds them.
//! Latencies go into per-worker HDR histograms merged at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::output::Report;
use super::Context;
use crate::endpoints::parse_list;

pub mod etcd;
pub mod keys;
pub mod stats;
pub mod target;

use keys::{is_read, key_name, make_value, KeyChooser, KeyDistribution};
use stats::{Recorder, Summary};
use target::{Target, TargetKind, DEFAULT_ETCD_ENDPOINTS};

/// What the operations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Writes only.
    Put,
    /// Reads only (linearizable).
    Get,
    /// Reads with probability --read-ratio, else writes.
    Mixed,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    pub workload: Workload,
    /// Fraction of reads in the mixed workload.
    #[arg(long, default_value_t = 0.5)]
    pub read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Operations in flight at once (one per worker).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured run time (e.g. 10s, 1m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Unmeasured run time before the measurement.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    #[arg(long, value_enum, default_value_t = KeyDistribution::Uniform)]
    pub distribution: KeyDistribution,
    /// Exponent `s` of the zipfian distribution.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_exponent: f64,
    /// Write every key once before the run.
    #[arg(long)]
    pub preload: bool,
    #[arg(long, value_enum, default_value_t = TargetKind::Shardline)]
    pub target: TargetKind,
    /// Seed of the key and operation choice (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The `--output json` document of `shardline bench`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub target: TargetKind,
    pub endpoints: Vec<String>,
    pub workload: Workload,
    pub read_ratio: f64,
    pub keys: u64,
    pub value_size: usize,
    pub concurrency: usize,
    pub distribution: KeyDistribution,
    /// Measured seconds.
    pub duration_s: f64,
    /// Seconds the preload took (absent without `--preload`).
    pub preload_s: Option<f64>,
    /// All operations.
    pub total: Summary,
    pub reads: Summary,
    pub writes: Summary,
}

pub async fn run(ctx: &Context, a: BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(a.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.read_ratio),
        "--read-ratio must be within 0..=1"
    );
    let read_ratio = match a.workload {
        Workload::Put => 0.0,
        Workload::Get => 1.0,
        Workload::Mixed => a.read_ratio,
    };
    let chooser =
        KeyChooser::new(a.distribution, a.keys, a.zipf_exponent).map_err(anyhow::Error::msg)?;
    let endpoints = match a.target {
        TargetKind::Shardline => ctx.resolve_endpoints()?.endpoints,
        TargetKind::Etcd => parse_list(ctx.endpoints.as_deref().unwrap_or(DEFAULT_ETCD_ENDPOINTS)),
    };
    let target = Target::connect(a.target, endpoints.clone(), ctx.client_options()).await?;
    let seed = a.seed.unwrap_or_else(rand::random);

    let preload_s = if a.preload {
        let t = Instant::now();
        preload(&target, a.keys, a.value_size, a.concurrency.max(32), seed)
            .await
            .context("preload")?;
        let s = t.elapsed().as_secs_f64();
        if ctx.output == super::OutputFormat::Human {
            eprintln!(
                "preloaded {} keys in {s:.1} s ({:.0} keys/s)",
                a.keys,
                a.keys as f64 / s
            );
        }
        Some(s)
    } else {
        None
    };

    if read_ratio > 0.0 && !a.preload && ctx.output == super::OutputFormat::Human {
        eprintln!(
            "note: keys were not preloaded (--preload); reads of keys never written find nothing"
        );
    }
    let start = Instant::now();
    let measure_from = start + a.warmup;
    let end = measure_from + a.duration;
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..a.concurrency {
        let mut handle = target.handle(i);
        let chooser = chooser.clone();
        let value_size = a.value_size;
        workers.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            let value = make_value(&mut rng, value_size);
            let (mut reads, mut writes) = (Recorder::default(), Recorder::default());
            // The last failure of an operation begun in the warmup: reported
            // if nothing finishes in the measured window.
            let mut warmup_error = None;
            loop {
                let read = is_read(&mut rng, read_ratio);
                let key = key_name(chooser.next_index(&mut rng));
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let result = if read {
                    handle.get(key.as_bytes()).await.map(drop)
                } else {
                    handle.put(key.as_bytes(), &value).await
                };
                if t0 < measure_from {
                    if let Err(e) = result {
                        warmup_error = Some(e.to_string());
                    }
                    continue;
                }
                let rec = if read { &mut reads } else { &mut writes };
                match result {
                    Ok(()) => rec.ok(t0.elapsed().as_micros() as u64),
                    Err(e) => rec.error(|| e),
                }
            }
            (reads, writes, warmup_error)
        });
    }
    let (mut reads, mut writes) = (Recorder::default(), Recorder::default());
    let mut warmup_error = None;
    while let Some(r) = workers.join_next().await {
        let (r, w, e) = r.context("bench worker panicked")?;
        reads.merge(&r);
        writes.merge(&w);
        warmup_error = warmup_error.or(e);
    }
    // Operations started before `end` may finish after it; count the
    // measured window as ending when the last one did.
    let seconds = (Instant::now().max(end) - measure_from).as_secs_f64();
    let mut total = reads.clone();
    total.merge(&writes);
    if total.ops() + total.errors == 0 {
        // Every operation of the window was still running at its end (or
        // the window was shorter than one operation): a report of 0 ops/s
        // and no errors would hide why.
        let why = match warmup_error {
            Some(e) => format!("; an operation begun in the warmup failed: {e}"),
            None => String::new(),
        };
        anyhow::bail!("no operation finished in the measured window ({seconds:.1} s){why}");
    }
    let report = BenchReport {
        target: a.target,
        endpoints,
        workload: a.workload,
        read_ratio,
        keys: a.keys,
        value_size: a.value_size,
        concurrency: a.concurrency,
        distribution: a.distribution,
        duration_s: (seconds * 1000.0).round() / 1000.0,
        preload_s,
        total: total.summary(seconds),
        reads: reads.summary(seconds),
        writes: writes.summary(seconds),
    };
    Ok(Report::new(
        render_human(&report),
        serde_json::to_value(&report)?,
    ))
}

/// Writes every key once, `workers` at a time.
async fn preload(
    target: &Target,
    keys: u64,
    value_size: usize,
    workers: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let mut handle = target.handle(w);
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let value = make_value(&mut rng, value_size);
            let mut i = w as u64;
            while i < keys {
                handle
                    .put(key_name(i).as_bytes(), &value)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key_name(i)))?;
                i += workers as u64;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

fn render_human(r: &BenchReport) -> String {
    let mut s = format!(
        "target {} ({})  workload {}  keys {}  value {} B  concurrency {}  {}  {:.1} s\n",
        name(&r.target),
        r.endpoints.join(","),
        name(&r.workload),
        r.keys,
        r.value_size,
        r.concurrency,
        name(&r.distribution),
        r.duration_s
    );
    s.push_str(&format!("total   {}\n", r.total.human()));
    if r.reads.ops + r.reads.errors > 0 && r.writes.ops + r.writes.errors > 0 {
        s.push_str(&format!("reads   {}\n", r.reads.human()));
        s.push_str(&format!("writes  {}\n", r.writes.human()));
    }
    if let Some(e) = &r.total.first_error {
        s.push_str(&format!("first error: {e}\n"));
    }
    s
}

/// The command-line spelling of a value enum, for the human summary.
fn name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::OutputFormat;

    fn args(warmup: Duration, duration: Duration) -> BenchArgs {
        BenchArgs {
            workload: Workload::Put,
            read_ratio: 0.5,
            keys: 10,
            value_size: 8,
            concurrency: 1,
            duration,
            warmup,
            distribution: KeyDistribution::Uniform,
            zipf_exponent: 0.99,
            preload: false,
            target: TargetKind::Shardline,
            seed: Some(1),
        }
    }

    #[tokio::test]
    async fn a_window_where_nothing_finishes_is_an_error_naming_the_warmup_failure() {
        // A peer that accepts connections and never answers: the first put,
        // begun in the warmup, fails only at its 1 s deadline, after the
        // measured window has ended.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        });
        let ctx = Context {
            endpoints: Some(addr.to_string()),
            output: OutputFormat::Json,
            timeout: Duration::from_secs(1),
        };
        let run = run(
            &ctx,
            args(Duration::from_millis(200), Duration::from_millis(200)),
        );
        let err = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the bench ends")
            .expect_err("nothing was measured");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("no operation finished in the measured window"),
            "{msg}"
        );
        assert!(msg.contains("begun in the warmup failed"), "{msg}");
    }
}
