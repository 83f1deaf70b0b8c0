//! [`Reservoir`]: a uniform sample of the routing keys a range served since
//! the last report (Vitter's algorithm R).
//!
//! Every operation offered has the same chance to be in the sample, so each
//! sampled key stands for the same share of the range's load, and the
//! median sampled key is a split point that roughly halves it. Offering is
//! one atomic increment plus one hash; the lock is taken only while the
//! sample fills and then with probability `capacity / seen`, which falls
//! quickly under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Reservoir {
    capacity: usize,
    /// Offers since the last [`Reservoir::take`].
    seen: AtomicU64,
    keys: Mutex<Vec<Vec<u8>>>,
}

/// A well-mixed 64-bit function of `x` (SplitMix64's finaliser): the
/// pseudo-random choice for the `seen`-th offer, with no shared RNG state.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Reservoir {
    pub fn new(capacity: usize) -> Self {
        Reservoir {
            capacity,
            seen: AtomicU64::new(0),
            keys: Mutex::new(Vec::with_capacity(capacity)),
        }
    }

    /// Offers one operation's routing key. `salt` varies the choice between
    /// reservoirs that see the same sequence (the range id does).
    pub fn offer(&self, routing_key: &[u8], salt: u64) {
        if self.capacity == 0 {
            return;
        }
        let i = self.seen.fetch_add(1, Ordering::Relaxed);
        let slot = if i < self.capacity as u64 {
            i
        } else {
            // Keep the i-th offer (0-based) with probability capacity/(i+1).
            let j = mix(i ^ salt.rotate_left(32)) % (i + 1);
            if j >= self.capacity as u64 {
                return;
            }
            j
        } as usize;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() < self.capacity && slot >= keys.len() {
            keys.push(routing_key.to_vec());
        } else if let Some(k) = keys.get_mut(slot % self.capacity) {
            *k = routing_key.to_vec();
        }
    }

    /// The sample, sorted, and a fresh start for the next period.
    pub fn take(&self) -> Vec<Vec<u8>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        self.seen.store(0, Ordering::Relaxed);
        let mut out = std::mem::take(&mut *keys);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_then_keeps_capacity_and_take_starts_over() {
        let r = Reservoir::new(4);
        for k in [b"a", b"b", b"c"] {
            r.offer(k, 1);
        }
        assert_eq!(r.take(), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        for i in 0..1000u32 {
            r.offer(&i.to_be_bytes(), 1);
        }
        assert_eq!(r.take().len(), 4);
        assert!(r.take().is_empty());
    }

    #[test]
    fn sample_is_roughly_uniform_over_offers() {
        // 10k offers, 90% of them key "hot": about 90% of many samples must
        // be "hot" (an always-first or always-last sampler fails this).
        let mut hot = 0;
        let mut total = 0;
        for round in 0..50u64 {
            let r = Reservoir::new(16);
            for i in 0..10_000u32 {
                let key: &[u8] = if i % 10 == 0 { b"cold" } else { b"hot" };
                r.offer(key, round);
            }
            let s = r.take();
            total += s.len();
            hot += s.iter().filter(|k| k.as_slice() == b"hot").count();
        }
        let share = hot as f64 / total as f64;
        assert!((0.85..0.95).contains(&share), "{share}");
    }

    #[test]
    fn late_offers_are_sampled_too() {
        // The first half is "early", the second "late": a uniform sample
        // holds both about equally.
        let r = Reservoir::new(64);
        for i in 0..100_000u32 {
            r.offer(if i < 50_000 { b"early" } else { b"late" }, 7);
        }
        let late = r.take().iter().filter(|k| k.as_slice() == b"late").count();
        assert!((16..=48).contains(&late), "{late}");
    }
}
