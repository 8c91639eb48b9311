//! The `GEOSEARCH` query, built like the command, and its result rows.

use crate::area::ShapeM;
use crate::{Attrs, DriverId, Filter, GeoError, LonLat, Unit};

/// Where a search is centred (`FROMLONLAT` / `FROMMEMBER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Center {
    /// `FROMLONLAT lon lat`.
    Point(LonLat),
    /// `FROMMEMBER id`: the driver's position; an unknown or expired driver
    /// is an error.
    Member(DriverId),
}

/// The search area (`BYRADIUS` / `BYBOX`), in the search's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `BYRADIUS r`: haversine distance ≤ r.
    Radius(f64),
    /// `BYBOX width height`, Redis's definition: latitude distance
    /// `R·|Δφ|` ≤ height/2 and the distance along the member's parallel to
    /// the centre's meridian ≤ width/2.
    Box(f64, f64),
}

/// Result order (`ASC` / `DESC`). Ties in distance are broken by driver id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Nearest first.
    Asc,
    /// Farthest first (the exact reverse of `Asc`).
    Desc,
}

/// A `GEOSEARCH` query, built like the command.
///
/// `COUNT n` without `ANY` and without an order implies `ASC`, as in Redis;
/// `ANY` stops the walk after `n` matches (nearest cells first, so the
/// matches are near but not necessarily the nearest).
///
/// ```
/// use dispatchkit_geo_index::{DriverId, Filter, LonLat, Search, Unit};
///
/// // GEOSEARCH drivers FROMLONLAT -122.33 47.61 BYRADIUS 5 km ASC COUNT 10
/// let q = Search::radius(LonLat::new(-122.33, 47.61)?, 5.0, Unit::Kilometers)
///     .count(10)
///     .filter(Filter::available());
/// // GEOSEARCH drivers FROMMEMBER 7 BYBOX 4 2 mi DESC WITHHASH
/// let q2 = Search::member_box(DriverId::new(7)?, 4.0, 2.0, Unit::Miles).desc().with_hash();
/// # let _ = (q, q2);
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a Search does nothing until passed to GeoIndex::search_at"]
pub struct Search {
    pub(crate) center: Center,
    pub(crate) shape: Shape,
    pub(crate) unit: Unit,
    pub(crate) order: Option<Order>,
    pub(crate) count: Option<usize>,
    pub(crate) any: bool,
    pub(crate) with_hash: bool,
    pub(crate) filter: Filter,
}

impl Search {
    /// `FROMLONLAT center BYRADIUS radius unit`.
    pub fn radius(center: LonLat, radius: f64, unit: Unit) -> Self {
        Search::new(Center::Point(center), Shape::Radius(radius), unit)
    }

    /// `FROMLONLAT center BYBOX width height unit`.
    pub fn boxed(center: LonLat, width: f64, height: f64, unit: Unit) -> Self {
        Search::new(Center::Point(center), Shape::Box(width, height), unit)
    }

    /// `FROMMEMBER id BYRADIUS radius unit`.
    pub fn member_radius(id: DriverId, radius: f64, unit: Unit) -> Self {
        Search::new(Center::Member(id), Shape::Radius(radius), unit)
    }

    /// `FROMMEMBER id BYBOX width height unit`.
    pub fn member_box(id: DriverId, width: f64, height: f64, unit: Unit) -> Self {
        Search::new(Center::Member(id), Shape::Box(width, height), unit)
    }

    /// Any centre and shape.
    pub fn new(center: Center, shape: Shape, unit: Unit) -> Self {
        Search {
            center,
            shape,
            unit,
            order: None,
            count: None,
            any: false,
            with_hash: false,
            filter: Filter::new(),
        }
    }

    /// `COUNT n` (must be > 0).
    pub fn count(mut self, n: usize) -> Self {
        self.count = Some(n);
        self
    }

    /// `ANY` (requires `COUNT`).
    pub fn any(mut self) -> Self {
        self.any = true;
        self
    }

    /// `ASC`.
    pub fn asc(mut self) -> Self {
        self.order = Some(Order::Asc);
        self
    }

    /// `DESC`.
    pub fn desc(mut self) -> Self {
        self.order = Some(Order::Desc);
        self
    }

    /// `WITHHASH`: fill [`Hit::hash`] with Redis's 52-bit geohash.
    /// (`WITHDIST` and `WITHCOORD` are always on: every hit carries both.)
    pub fn with_hash(mut self) -> Self {
        self.with_hash = true;
        self
    }

    /// Attribute filter applied inside the walk.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = f;
        self
    }

    /// The centre.
    pub fn center(&self) -> Center {
        self.center
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The unit of the shape and of [`Hit::distance`].
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The effective order: as set, or `ASC` when `COUNT` is set without
    /// `ANY` (Redis's rule), else unsorted.
    pub fn effective_order(&self) -> Option<Order> {
        match (self.order, self.count, self.any) {
            (Some(o), _, _) => Some(o),
            (None, Some(_), false) => Some(Order::Asc),
            _ => None,
        }
    }

    /// The `COUNT`, if any.
    pub fn count_limit(&self) -> Option<usize> {
        self.count
    }

    /// Whether `ANY` is set.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether `WITHHASH` is set.
    pub fn wants_hash(&self) -> bool {
        self.with_hash
    }

    /// The attribute filter.
    pub fn attr_filter(&self) -> &Filter {
        &self.filter
    }

    /// Checks the query; returns the shape in metres.
    pub(crate) fn validate(&self) -> Result<ShapeM, GeoError> {
        let m = self.unit.metres();
        // Redis accepts 0 (the centre's own 52-bit cell) and infinity
        // (everything); it rejects NaN and negative values.
        let size = |what, v: f64| {
            if v >= 0.0 {
                Ok(v * m)
            } else {
                Err(GeoError::InvalidValue {
                    what,
                    value: v,
                    reason: "must be a number >= 0 (0 and infinity are allowed, as in Redis)",
                })
            }
        };
        let shape = match self.shape {
            Shape::Radius(r) => ShapeM::Radius(size("radius", r)?),
            Shape::Box(w, h) => ShapeM::Box(size("box width", w)?, size("box height", h)?),
        };
        if self.count == Some(0) {
            return Err(GeoError::InvalidCount {
                count: Some(0),
                reason: "COUNT must be > 0",
            });
        }
        if self.any && self.count.is_none() {
            return Err(GeoError::InvalidCount {
                count: None,
                reason: "the ANY argument requires COUNT argument",
            });
        }
        Ok(shape)
    }
}

/// One search result (`WITHDIST` and `WITHCOORD` always, `WITHHASH` on
/// request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The driver.
    pub id: DriverId,
    /// Haversine distance from the centre, in the search's unit.
    pub distance: f64,
    /// The driver's position.
    pub pos: LonLat,
    /// The driver's attributes.
    pub attrs: Attrs,
    /// Redis's 52-bit geohash of `pos`, with [`Search::with_hash`].
    pub hash: Option<u64>,
}
