use rand_distr::{Distribution, Zipf};

use super::{WorkloadError, WorkloadRng, rng};

/// Zipf(s) over `n` items; checked parameters.
pub(crate) fn zipf(n: u64, s: f64) -> Result<Zipf<f64>, WorkloadError> {
    if n == 0 {
        return Err(WorkloadError::Empty {
            name: "key universe",
            reason: "Zipf needs at least one key",
        });
    }
    if !(s.is_finite() && s > 0.0) {
        return Err(WorkloadError::InvalidParameter {
            name: "s",
            value: s,
            reason: "the Zipf exponent must be a finite number greater than zero",
        });
    }
    Zipf::new(n as f64, s).map_err(|_| WorkloadError::InvalidParameter {
        name: "n",
        value: n as f64,
        reason: "rejected by the Zipf sampler",
    })
}

/// Zipf(s)-distributed keys over the universe `0..n`: key `k` has rank
/// `k + 1`, so key 0 is the hottest, drawn with probability
/// `1 / H(n, s)` where `H(n, s) = Σ_{r=1..n} r^-s`.
///
/// Sampling is rejection-inversion (`rand_distr::Zipf`), O(1) per key;
/// benches generate ahead with [`zipf_keys`] so the sampler is not what they
/// measure.
///
/// ```
/// use dispatchkit::workload::ZipfKeys;
///
/// let mut keys = ZipfKeys::new(100_000, 1.0, 1)?;
/// let k = keys.next_key();
/// assert!(k < 100_000);
/// assert!((keys.probability(0) - 0.0827).abs() < 1e-3);
/// # Ok::<(), dispatchkit::workload::WorkloadError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ZipfKeys {
    rng: WorkloadRng,
    dist: Zipf<f64>,
    n: u64,
    s: f64,
}

impl ZipfKeys {
    /// A key stream over `0..n` with exponent `s`, seeded by `seed`.
    ///
    /// # Errors
    /// [`WorkloadError::Empty`] when `n == 0`;
    /// [`WorkloadError::InvalidParameter`] when `s` is not finite and `> 0`.
    pub fn new(n: u64, s: f64, seed: u64) -> Result<Self, WorkloadError> {
        Ok(Self {
            rng: rng(seed, 4),
            dist: zipf(n, s)?,
            n,
            s,
        })
    }

    /// The next key, in `0..n`.
    pub fn next_key(&mut self) -> u64 {
        (self.dist.sample(&mut self.rng) as u64 - 1).min(self.n - 1)
    }

    /// The theoretical probability of key `k` (rank `k + 1`); O(n) because it
    /// sums the normaliser.
    pub fn probability(&self, k: u64) -> f64 {
        if k >= self.n {
            return 0.0;
        }
        let h: f64 = (1..=self.n).map(|r| (r as f64).powf(-self.s)).sum();
        ((k + 1) as f64).powf(-self.s) / h
    }

    /// The next `count` keys, generated ahead into a `Vec`.
    pub fn take_vec(&mut self, count: usize) -> Vec<u64> {
        (0..count).map(|_| self.next_key()).collect()
    }
}

impl Iterator for ZipfKeys {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        Some(self.next_key())
    }
}

/// `count` Zipf(s) keys over `0..n`, generated ahead (see [`ZipfKeys`]).
///
/// # Errors
/// As [`ZipfKeys::new`].
pub fn zipf_keys(n: u64, s: f64, count: usize, seed: u64) -> Result<Vec<u64>, WorkloadError> {
    Ok(ZipfKeys::new(n, s, seed)?.take_vec(count))
}
