//! What each bench operation touches: key choice (uniform or zipfian over
//! `0..keys`), key names, values, and the read/write mix.

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// How keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDistribution {
    /// Every key equally likely.
    Uniform,
    /// Key `i` (0-based) drawn with probability ∝ 1/(i+1)^s: a few hot keys.
    Zipfian,
}

/// Draws key indexes in `0..keys`.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform { keys: u64 },
    Zipfian { keys: u64, zipf: Zipf<f64> },
}

impl KeyChooser {
    /// A chooser over `keys` keys (at least 1); `exponent` is the zipfian `s`.
    pub fn new(dist: KeyDistribution, keys: u64, exponent: f64) -> Result<Self, String> {
        if keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        Ok(match dist {
            KeyDistribution::Uniform => KeyChooser::Uniform { keys },
            KeyDistribution::Zipfian => {
                let zipf = Zipf::new(keys as f64, exponent)
                    .map_err(|e| format!("zipfian exponent {exponent}: {e}"))?;
                KeyChooser::Zipfian { keys, zipf }
            }
        })
    }

    /// The next key index.
    pub fn next_index<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            KeyChooser::Uniform { keys } => rng.random_range(0..*keys),
            // Zipf samples are integers in [1, n] carried as f64.
            KeyChooser::Zipfian { keys, zipf } => (zipf.sample(rng) as u64).clamp(1, *keys) - 1,
        }
    }
}

/// The key name of index `i`: fixed width, so keys sort by index.
pub fn key_name(i: u64) -> String {
    format!("key{i:010}")
}

/// A value of `size` printable bytes.
pub fn make_value<R: Rng + ?Sized>(rng: &mut R, size: usize) -> Vec<u8> {
    (0..size).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

/// Whether the next operation reads, given the fraction of reads.
pub fn is_read<R: Rng + ?Sized>(rng: &mut R, read_ratio: f64) -> bool {
    read_ratio >= 1.0 || (read_ratio > 0.0 && rng.random_bool(read_ratio))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn uniform_and_zipfian_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(7);
        for keys in [1u64, 2, 10, 1000] {
            for dist in [KeyDistribution::Uniform, KeyDistribution::Zipfian] {
                let c = KeyChooser::new(dist, keys, 0.99).unwrap();
                for _ in 0..5000 {
                    assert!(c.next_index(&mut rng) < keys);
                }
            }
        }
        assert!(KeyChooser::new(KeyDistribution::Uniform, 0, 0.99).is_err());
        assert!(KeyChooser::new(KeyDistribution::Zipfian, 10, -1.0).is_err());
    }

    #[test]
    fn zipfian_is_skewed_and_uniform_is_not() {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 20_000;
        let count_zero =
            |c: &KeyChooser, rng: &mut StdRng| (0..n).filter(|_| c.next_index(rng) == 0).count();
        let z = KeyChooser::new(KeyDistribution::Zipfian, 1000, 0.99).unwrap();
        let u = KeyChooser::new(KeyDistribution::Uniform, 1000, 0.99).unwrap();
        // Zipf(1000, 0.99) gives key 0 about 13% of draws; uniform 0.1%.
        assert!(count_zero(&z, &mut rng) > n / 20);
        assert!(count_zero(&u, &mut rng) < n / 100);
        let mut seen = [false; 1000];
        for _ in 0..n {
            seen[u.next_index(&mut rng) as usize] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > 990);
    }

    #[test]
    fn names_values_and_mix() {
        assert_eq!(key_name(42), "key0000000042");
        let mut rng = StdRng::seed_from_u64(1);
        let v = make_value(&mut rng, 256);
        assert_eq!(v.len(), 256);
        assert!(v.iter().all(u8::is_ascii_lowercase));
        assert!((0..100).all(|_| is_read(&mut rng, 1.0)));
        assert!((0..100).all(|_| !is_read(&mut rng, 0.0)));
        let reads = (0..10_000).filter(|_| is_read(&mut rng, 0.9)).count();
        assert!((8500..9500).contains(&reads), "{reads}");
    }
}
