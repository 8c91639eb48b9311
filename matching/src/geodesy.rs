//! Great-circle distances and coordinate checks shared by every module:
//! the geo index's sphere (Redis's radius), so matching and the index
//! agree on every distance.

use dispatchkit_geo_index::{LAT_LIMIT, LON_LIMIT, REDIS_HAVERSINE};
use geo::{Distance, Point};

use crate::MatchingError;

/// Haversine distance in metres between two `(lon, lat)` points.
#[inline]
pub(crate) fn haversine_m(a: Point<f64>, b: Point<f64>) -> f64 {
    REDIS_HAVERSINE.distance(a, b)
}

/// Checks a `(lon, lat)` point against the Redis GEO ranges.
pub(crate) fn check_lon_lat(index: usize, p: Point<f64>) -> Result<(), MatchingError> {
    let (x, y) = (p.x(), p.y());
    let reason = if !(x.is_finite() && y.is_finite()) {
        "coordinates must be finite"
    } else if !(-LON_LIMIT..=LON_LIMIT).contains(&x) {
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
