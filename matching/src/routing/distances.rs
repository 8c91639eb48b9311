use geo::Point;

use crate::MatchingError;
use crate::geodesy::{check_lon_lat, haversine_m};

/// Symmetric, non-negative, finite distances between `len()` stops,
/// numbered `0..len()`.
///
/// The routing functions only ever call [`Distances::dist`] with indices
/// below [`Distances::len`]. They build a dense matrix from it (up to
/// [`DENSE_LIMIT`] stops) and check every entry on the way; above that
/// limit entries are read on demand and a NaN entry only makes a move
/// look unattractive (the result is still a valid permutation, never a
/// panic).
pub trait Distances {
    /// Number of stops.
    fn len(&self) -> usize;

    /// Whether there are no stops.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distance from stop `a` to stop `b`; `a, b < len()`. Must equal
    /// `dist(b, a)`. O(1) for every implementation in this crate.
    fn dist(&self, a: usize, b: usize) -> f64;
}

impl<D: Distances + ?Sized> Distances for &D {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn dist(&self, a: usize, b: usize) -> f64 {
        (**self).dist(a, b)
    }
}

/// Largest distance an entry may have: `f64::MAX / 2^64`, so that the
/// length of any tour (and the open-path penalty built from row maxima)
/// stays finite instead of overflowing to infinity.
pub const MAX_DISTANCE: f64 = f64::MAX / 18_446_744_073_709_551_616.0;

/// Largest number of stops (dummy end node included) for which the
/// solvers precompute a dense `n × n` matrix of `f64` (32 MiB at the
/// limit). Larger instances read [`Distances::dist`] on demand.
pub const DENSE_LIMIT: usize = 2_048;

/// A dense symmetric distance matrix (row-major `n × n`).
///
/// ```
/// use dispatchkit_matching::routing::{DistanceMatrix, Distances};
///
/// let m = DistanceMatrix::new(3, vec![0.0, 2.0, 9.0, 2.0, 0.0, 4.0, 9.0, 4.0, 0.0])?;
/// assert_eq!(m.dist(0, 2), 9.0);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
///
/// Deserialising (`{"n": 2, "data": [0, 5, 5, 0]}`) goes through
/// [`DistanceMatrix::new`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "DistanceMatrixData", into = "DistanceMatrixData")
)]
pub struct DistanceMatrix {
    n: usize,
    data: Vec<f64>,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "DistanceMatrix", deny_unknown_fields)]
struct DistanceMatrixData {
    n: usize,
    data: Vec<f64>,
}

#[cfg(feature = "serde")]
impl TryFrom<DistanceMatrixData> for DistanceMatrix {
    type Error = MatchingError;
    fn try_from(d: DistanceMatrixData) -> Result<Self, MatchingError> {
        DistanceMatrix::new(d.n, d.data)
    }
}

#[cfg(feature = "serde")]
impl From<DistanceMatrix> for DistanceMatrixData {
    fn from(m: DistanceMatrix) -> Self {
        DistanceMatrixData {
            n: m.n,
            data: m.data,
        }
    }
}

impl DistanceMatrix {
    /// Largest `n` of [`DistanceMatrix::from_fn`], which allocates its
    /// `n × n` entries up front: 16,384 stops, 2 GiB.
    pub const MAX_STOPS: usize = 1 << 14;

    /// A matrix from `n × n` row-major entries. The diagonal is ignored.
    /// O(n²).
    ///
    /// # Errors
    /// [`MatchingError::SizeMismatch`] when `data.len() != n * n`;
    /// [`MatchingError::InvalidDistance`] for a NaN, infinite, negative or
    /// above-[`MAX_DISTANCE`] entry, or when `d(i, j) != d(j, i)`. The
    /// diagonal is ignored (stored as 0).
    pub fn new(n: usize, mut data: Vec<f64>) -> Result<Self, MatchingError> {
        let expected = n.checked_mul(n).ok_or(MatchingError::TooLarge {
            what: "distance matrix",
            size: n,
            limit: 1 << 32,
        })?;
        if data.len() != expected {
            return Err(MatchingError::SizeMismatch {
                what: "distance matrix entries",
                expected,
                got: data.len(),
            });
        }
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    data[i * n + j] = 0.0;
                    continue;
                }
                let v = data[i * n + j];
                check_distance(i, j, v)?;
                if j > i && v != data[j * n + i] {
                    return Err(MatchingError::InvalidDistance {
                        from: i,
                        to: j,
                        value: v,
                        reason: "not equal to d(to, from): the matrix must be symmetric",
                    });
                }
            }
        }
        Ok(Self { n, data })
    }

    /// The matrix `d(i, j) = f(i, j)` for `i < j`, mirrored. O(n²) calls.
    ///
    /// # Errors
    /// As [`DistanceMatrix::new`]; [`MatchingError::TooLarge`] for `n`
    /// above [`DistanceMatrix::MAX_STOPS`] (checked before allocating).
    pub fn from_fn(
        n: usize,
        mut f: impl FnMut(usize, usize) -> f64,
    ) -> Result<Self, MatchingError> {
        if n > Self::MAX_STOPS {
            return Err(MatchingError::TooLarge {
                what: "distance matrix stops",
                size: n,
                limit: Self::MAX_STOPS,
            });
        }
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let v = f(i, j);
                check_distance(i, j, v)?;
                data[i * n + j] = v;
                data[j * n + i] = v;
            }
        }
        Ok(Self { n, data })
    }

    /// The matrix of any [`Distances`]. O(n²).
    ///
    /// # Errors
    /// As [`DistanceMatrix::new`].
    pub fn from_distances<D: Distances + ?Sized>(d: &D) -> Result<Self, MatchingError> {
        Self::from_fn(d.len(), |i, j| d.dist(i, j))
    }
}

impl Distances for DistanceMatrix {
    fn len(&self) -> usize {
        self.n
    }
    fn dist(&self, a: usize, b: usize) -> f64 {
        self.data[a * self.n + b]
    }
}

pub(crate) fn check_distance(from: usize, to: usize, value: f64) -> Result<(), MatchingError> {
    if (0.0..=MAX_DISTANCE).contains(&value) {
        Ok(())
    } else {
        Err(MatchingError::InvalidDistance {
            from,
            to,
            value,
            reason: "must be a number in 0..=MAX_DISTANCE (f64::MAX / 2^64), so tour lengths cannot overflow",
        })
    }
}

/// How [`PlanarPoints`] measures the distance between two points.
///
/// The rounded variants are TSPLIB95's (Reinelt 1995, section 2.1):
/// results are integers stored in `f64`, so tour lengths compare exactly
/// with published optima.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PlanarMetric {
    /// Plain Euclidean distance, not rounded.
    Euclidean,
    /// TSPLIB `EUC_2D`: `nint(sqrt(dx² + dy²))`.
    Euc2d,
    /// TSPLIB `CEIL_2D`: `ceil(sqrt(dx² + dy²))`.
    Ceil2d,
    /// TSPLIB `ATT` pseudo-Euclidean: `r = sqrt((dx² + dy²) / 10)`,
    /// `t = nint(r)`, `t + 1` if `t < r` else `t`.
    Att,
}

/// Points in the plane with a [`PlanarMetric`] (TSPLIB node coordinates).
///
/// ```
/// use dispatchkit_matching::routing::{Distances, PlanarMetric, PlanarPoints};
///
/// let p = PlanarPoints::new(vec![(0.0, 0.0), (3.0, 4.0)], PlanarMetric::Euc2d)?;
/// assert_eq!(p.dist(0, 1), 5.0);
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "PlanarPointsData", into = "PlanarPointsData")
)]
pub struct PlanarPoints {
    points: Vec<(f64, f64)>,
    metric: PlanarMetric,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "PlanarPoints", deny_unknown_fields)]
struct PlanarPointsData {
    points: Vec<(f64, f64)>,
    metric: PlanarMetric,
}

#[cfg(feature = "serde")]
impl TryFrom<PlanarPointsData> for PlanarPoints {
    type Error = MatchingError;
    fn try_from(d: PlanarPointsData) -> Result<Self, MatchingError> {
        PlanarPoints::new(d.points, d.metric)
    }
}

#[cfg(feature = "serde")]
impl From<PlanarPoints> for PlanarPointsData {
    fn from(p: PlanarPoints) -> Self {
        PlanarPointsData {
            points: p.points,
            metric: p.metric,
        }
    }
}

impl PlanarPoints {
    /// Points with `metric`. O(n).
    ///
    /// # Errors
    /// [`MatchingError::InvalidCoordinate`] for a NaN or infinite
    /// coordinate.
    pub fn new(points: Vec<(f64, f64)>, metric: PlanarMetric) -> Result<Self, MatchingError> {
        for (index, &(x, y)) in points.iter().enumerate() {
            if !(x.is_finite() && y.is_finite()) {
                return Err(MatchingError::InvalidCoordinate {
                    index,
                    x,
                    y,
                    reason: "coordinates must be finite",
                });
            }
        }
        Ok(Self { points, metric })
    }

    /// The points.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The metric.
    pub fn metric(&self) -> PlanarMetric {
        self.metric
    }
}

impl Distances for PlanarPoints {
    fn len(&self) -> usize {
        self.points.len()
    }

    fn dist(&self, a: usize, b: usize) -> f64 {
        let (xa, ya) = self.points[a];
        let (xb, yb) = self.points[b];
        let (dx, dy) = (xa - xb, ya - yb);
        let sq = dx * dx + dy * dy;
        match self.metric {
            PlanarMetric::Euclidean => sq.sqrt(),
            PlanarMetric::Euc2d => (sq.sqrt() + 0.5).floor(),
            PlanarMetric::Ceil2d => sq.sqrt().ceil(),
            PlanarMetric::Att => {
                let r = (sq / 10.0).sqrt();
                let t = (r + 0.5).floor();
                if t < r { t + 1.0 } else { t }
            }
        }
    }
}

/// Points on the Earth (`x` = longitude, `y` = latitude, degrees) with
/// great-circle (haversine) distances in metres on the sphere the geo
/// index uses (Redis's radius, 6 372 797.560856 m), computed by `geo`.
///
/// ```
/// use dispatchkit_matching::routing::{Distances, GeoPoints};
/// use geo::Point;
///
/// let p = GeoPoints::new(vec![Point::new(13.4050, 52.5200), Point::new(2.3522, 48.8566)])?;
/// assert!((p.dist(0, 1) / 1000.0 - 878.0).abs() < 2.0); // Berlin – Paris
/// # Ok::<(), dispatchkit_matching::MatchingError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "GeoPointsData", into = "GeoPointsData")
)]
pub struct GeoPoints {
    points: Vec<Point<f64>>,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "GeoPoints", deny_unknown_fields)]
struct GeoPointsData {
    points: Vec<Point<f64>>,
}

#[cfg(feature = "serde")]
impl TryFrom<GeoPointsData> for GeoPoints {
    type Error = MatchingError;
    fn try_from(d: GeoPointsData) -> Result<Self, MatchingError> {
        GeoPoints::new(d.points)
    }
}

#[cfg(feature = "serde")]
impl From<GeoPoints> for GeoPointsData {
    fn from(p: GeoPoints) -> Self {
        GeoPointsData { points: p.points }
    }
}

impl GeoPoints {
    /// Points in degrees. O(n).
    ///
    /// # Errors
    /// [`MatchingError::InvalidCoordinate`] for a non-finite coordinate, a
    /// longitude outside −180..=180 or a latitude outside the Redis range
    /// −85.05112878..=85.05112878.
    pub fn new(points: Vec<Point<f64>>) -> Result<Self, MatchingError> {
        for (index, p) in points.iter().enumerate() {
            check_lon_lat(index, *p)?;
        }
        Ok(Self { points })
    }

    /// The points.
    pub fn points(&self) -> &[Point<f64>] {
        &self.points
    }
}

impl Distances for GeoPoints {
    fn len(&self) -> usize {
        self.points.len()
    }

    fn dist(&self, a: usize, b: usize) -> f64 {
        haversine_m(self.points[a], self.points[b])
    }
}
