//! Client knobs: deadlines, connection settings and the retry policy.
//!
//! Defaults are chosen for the failover target in DESIGN.md (writes resume
//! within 2 s of losing a leader): a dead member fails fast (connection
//! refused) or within `call_timeout`, and backoff sleeps are capped at
//! 200 ms (400 ms with jitter), so a client notices a newly elected leader
//! within a few hundred milliseconds; the total deadline, not the attempt
//! count, is what normally ends a call during a long outage.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Settings shared by [`crate::KvClient`] and [`crate::AdminClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one attempt (one RPC to one member), sent to the server as
    /// the gRPC timeout and enforced locally.
    pub call_timeout: Duration,
    /// Deadline of a whole call, across all attempts and backoff sleeps.
    pub total_timeout: Duration,
    /// How long establishing a TCP + HTTP/2 connection may take.
    pub connect_timeout: Duration,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            call_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientOptions {
    /// Sets the total deadline of each call; the per-attempt deadline is
    /// capped by it.
    pub fn with_total_timeout(mut self, total: Duration) -> Self {
        self.total_timeout = total;
        self.call_timeout = self.call_timeout.min(total);
        self
    }

    /// Sets the per-attempt deadline.
    pub fn with_call_timeout(mut self, call: Duration) -> Self {
        self.call_timeout = call;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Exponential backoff with jitter between attempts, bounded in count.
///
/// The n-th sleep (0-based) is `min(min_delay * 2^n, max_delay)`, plus, with
/// `jitter`, a uniformly random extra of up to the same amount, so a sleep
/// never exceeds `2 * max_delay`. A redirect to a hinted leader does not
/// sleep.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First backoff delay.
    pub min_delay: Duration,
    /// Largest backoff delay before jitter.
    pub max_delay: Duration,
    /// Most attempts of one call, the first included (at least 1).
    pub max_attempts: u32,
    /// Randomize delays so many clients do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_attempts: 60,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The sequence of sleeps between attempts of one call: at most
    /// `max_attempts - 1` delays.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let mut b = ExponentialBuilder::default()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_are_bounded_and_counted() {
        let p = RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_attempts: 12,
            jitter: true,
        };
        for _ in 0..50 {
            let d: Vec<_> = p.delays().collect();
            assert_eq!(d.len(), 11);
            for (n, delay) in d.iter().enumerate() {
                let base = (p.min_delay * 2u32.pow(n as u32)).min(p.max_delay);
                // backon multiplies in f32: allow a rounding error.
                let slack = Duration::from_micros(100);
                assert!(
                    *delay + slack >= base,
                    "delay {n} = {delay:?} below {base:?}"
                );
                assert!(
                    *delay <= base * 2,
                    "delay {n} = {delay:?} above {:?}",
                    base * 2
                );
                assert!(*delay <= p.max_delay * 2);
            }
        }
    }

    #[test]
    fn backoff_without_jitter_doubles_then_caps() {
        let p = RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_attempts: 6,
            jitter: false,
        };
        let ms: Vec<u64> = p
            .delays()
            .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
            .collect();
        assert_eq!(ms, vec![10, 20, 40, 50, 50]);
        assert_eq!(RetryPolicy::no_retry().delays().count(), 0);
    }

    #[test]
    fn total_timeout_caps_call_timeout() {
        let o = ClientOptions::default().with_total_timeout(Duration::from_millis(300));
        assert_eq!(o.call_timeout, Duration::from_millis(300));
    }
}
