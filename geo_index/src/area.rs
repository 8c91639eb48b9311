//! A search area in metres and the exact membership tests of Redis:
//! haversine radius, Redis's box, and, for shapes under 10 m, the same tests
//! on the centres of Redis's 52-bit cells.

use std::f64::consts::FRAC_PI_2;

use geo::{Distance, Point};

use crate::coord::HaversineFrom;
use crate::coord::{EARTH_RADIUS_M, REDIS_HAVERSINE, redis_cell_centre};
use crate::grid::{CellRange, angle, radius_range};
use crate::{LonLat, haversine_m};

/// Shapes that reach less than this many metres are judged exactly as
/// Redis judges them: on the centres of Redis's 52-bit cells (≤ 0.6 m
/// from the stored points), so that `BYRADIUS 0`, `BYBOX 0 0` and other
/// sub-metre shapes return the members Redis returns (a member's own
/// cell, its duplicates and same-cell neighbours, at distance 0).
pub(crate) const REDIS_EXACT_BELOW_M: f64 = 10.0;

/// The centre Redis measures from, when judging on cell centres: a
/// member's cell centre (`FROMMEMBER`: Redis decodes the member's score);
/// for a point, the cell centre if the point is that centre as far as a
/// `LonLat` can tell (e.g. a `GEOPOS` result passed back), else the point.
pub(crate) fn redis_centre(c: LonLat, member: bool) -> (f64, f64) {
    let cell = redis_cell_centre(c.redis_geohash());
    if member || LonLat::new(cell.0, cell.1).is_ok_and(|p| p == c) {
        cell
    } else {
        (c.lon(), c.lat())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ShapeM {
    Radius(f64),
    Box(f64, f64),
    /// A shape under [`REDIS_EXACT_BELOW_M`], judged on Redis cell centres
    /// from the Redis centre `(lon, lat)`.
    Exact {
        shape: ExactShape,
        centre: (f64, f64),
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ExactShape {
    Radius(f64),
    Box(f64, f64),
}

impl ShapeM {
    /// Switches a tiny shape to Redis's cell-centre arithmetic.
    pub(crate) fn exact_if_tiny(self, c: LonLat, member: bool) -> Self {
        let shape = match self {
            ShapeM::Radius(r) => ExactShape::Radius(r),
            ShapeM::Box(w, h) => ExactShape::Box(w, h),
            ShapeM::Exact { .. } => return self,
        };
        if self.reach() < REDIS_EXACT_BELOW_M {
            ShapeM::Exact {
                shape,
                centre: redis_centre(c, member),
            }
        } else {
            self
        }
    }

    /// Largest distance a member can have from the search centre.
    pub(crate) fn reach(self) -> f64 {
        match self {
            ShapeM::Radius(r) => r,
            // A corner: at most half-width plus half-height along the sphere.
            ShapeM::Box(w, h) => w / 2.0 + h / 2.0,
            // Cell centres are within 0.4 m of the stored points they
            // stand for, and the Redis centre within 0.4 m of the centre.
            ShapeM::Exact { shape, .. } => {
                let inner = match shape {
                    ExactShape::Radius(r) => ShapeM::Radius(r),
                    ExactShape::Box(w, h) => ShapeM::Box(w, h),
                };
                inner.reach() + 1.0
            }
        }
    }

    pub(crate) fn range(self, c: LonLat) -> CellRange {
        match self {
            ShapeM::Radius(r) => radius_range(c, r),
            ShapeM::Exact { .. } => radius_range(c, self.reach()),
            ShapeM::Box(w, h) => {
                const MARGIN: f64 = 1e-7;
                let dlat = angle(h / 2.0).to_degrees();
                let (lon, lat) = (c.lon(), c.lat());
                let (lo, hi) = (lat - dlat - MARGIN, lat + dlat + MARGIN);
                let phi = lo.abs().max(hi.abs()).min(90.0).to_radians();
                let q = angle(w / 4.0);
                let dlon = if q >= FRAC_PI_2 || phi >= FRAC_PI_2 {
                    None
                } else {
                    let s = q.sin() / phi.cos();
                    (s < 1.0).then(|| 2.0 * s.asin().to_degrees())
                };
                CellRange::new(lo, hi, dlon.map(|d| (lon - d - MARGIN, lon + d + MARGIN)))
            }
        }
    }

    /// [`test`](Self::test) from a centre whose haversine terms are
    /// computed once.
    #[inline]
    pub(crate) fn test_from(self, c: &HaversineFrom, p: LonLat) -> Option<f64> {
        match self {
            ShapeM::Radius(r) => {
                let d = c.to(p);
                (d <= r).then_some(d)
            }
            _ => self.test(c.origin(), p),
        }
    }

    /// Distance in metres if `p` is inside, Redis's tests exactly.
    #[inline]
    pub(crate) fn test(self, c: LonLat, p: LonLat) -> Option<f64> {
        match self {
            ShapeM::Radius(r) => {
                let d = haversine_m(c, p);
                (d <= r).then_some(d)
            }
            ShapeM::Box(w, h) => {
                let lat_d = EARTH_RADIUS_M * (p.lat().to_radians() - c.lat().to_radians()).abs();
                if lat_d > h / 2.0 {
                    return None;
                }
                let on_parallel = LonLat::from_raw(c.raw().0, p.raw().1);
                if haversine_m(p, on_parallel) > w / 2.0 {
                    return None;
                }
                Some(haversine_m(c, p))
            }
            ShapeM::Exact { shape, centre } => {
                let (lon, lat) = redis_cell_centre(p.redis_geohash());
                let dist = |a: (f64, f64), b: (f64, f64)| {
                    REDIS_HAVERSINE.distance(Point::new(a.0, a.1), Point::new(b.0, b.1))
                };
                match shape {
                    ExactShape::Radius(r) => Some(dist(centre, (lon, lat))).filter(|&d| d <= r),
                    // geohashGetDistanceIfInRectangle.
                    ExactShape::Box(w, h) => {
                        let lat_d =
                            EARTH_RADIUS_M * (lat.to_radians() - centre.1.to_radians()).abs();
                        if lat_d > h / 2.0 || dist((lon, lat), (centre.0, lat)) > w / 2.0 {
                            return None;
                        }
                        Some(dist(centre, (lon, lat)))
                    }
                }
            }
        }
    }
}
