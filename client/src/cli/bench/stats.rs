//! Latency and throughput bookkeeping: per-worker [`Recorder`]s merged into
//! one, summarized as a [`Summary`].

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies (microseconds) and error counts of one kind of operation.
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    pub errors: u64,
    /// The first error seen, to show why operations failed.
    pub first_error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        // 1 µs .. 1 h at 3 significant figures.
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Recorder {
            hist,
            errors: 0,
            first_error: None,
        }
    }
}

impl Recorder {
    /// Records one successful operation that took `micros`.
    pub fn ok(&mut self, micros: u64) {
        self.hist.saturating_record(micros.max(1));
    }

    /// Records one failed operation.
    pub fn error(&mut self, e: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e());
        }
    }

    /// Adds `other`'s samples and errors to this one.
    pub fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("histograms share bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
    }

    /// Successful operations recorded.
    pub fn ops(&self) -> u64 {
        self.hist.len()
    }

    /// The summary over `seconds` of measurement.
    pub fn summary(&self, seconds: f64) -> Summary {
        let q = |p: f64| self.hist.value_at_quantile(p);
        let ops = self.ops();
        Summary {
            ops,
            errors: self.errors,
            ops_per_sec: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            latency_us: Latency {
                mean: if ops == 0 {
                    0.0
                } else {
                    (self.hist.mean() * 10.0).round() / 10.0
                },
                p50: q(0.50),
                p99: q(0.99),
                p999: q(0.999),
                max: self.hist.max(),
            },
            first_error: self.first_error.clone(),
        }
    }
}

/// Throughput and latency of one kind of operation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Successful operations.
    pub ops: u64,
    /// Failed operations (after the client's own retries).
    pub errors: u64,
    pub ops_per_sec: f64,
    pub latency_us: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Latency percentiles of successful operations, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Microseconds as milliseconds with two decimals, for people.
pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl Summary {
    /// One line for people.
    pub fn human(&self) -> String {
        format!(
            "{:>10.1} ops/s  {:>9} ops  {:>5} errors  p50 {}  p99 {}  p999 {}  max {}",
            self.ops_per_sec,
            self.ops,
            self.errors,
            ms(self.latency_us.p50),
            ms(self.latency_us.p99),
            ms(self.latency_us.p999),
            ms(self.latency_us.max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles_and_rate() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for us in 1..=500 {
            a.ok(us);
        }
        for us in 501..=1000 {
            b.ok(us);
        }
        b.error(|| "boom".into());
        b.error(|| "second".into());
        a.merge(&b);
        let s = a.summary(2.0);
        assert_eq!(s.ops, 1000);
        assert_eq!(s.errors, 2);
        assert_eq!(s.first_error.as_deref(), Some("boom"));
        assert_eq!(s.ops_per_sec, 500.0);
        // 3 significant figures: values are exact up to 1000 µs.
        assert_eq!(s.latency_us.p50, 500);
        assert_eq!(s.latency_us.p99, 990);
        assert_eq!(s.latency_us.p999, 999);
        assert_eq!(s.latency_us.max, 1000);
        assert_eq!(s.latency_us.mean, 500.5);
        assert!(s.human().contains("500.0 ops/s"));
        assert!(s.human().contains("p99 0.99 ms"));
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = Recorder::default().summary(0.0);
        assert_eq!(
            (s.ops, s.ops_per_sec, s.latency_us.p99, s.latency_us.mean),
            (0, 0.0, 0, 0.0)
        );
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("first_error").is_none());
        assert_eq!(json["latency_us"]["p999"], 0);
    }
}
