//! The reference workload: one seeded generator shared by the benches, the
//! examples and the tests.
//!
//! Everything here is deterministic for a given seed (a PCG-64 MCG stream
//! from `rand_pcg`, whose output is fixed by its specification, so the same
//! seed gives the same workload on every platform and release):
//!
//! | generator | what it makes |
//! |---|---|
//! | [`Fleet::generate`] | N drivers over the 20 [`METROS`], each metro a Gaussian cloud (σ = 8 km by default) |
//! | [`UpdateStream`] | location updates, each moving one driver (uniform or Zipf-chosen) by at most 60 m |
//! | [`QueryStream`] | pickup points drawn from the same clouds |
//! | [`ZipfKeys`] | Zipf(s)-distributed keys over a universe of n keys, for limiter and cache benches |
//! | [`OrderStream`] | delivery orders: restaurant and customer points, placement and ready times |
//!
//! ```
//! use dispatchkit::workload::{Fleet, MetroConfig, UpdateConfig};
//!
//! let fleet = Fleet::generate(&MetroConfig { drivers: 10_000, ..MetroConfig::default() })?;
//! assert_eq!(fleet.drivers().len(), 10_000);
//!
//! let mut updates = fleet.update_stream(&UpdateConfig::default())?;
//! let batch = updates.batch(1_000);
//! assert_eq!(batch.len(), 1_000);
//! # Ok::<(), dispatchkit::workload::WorkloadError>(())
//! ```
//!
//! Points are [`geo::Point`]s in degrees, `x` = longitude, `y` = latitude,
//! always inside the Redis GEO ranges (longitude −180..=180, latitude
//! −85.05112878..=85.05112878).

mod error;
mod keys;
mod metro;
mod orders;
mod queries;
mod updates;

pub use error::WorkloadError;
pub use keys::{ZipfKeys, zipf_keys};
pub use metro::{Driver, Fleet, METROS, Metro, MetroConfig};
pub use orders::{DeliveryOrder, OrderConfig, OrderStream};
pub use queries::{Pickup, QueryStream};
pub use updates::{DriverChoice, LocationUpdate, UpdateConfig, UpdateStream};

use geo::{Haversine, Point};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Largest latitude the generator emits: the Redis GEO limit (EPSG:3857).
pub const LAT_LIMIT: f64 = 85.051_128_78;

/// The seeded generator every stream uses.
pub(crate) type WorkloadRng = rand_pcg::Pcg64Mcg;

/// A generator seeded from `seed`, decorrelated per stream kind by `salt`
/// so that a fleet and an update stream built from the same seed differ.
pub(crate) fn rng(seed: u64, salt: u64) -> WorkloadRng {
    WorkloadRng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Metres per degree of latitude on the sphere `geo::Haversine` uses.
fn metres_per_degree() -> f64 {
    Haversine.radius().to_radians()
}

/// Clamps latitude into the Redis range and wraps longitude into −180..=180.
pub(crate) fn normalise(lon: f64, lat: f64) -> Point<f64> {
    let lat = lat.clamp(-LAT_LIMIT, LAT_LIMIT);
    let mut lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
    if lon < -180.0 {
        lon = -180.0;
    }
    Point::new(lon, lat)
}

/// A point of an isotropic Gaussian cloud of standard deviation `sigma_m`
/// metres around `centre`: east and north offsets in metres are converted to
/// degrees with the metres-per-degree of longitude at the centre's latitude
/// (`cos φ` shrinks it), so the cloud is round on the ground, not in degrees.
pub(crate) fn cloud_point(rng: &mut WorkloadRng, centre: Point<f64>, sigma_m: f64) -> Point<f64> {
    let east: f64 = StandardNormal.sample(rng);
    let north: f64 = StandardNormal.sample(rng);
    let m_per_deg = metres_per_degree();
    let lat = centre.y() + north * sigma_m / m_per_deg;
    let cos_lat = centre.y().to_radians().cos().max(1e-6);
    let lon = centre.x() + east * sigma_m / (m_per_deg * cos_lat);
    normalise(lon, lat)
}

/// Checks a standard deviation or distance in metres: finite and `> 0`.
pub(crate) fn check_positive_metres(name: &'static str, value: f64) -> Result<f64, WorkloadError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(WorkloadError::InvalidParameter {
            name,
            value,
            reason: "must be a finite number greater than zero",
        })
    }
}
