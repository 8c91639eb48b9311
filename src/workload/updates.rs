use geo::{Haversine, Point};
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
/// Each update picks one driver, a uniform direction and a uniform distance
/// in `[0, max_step_m)`, and moves the driver that far on the local
/// east/north plane (exact to 1e-9 relative at these distances and
/// trig-free, so a million moves take a few milliseconds); every move is at
/// most `max_step_m` by haversine distance.
///
/// [`UpdateStream::round`] moves every driver once (a 4 s reporting round);
/// rounds draw from one generator per block of 65,536 drivers, so
/// [`UpdateStream::round_parallel`] gives the same updates on any number of
/// threads.
#[derive(Debug, Clone)]
pub struct UpdateStream {
    rng: WorkloadRng,
    seed: u64,
    rounds: u64,
    positions: Vec<Point<f64>>,
    zipf: Option<Zipf<f64>>,
    max_step_m: f64,
    seq: u64,
}

/// Drivers per generator block of a round.
const ROUND_BLOCK: usize = 1 << 16;

/// One block of a round: its number, its drivers' positions, its output.
type Block<'a> = (usize, &'a mut [Point<f64>], &'a mut [LocationUpdate]);

/// Moves `p` by at most `max_step_m` metres in a uniform direction.
#[inline]
fn step(rng: &mut WorkloadRng, p: Point<f64>, max_step_m: f64) -> Point<f64> {
    // A uniform direction without trigonometry: a point of the unit disc.
    let (x, y, r2) = loop {
        let x: f64 = rng.random_range(-1.0..1.0);
        let y: f64 = rng.random_range(-1.0..1.0);
        let r2 = x * x + y * y;
        if r2 > 1e-12 && r2 <= 1.0 {
            break (x, y, r2);
        }
    };
    // A hair under the bound, so rounding never pushes a move past it.
    let d = rng.random_range(0.0..max_step_m * (1.0 - 1e-6));
    let (east, north) = (d * x / r2.sqrt(), d * y / r2.sqrt());
    let m_per_deg = Haversine.radius().to_radians();
    let lat = p.y() + north / m_per_deg;
    // Scale longitude at the mid latitude: second-order exact.
    let mid = (p.y() + lat) / 2.0;
    let lon = p.x() + east / (m_per_deg * mid.to_radians().cos().max(1e-6));
    normalise(lon, lat)
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
            seed: config.seed,
            rounds: 0,
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
        self.round_parallel(1, buf);
    }

    /// [`UpdateStream::round`] generated on `threads` threads (at least
    /// one); the result does not depend on the thread count.
    pub fn round_parallel(&mut self, threads: usize, buf: &mut Vec<LocationUpdate>) {
        let n = self.positions.len();
        let (seed, round, base, max_step_m) = (self.seed, self.rounds, self.seq, self.max_step_m);
        buf.clear();
        buf.resize(
            n,
            LocationUpdate {
                driver: 0,
                position: Point::new(0.0, 0.0),
                seq: 0,
            },
        );
        let mut blocks: Vec<Vec<Block<'_>>> = (0..threads.max(1)).map(|_| Vec::new()).collect();
        let chunks = self
            .positions
            .chunks_mut(ROUND_BLOCK)
            .zip(buf.chunks_mut(ROUND_BLOCK));
        for (b, (pos, out)) in chunks.enumerate() {
            let t = b % blocks.len();
            blocks[t].push((b, pos, out));
        }
        let run = |work: Vec<Block<'_>>| {
            for (b, pos, out) in work {
                let mut r = rng(
                    seed ^ round.wrapping_mul(0xA24B_AED4_963E_E407),
                    6 + b as u64,
                );
                for (i, (p, u)) in pos.iter_mut().zip(out.iter_mut()).enumerate() {
                    let idx = b * ROUND_BLOCK + i;
                    *p = step(&mut r, *p, max_step_m);
                    *u = LocationUpdate {
                        driver: idx as u64,
                        position: *p,
                        seq: base + idx as u64,
                    };
                }
            }
        };
        if blocks.len() == 1 {
            run(blocks.pop().unwrap_or_default());
        } else {
            std::thread::scope(|s| {
                for work in blocks {
                    s.spawn(|| run(work));
                }
            });
        }
        self.rounds += 1;
        self.seq += n as u64;
    }

    fn move_driver(&mut self, idx: usize) -> LocationUpdate {
        let position = step(&mut self.rng, self.positions[idx], self.max_step_m);
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
