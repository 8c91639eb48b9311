use geo::{Destination, Haversine, Point};
use rand::RngExt;
use rand_distr::{Distribution, Zipf};

use super::{Fleet, WorkloadError, WorkloadRng, check_positive_metres, normalise, rng};

/// Longest move of one location update in the reference workload: 4 s at
/// 15 m/s.
pub const MAX_STEP_M: f64 = 60.0;

/// How an update stream picks the driver that moves next.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DriverChoice {
    /// Every driver equally likely.
    Uniform,
    /// Zipf(s) over driver ids: driver 0 moves most often (hot keys).
    Zipf {
        /// Exponent, `> 0`.
        s: f64,
    },
}

/// Parameters of an [`UpdateStream`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UpdateConfig {
    /// Seed (default 7).
    pub seed: u64,
    /// Which driver moves (default uniform).
    pub choice: DriverChoice,
    /// Longest move, metres, `0 < max_step_m <= 60` (default 60).
    pub max_step_m: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            choice: DriverChoice::Uniform,
            max_step_m: MAX_STEP_M,
        }
    }
}

/// One location update: driver `driver` is now at `position`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LocationUpdate {
    /// The driver that moved.
    pub driver: u64,
    /// Its new position.
    pub position: Point<f64>,
    /// Position of this update in the stream, from 0; a caller turns it into
    /// a timestamp (`t0 + seq × interval / drivers`).
    pub seq: u64,
}

/// An endless stream of location updates over a fleet.
///
/// Each update picks one driver, a uniform bearing and a uniform distance in
/// `[0, max_step_m)`, and moves the driver along the great circle
/// (`geo::Haversine` destination), so every move is at most `max_step_m`
/// by haversine distance.
#[derive(Debug, Clone)]
pub struct UpdateStream {
    rng: WorkloadRng,
    positions: Vec<Point<f64>>,
    zipf: Option<Zipf<f64>>,
    max_step_m: f64,
    seq: u64,
}

impl UpdateStream {
    pub(crate) fn new(fleet: &Fleet, config: &UpdateConfig) -> Result<Self, WorkloadError> {
        let max_step_m = check_positive_metres("max_step_m", config.max_step_m)?;
        if max_step_m > MAX_STEP_M {
            return Err(WorkloadError::InvalidParameter {
                name: "max_step_m",
                value: max_step_m,
                reason: "a 4 s update moves at most 60 m",
            });
        }
        if fleet.drivers().is_empty() {
            return Err(WorkloadError::Empty {
                name: "fleet",
                reason: "an update stream needs at least one driver to move",
            });
        }
        let zipf = match config.choice {
            DriverChoice::Uniform => None,
            DriverChoice::Zipf { s } => Some(super::keys::zipf(fleet.drivers().len() as u64, s)?),
        };
        Ok(Self {
            rng: rng(config.seed, 2),
            positions: fleet.drivers().iter().map(|d| d.position).collect(),
            zipf,
            max_step_m,
            seq: 0,
        })
    }

    /// Current position of every driver, by id.
    pub fn positions(&self) -> &[Point<f64>] {
        &self.positions
    }

    /// The next update.
    pub fn next_update(&mut self) -> LocationUpdate {
        let n = self.positions.len();
        let idx = match &self.zipf {
            None => self.rng.random_range(0..n),
            Some(z) => (z.sample(&mut self.rng) as usize - 1).min(n - 1),
        };
        self.move_driver(idx)
    }

    /// Clears `buf` and fills it with one update per driver, in id order:
    /// one 4 s reporting round of the whole fleet.
    pub fn round(&mut self, buf: &mut Vec<LocationUpdate>) {
        buf.clear();
        buf.reserve(self.positions.len());
        for idx in 0..self.positions.len() {
            let u = self.move_driver(idx);
            buf.push(u);
        }
    }

    fn move_driver(&mut self, idx: usize) -> LocationUpdate {
        let bearing = self.rng.random_range(0.0..360.0);
        let step = self.rng.random_range(0.0..self.max_step_m);
        let moved = Haversine.destination(self.positions[idx], bearing, step);
        let position = normalise(moved.x(), moved.y());
        self.positions[idx] = position;
        let seq = self.seq;
        self.seq += 1;
        LocationUpdate {
            driver: idx as u64,
            position,
            seq,
        }
    }

    /// Clears `buf` and fills it with the next `n` updates (reuses its
    /// allocation, so a bench loop allocates nothing).
    pub fn fill_batch(&mut self, buf: &mut Vec<LocationUpdate>, n: usize) {
        buf.clear();
        buf.reserve(n);
        for _ in 0..n {
            buf.push(self.next_update());
        }
    }

    /// The next `n` updates as a new batch.
    pub fn batch(&mut self, n: usize) -> Vec<LocationUpdate> {
        let mut buf = Vec::with_capacity(n);
        self.fill_batch(&mut buf, n);
        buf
    }
}

impl Iterator for UpdateStream {
    type Item = LocationUpdate;

    fn next(&mut self) -> Option<LocationUpdate> {
        Some(self.next_update())
    }
}
