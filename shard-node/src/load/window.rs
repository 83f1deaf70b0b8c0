//! [`SlidingWindow`]: a lock-free event counter that answers "events per
//! second over the last `window`".
//!
//! The window is a ring of `n` buckets, each `window / n` long. A bucket
//! packs the bucket's tick number (upper 32 bits, wrapping) and its count
//! (lower 32 bits) into one `AtomicU64`, so recording is one
//! compare-and-swap and a bucket left over from an earlier lap of the ring
//! is recognised and restarted by the writer that finds it. Reading sums
//! the buckets of the last `n` ticks (the newest one partly elapsed) and
//! divides by the time they cover, so the rate has no step at bucket
//! boundaries beyond one bucket's worth of events.
//!
//! Times are offsets from an origin the owner chooses (the tracker's start),
//! which keeps this type clock-free and testable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const COUNT_MASK: u64 = 0xffff_ffff;

pub struct SlidingWindow {
    bucket: Duration,
    buckets: Box<[AtomicU64]>,
    /// When counting began (offset from the origin): the rate never covers
    /// time before it.
    since: Duration,
}

impl SlidingWindow {
    /// A window of `buckets` buckets spanning `window`, counting from offset
    /// `since`. `window` is raised to `buckets` milliseconds if smaller.
    pub fn new(window: Duration, buckets: usize, since: Duration) -> Self {
        let buckets = buckets.max(1);
        let bucket = (window / buckets as u32).max(Duration::from_millis(1));
        SlidingWindow {
            bucket,
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            since,
        }
    }

    fn tick(&self, at: Duration) -> u64 {
        (at.as_nanos() / self.bucket.as_nanos()) as u64
    }

    /// Counts `n` events at offset `at`.
    pub fn add(&self, at: Duration, n: u32) {
        let tick = self.tick(at);
        let tag = (tick as u32 as u64) << 32;
        let slot = &self.buckets[(tick % self.buckets.len() as u64) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if current & !COUNT_MASK == tag {
                // Saturate rather than carry into the tick bits.
                tag | (current & COUNT_MASK)
                    .saturating_add(u64::from(n))
                    .min(COUNT_MASK)
            } else {
                tag | u64::from(n)
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Events per second over the window ending at offset `at`: the events
    /// of the last `n` ticks divided by the time they cover (no earlier
    /// than counting began). 0 when no time is covered yet.
    pub fn rate(&self, at: Duration) -> f64 {
        let now = self.tick(at);
        let n = self.buckets.len() as u64;
        let mut events = 0u64;
        for back in 0..n.min(now + 1) {
            let tick = now - back;
            let v = self.buckets[(tick % n) as usize].load(Ordering::Relaxed);
            if v >> 32 == tick as u32 as u64 {
                events += v & COUNT_MASK;
            }
        }
        let oldest = self.bucket * (now.saturating_sub(n - 1)) as u32;
        let covered = at.saturating_sub(oldest.max(self.since));
        if covered.is_zero() {
            0.0
        } else {
            events as f64 / covered.as_secs_f64()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_load_reads_as_its_rate() {
        // 10 buckets of 100 ms; 5 events every 10 ms = 500/s.
        let w = SlidingWindow::new(ms(1000), 10, ms(0));
        for t in (0..3000).step_by(10) {
            w.add(ms(t), 5);
        }
        let r = w.rate(ms(3000));
        assert!((r - 500.0).abs() < 30.0, "{r}");
    }

    #[test]
    fn young_window_divides_by_the_time_since_counting_began() {
        let w = SlidingWindow::new(ms(10_000), 10, ms(5_000));
        for t in (5_000..5_500).step_by(10) {
            w.add(ms(t), 1);
        }
        // 50 events in 0.5 s, not spread over the 10 s window.
        let r = w.rate(ms(5_500));
        assert!((r - 100.0).abs() < 1.0, "{r}");
        assert_eq!(SlidingWindow::new(ms(1000), 10, ms(700)).rate(ms(700)), 0.0);
    }

    #[test]
    fn load_ages_out_and_old_laps_of_the_ring_are_not_counted() {
        let w = SlidingWindow::new(ms(1000), 10, ms(0));
        for t in (0..1000).step_by(10) {
            w.add(ms(t), 1);
        }
        assert!(w.rate(ms(1000)) > 90.0);
        // Two seconds of silence: every bucket is from an older lap.
        assert_eq!(w.rate(ms(3000)), 0.0);
        // A new event lands in a reused bucket, which restarts from 0.
        w.add(ms(3050), 3);
        // 3 events over the 0.9 s the window covers at 3.1 s.
        let r = w.rate(ms(3100));
        assert!((r - 3.0 / 0.9).abs() < 0.01, "{r}");
    }

    #[test]
    fn concurrent_adds_are_all_counted() {
        let w = std::sync::Arc::new(SlidingWindow::new(ms(10_000), 10, ms(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        w.add(ms(500), 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 40k events in the first second.
        let r = w.rate(ms(1000));
        assert!((r - 40_000.0).abs() < 1.0, "{r}");
    }
}
