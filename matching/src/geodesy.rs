//! Great-circle distances and coordinate checks shared by every module.

use geo::{Distance, HaversineMeasure, Point};

use crate::MatchingError;

/// The sphere of the geo index and of Redis GEO (radius 6 372 797.560856 m).
pub(crate) const EARTH: HaversineMeasure = HaversineMeasure::new(6_372_797.560_856);

/// Largest latitude Redis GEO (and the geo index) accepts.
pub(crate) const LAT_LIMIT: f64 = 85.051_128_78;

/// Haversine distance in metres between two `(lon, lat)` points.
#[inline]
pub(crate) fn haversine_m(a: Point<f64>, b: Point<f64>) -> f64 {
    EARTH.distance(a, b)
}

/// Checks a `(lon, lat)` point against the Redis GEO ranges.
pub(crate) fn check_lon_lat(index: usize, p: Point<f64>) -> Result<(), MatchingError> {
    let (x, y) = (p.x(), p.y());
    let reason = if !(x.is_finite() && y.is_finite()) {
        "coordinates must be finite"
    } else if !(-180.0..=180.0).contains(&x) {
        "longitude must be within -180..=180"
    } else if !(-LAT_LIMIT..=LAT_LIMIT).contains(&y) {
        "latitude must be within -85.05112878..=85.05112878"
    } else {
        return Ok(());
    };
    Err(MatchingError::InvalidCoordinate {
        index,
        x,
        y,
        reason,
    })
}
