use geo::Point;
use rand::distr::weighted::WeightedIndex;
use rand_distr::Distribution;

use super::{METROS, MetroConfig, WorkloadError, WorkloadRng, cloud_point, rng};

/// A pickup point of the query stream.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Pickup {
    /// Index into [`METROS`].
    pub metro: u8,
    /// Where the rider stands.
    pub point: Point<f64>,
}

/// An endless stream of pickup points, drawn from the same metro clouds as
/// the fleet (same weights, same σ), so queries land where drivers are.
#[derive(Debug, Clone)]
pub struct QueryStream {
    rng: WorkloadRng,
    pick: WeightedIndex<u32>,
    sigma_m: f64,
}

impl QueryStream {
    /// A query stream over the clouds of `config` (its `drivers` is
    /// ignored), seeded by `seed`.
    ///
    /// # Errors
    /// [`WorkloadError::InvalidParameter`] for a bad `sigma_m`.
    pub fn new(config: &MetroConfig, seed: u64) -> Result<Self, WorkloadError> {
        config.validate()?;
        Ok(Self {
            rng: rng(seed, 3),
            pick: MetroConfig::metro_sampler(),
            sigma_m: config.sigma_m,
        })
    }

    /// The next pickup.
    pub fn next_pickup(&mut self) -> Pickup {
        let m = self.pick.sample(&mut self.rng);
        Pickup {
            metro: m as u8,
            point: cloud_point(&mut self.rng, METROS[m].centre(), self.sigma_m),
        }
    }

    /// The next `n` pickups.
    pub fn pickups(&mut self, n: usize) -> Vec<Pickup> {
        (0..n).map(|_| self.next_pickup()).collect()
    }
}

impl Iterator for QueryStream {
    type Item = Pickup;

    fn next(&mut self) -> Option<Pickup> {
        Some(self.next_pickup())
    }
}
