//! `GEOSEARCH`: the query type and the three walks (k-nearest rings, `ANY`
//! rings, full area scan).

use crate::prefetch::prefetch;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use foldhash::fast::RandomState;
use std::f64::consts::FRAC_PI_2;
use std::time::Instant;

use parking_lot::RwLockReadGuard;

use geo::{Distance, Point};

use crate::coord::{EARTH_RADIUS_M, LAT_LIMIT, REDIS_HAVERSINE, redis_cell_centre};
use crate::grid::{
    COLS, CellRange, ROWS, angle, cell_key, col_of, col_west, radius_range, row_of, row_south,
    shard_of,
};
use crate::shard::{Shard, Slot};
use crate::{Attrs, DriverId, DriverView, Filter, GeoError, GeoIndex, LonLat, Unit, haversine_m};

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
    center: Center,
    shape: Shape,
    unit: Unit,
    order: Option<Order>,
    count: Option<usize>,
    any: bool,
    with_hash: bool,
    filter: Filter,
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
    fn validate(&self) -> Result<ShapeM, GeoError> {
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

/// Shapes that reach less than this many metres are judged exactly as
/// Redis judges them: on the centres of Redis's 52-bit cells (≤ 0.6 m
/// from the stored points), so that `BYRADIUS 0`, `BYBOX 0 0` and other
/// sub-metre shapes return the members Redis returns (a member's own
/// cell, its duplicates and same-cell neighbours, at distance 0).
const REDIS_EXACT_BELOW_M: f64 = 10.0;

/// The centre Redis measures from, when judging on cell centres: a
/// member's cell centre (`FROMMEMBER`: Redis decodes the member's score);
/// for a point, the cell centre if the point is that centre as far as a
/// `LonLat` can tell (e.g. a `GEOPOS` result passed back), else the point.
fn redis_centre(c: LonLat, member: bool) -> (f64, f64) {
    let cell = redis_cell_centre(c.redis_geohash());
    if member || LonLat::new(cell.0, cell.1).is_ok_and(|p| p == c) {
        cell
    } else {
        (c.lon(), c.lat())
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

#[derive(Debug, Clone, Copy)]
enum ShapeM {
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
enum ExactShape {
    Radius(f64),
    Box(f64, f64),
}

impl ShapeM {
    /// Switches a tiny shape to Redis's cell-centre arithmetic.
    fn exact_if_tiny(self, c: LonLat, member: bool) -> Self {
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
    fn reach(self) -> f64 {
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

    fn range(self, c: LonLat) -> CellRange {
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

    /// Distance in metres if `p` is inside, Redis's tests exactly.
    #[inline]
    fn test(self, c: LonLat, p: LonLat) -> Option<f64> {
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

/// Equirectangular distance around the centre, used only to skip exact
/// haversines: it is within a factor `1 ± eps` of the true distance for
/// every point the search can accept.
struct Approx {
    lon0: u32,
    lat0: u32,
    kx: f64,
    ky: f64,
    eps: f64,
    enabled: bool,
}

impl Approx {
    fn new(c: LonLat, reach_m: f64) -> Self {
        let (lon0, lat0) = c.raw();
        let a = angle(reach_m);
        let phi = c.lat().abs().to_radians();
        let step = (180.0 / 4_294_967_296.0_f64).to_radians() * EARTH_RADIUS_M;
        // Relative error of the flat approximation over the reach: about
        // tan φ · (reach / R) / 2 plus (reach / R)²; take four times that.
        let enabled = a <= 0.02 && phi + a <= 80f64.to_radians();
        Approx {
            lon0,
            lat0,
            kx: 2.0 * step * phi.cos(),
            ky: step,
            eps: 2.0 * (1.0 + (phi + a).tan()) * a + 1e-9,
            enabled,
        }
    }

    /// Squared flat distance, metres².
    #[inline]
    fn d2(&self, s: &Slot) -> f64 {
        let dx = f64::from(s.lon_q.wrapping_sub(self.lon0) as i32) * self.kx;
        let dy = (i64::from(s.lat_q) - i64::from(self.lat0)) as f64 * self.ky;
        dx * dx + dy * dy
    }

    /// The squared flat distance beyond which a point is surely farther
    /// than `bound_m`; `∞` when the approximation is off.
    #[inline]
    fn cut(&self, bound_m: f64) -> f64 {
        if self.enabled {
            let b = bound_m * (1.0 + self.eps) + 0.01;
            b * b
        } else {
            f64::INFINITY
        }
    }
}

/// A candidate kept by a walk, ordered by (distance, id).
#[derive(Debug, Clone, Copy)]
struct Found {
    d: f64,
    slot: Slot,
}

impl PartialEq for Found {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Found {}
impl PartialOrd for Found {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Found {
    fn cmp(&self, o: &Self) -> Ordering {
        // Distances are ≥ 0 and never NaN: their bits order like the values.
        (self.d.to_bits(), self.slot.id).cmp(&(o.d.to_bits(), o.slot.id))
    }
}

/// The shards a search holds, read-locked in ascending order.
struct Locked<'a> {
    guards: Vec<(usize, RwLockReadGuard<'a, Shard>)>,
    mask: usize,
}

impl Locked<'_> {
    #[inline]
    fn shard(&self, s: usize) -> Option<&Shard> {
        self.guards
            .binary_search_by_key(&s, |(i, _)| *i)
            .ok()
            .map(|i| &*self.guards[i].1)
    }

    /// The held shard of cell (`cx`, `cy`).
    #[inline]
    fn shard_of_cell(&self, cx: u32, cy: u32) -> Option<&Shard> {
        self.shard(shard_of(cx, cy, self.mask))
    }

    #[inline]
    fn cell(&self, cx: u32, cy: u32) -> Option<(&Shard, &[Slot])> {
        let shard = self.shard_of_cell(cx, cy)?;
        Some((shard, slots_of(shard, cell_key(cx, cy))?))
    }
}

/// The slots of the cell with key `key` in `shard`, if it has one.
#[inline]
fn slots_of(shard: &Shard, key: u32) -> Option<&[Slot]> {
    let c = shard.cell_of.get(key)?;
    Some(&shard.cells[c as usize].slots)
}

/// Everything a walk needs to judge one slot.
struct Judge<'q, P> {
    center: LonLat,
    shape: ShapeM,
    filter: &'q Filter,
    approx: Approx,
    now_ms: u64,
    pred: P,
}

impl GeoIndex {
    /// Runs a `GEOSEARCH`: the drivers visible at `now` inside the area that
    /// pass the filter, ordered and limited as the query says.
    ///
    /// Cost: a k-nearest query (`COUNT k`, ascending) visits rings of
    /// ~600 m cells outwards from the centre and stops as soon as no
    /// unvisited cell can hold a nearer driver; other queries visit every
    /// cell of the area, O(cells + matches · log matches).
    ///
    /// # Errors
    /// [`GeoError::InvalidValue`] for a NaN, infinite, zero or negative
    /// radius / box side; [`GeoError::InvalidCount`] for `COUNT 0` or `ANY`
    /// without `COUNT`; [`GeoError::UnknownDriver`] for a `FROMMEMBER` driver
    /// that is absent or expired.
    pub fn search_at(&self, q: &Search, now: Instant) -> Result<Vec<Hit>, GeoError> {
        let mut out = Vec::new();
        self.search_into_at(q, now, &mut out)?;
        Ok(out)
    }

    /// [`GeoIndex::search_at`] into a caller's buffer (cleared first), so a
    /// hot loop allocates nothing.
    ///
    /// # Errors
    /// As [`GeoIndex::search_at`].
    pub fn search_into_at(
        &self,
        q: &Search,
        now: Instant,
        out: &mut Vec<Hit>,
    ) -> Result<(), GeoError> {
        self.run(q, now, |_: &Shard, _: &Slot| true, out)
    }

    /// [`GeoIndex::search_at`] with an extra predicate on the drivers that
    /// pass the area and the attribute filter.
    ///
    /// `pred` runs after the search has released its locks, on a copy of
    /// each candidate as the search saw it, so it may call into the index
    /// (a claim, a lookup). With `COUNT k`, the search takes the first
    /// `max(k, 16)` candidates in the query's order and, while fewer than
    /// `k` of them pass and more exist, searches again for four times as
    /// many; `pred` is called at most once per driver.
    ///
    /// # Errors
    /// As [`GeoIndex::search_at`].
    pub fn search_where_at(
        &self,
        q: &Search,
        now: Instant,
        mut pred: impl FnMut(&DriverView) -> bool,
    ) -> Result<Vec<Hit>, GeoError> {
        let mut round = *q;
        round.count = q.count.map(|k| k.max(16));
        // Views of the candidates as the walk saw them, by id; verdicts of
        // earlier rounds (only kept when a round needs a successor).
        let mut views: Vec<DriverView> = Vec::new();
        let mut verdicts: Vec<(DriverId, bool)> = Vec::new();
        let mut judged: HashMap<DriverId, bool, RandomState> = HashMap::default();
        let mut hits = Vec::new();
        loop {
            views.clear();
            self.run(
                &round,
                now,
                |shard: &Shard, slot: &Slot| {
                    views.push(self.view(shard, slot));
                    true
                },
                &mut hits,
            )?;
            // No lock is held from here on.
            views.sort_unstable_by_key(|v| v.id);
            let exhausted = round.count.is_none_or(|k| hits.len() < k);
            let mut out = Vec::new();
            for h in &hits {
                let pass = match judged.get(&h.id) {
                    Some(&v) => v,
                    None => {
                        let v = views
                            .binary_search_by_key(&h.id, |v| v.id)
                            .is_ok_and(|i| pred(&views[i]));
                        verdicts.push((h.id, v));
                        v
                    }
                };
                if pass {
                    out.push(*h);
                    if q.count == Some(out.len()) {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
            judged.extend(verdicts.drain(..));
            round.count = round.count.map(|k| k.saturating_mul(4));
        }
    }

    /// The `k` drivers nearest to `center` within `max_radius_m` metres that
    /// pass `filter`, nearest first (distances in metres): a k-nearest walk
    /// that visits only the cells the answer needs.
    ///
    /// # Errors
    /// [`GeoError::InvalidCount`] for `k == 0`; [`GeoError::InvalidValue`]
    /// for a bad radius.
    pub fn nearest_at(
        &self,
        center: LonLat,
        k: usize,
        max_radius_m: f64,
        filter: &Filter,
        now: Instant,
    ) -> Result<Vec<Hit>, GeoError> {
        let q = Search::radius(center, max_radius_m, Unit::Meters)
            .count(k)
            .filter(*filter);
        self.search_at(&q, now)
    }

    fn run<P>(&self, q: &Search, now: Instant, pred: P, out: &mut Vec<Hit>) -> Result<(), GeoError>
    where
        P: FnMut(&Shard, &Slot) -> bool,
    {
        out.clear();
        let shape = q.validate()?;
        let center = match q.center {
            Center::Point(p) => p,
            Center::Member(id) => self.position_at(id, now)?,
        };
        let shape = shape.exact_if_tiny(center, matches!(q.center, Center::Member(_)));
        let range = shape.range(center);
        let locked = self.lock_range(&range);
        let mut judge = Judge {
            center,
            shape,
            filter: &q.filter,
            approx: Approx::new(center, shape.reach()),
            now_ms: self.clock.ms(now),
            pred,
        };
        let order = q.effective_order();
        // Rings pay off when the area has few cells compared with the cells
        // stored in it; a huge area over a sparse index is cheaper to scan.
        let stored: usize = locked.guards.iter().map(|(_, g)| g.cells.len()).sum();
        let rings_ok = matches!(shape, ShapeM::Radius(_))
            && range.cols() < u64::from(COLS / 2)
            && range.rows().saturating_mul(range.cols()) <= 4 * stored as u64 + 64;
        let mut found: Vec<Found> = match (q.count, q.any) {
            (Some(k), false) if order == Some(Order::Asc) && rings_ok => {
                self.walk_nearest(&locked, &range, &mut judge, k)
            }
            (Some(k), true) => {
                // Never allocate from a caller's count.
                let mut v = Vec::with_capacity(k.min(1024));
                if rings_ok {
                    self.walk_rings(&locked, &range, &mut judge, &mut |f, _| {
                        v.push(f);
                        v.len() < k
                    });
                } else {
                    self.walk_area(&locked, &range, &mut judge, &mut |f| {
                        v.push(f);
                        v.len() < k
                    });
                }
                v
            }
            _ => {
                let mut v = Vec::new();
                self.walk_area(&locked, &range, &mut judge, &mut |f| {
                    v.push(f);
                    true
                });
                v
            }
        };
        match order {
            Some(Order::Asc) => found.sort_unstable(),
            Some(Order::Desc) => found.sort_unstable_by(|a, b| b.cmp(a)),
            None => {}
        }
        if let Some(k) = q.count {
            found.truncate(k);
        }
        let per_unit = q.unit.metres();
        out.extend(found.into_iter().map(|f| {
            let pos = f.slot.pos();
            Hit {
                id: DriverId::stored(f.slot.id),
                distance: f.d / per_unit,
                pos,
                attrs: Attrs::unpack(f.slot.attrs()),
                hash: q.with_hash.then(|| pos.redis_geohash()),
            }
        }));
        Ok(())
    }

    fn lock_range(&self, range: &CellRange) -> Locked<'_> {
        let shards = range
            .shards(self.mask)
            .unwrap_or_else(|| (0..self.shards.len()).collect());
        Locked {
            guards: shards
                .into_iter()
                .map(|s| (s, self.read_shard(s)))
                .collect(),
            mask: self.mask,
        }
    }

    /// Distance of a slot if it is a match: free slots, filter, liveness,
    /// the flat pre-check against `cut`, the exact shape test, then the
    /// caller's predicate.
    #[inline]
    fn judge<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        j: &mut Judge<'_, P>,
        shard: &Shard,
        s: &Slot,
        cut: f64,
    ) -> Option<f64> {
        if s.is_free() || !j.filter.matches_packed(s.attrs()) || j.approx.d2(s) > cut {
            return None;
        }
        if !self.is_live(shard, s, j.now_ms) {
            return None;
        }
        let d = j.shape.test(j.center, s.pos())?;
        (j.pred)(shard, s).then_some(d)
    }

    /// Every match in the area, in cell order; `emit` returns false to stop.
    fn walk_area<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        emit: &mut dyn FnMut(Found) -> bool,
    ) {
        let reach = j.shape.reach();
        let cut = j.approx.cut(reach);
        let near = CellBound::new(j.center);
        let cells_in_range = range.rows().saturating_mul(range.cols());
        let stored: usize = locked.guards.iter().map(|(_, g)| g.cells.len()).sum();
        if cells_in_range > 2 * stored as u64 {
            // Sparse index, huge area: visit the stored cells instead.
            for (_, shard) in &locked.guards {
                for cell in &shard.cells {
                    let (cx, cy) = crate::grid::key_xy(cell.key);
                    if !range.contains(cx, cy) || near.wrapped(cx, cy) > reach {
                        continue;
                    }
                    for s in &cell.slots {
                        if let Some(d) = self.judge(j, shard, s, cut)
                            && !emit(Found { d, slot: *s })
                        {
                            return;
                        }
                    }
                }
            }
            return;
        }
        for cy in range.row_lo..=range.row_hi {
            for col in range.col_lo..=range.col_hi.min(range.col_lo + i64::from(COLS) - 1) {
                if near.at(col, cy) > reach {
                    continue;
                }
                let cx = col.rem_euclid(i64::from(COLS)) as u32;
                let Some((shard, slots)) = locked.cell(cx, cy as u32) else {
                    continue;
                };
                for s in slots {
                    if let Some(d) = self.judge(j, shard, s, cut)
                        && !emit(Found { d, slot: *s })
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Matches ring by ring outwards from the centre's cell; `emit(found,
    /// bound)` returns false to stop. Stops by itself once the nearest
    /// unvisited cell is farther than `j`'s bound, which `bound()` reports.
    fn walk_rings<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        emit: &mut dyn FnMut(Found, &mut f64) -> bool,
    ) {
        let mut bound = j.shape.reach();
        let mut cut = j.approx.cut(bound);
        let (lon0, lat0) = (j.center.lon(), j.center.lat());
        let cx0 = col_of(lon0);
        let cy0 = row_of(lat0);
        let max_r = (cx0 - range.col_lo)
            .max(range.col_hi - cx0)
            .max(cy0 - range.row_lo)
            .max(range.row_hi - cy0)
            .max(0);
        let cos0 = lat0.to_radians().cos();
        let near = CellBound::new(j.center);
        // The ring's cells that can hold a match, nearest first, with their
        // slots. A cell costs three dependent cache misses (index word, cell
        // header, slots), so the ring is resolved in three passes, each
        // prefetching the memory the next one reads for every cell of the ring:
        // the misses of a pass overlap instead of queueing one cell at a time.
        let mut cells: Vec<(f64, &Shard, u32, &[Slot])> = Vec::new();
        for r in 0..=max_r {
            if r > 0 && ring_lower_bound(lon0, lat0, cos0, cx0, cy0, r - 1) > bound {
                return;
            }
            cells.clear();
            for (dx, dy) in ring(r) {
                let (col, cy) = (cx0 + dx, cy0 + dy);
                if cy < range.row_lo
                    || cy > range.row_hi
                    || col < range.col_lo
                    || col > range.col_hi
                {
                    continue;
                }
                let b = near.at(col, cy);
                if b > bound {
                    continue;
                }
                let cx = col.rem_euclid(i64::from(COLS)) as u32;
                let cy = cy as u32;
                if let Some(shard) = locked.shard_of_cell(cx, cy) {
                    let key = cell_key(cx, cy);
                    shard.cell_of.prefetch(key);
                    cells.push((b, shard, key, &[]));
                }
            }
            for (_, shard, key, slots) in &mut cells {
                *slots = slots_of(shard, *key).unwrap_or_default();
            }
            for &(_, _, _, slots) in &cells {
                // Every 64-byte line of the slots (24-byte slots: one in two
                // lands on each line at least once).
                for s in slots.iter().step_by(2) {
                    prefetch(s);
                }
            }
            cells.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            for &(b, shard, _, slots) in &cells {
                if b > bound {
                    continue;
                }
                for s in slots {
                    if let Some(d) = self.judge(j, shard, s, cut) {
                        let before = bound;
                        if !emit(Found { d, slot: *s }, &mut bound) {
                            return;
                        }
                        if bound != before {
                            cut = j.approx.cut(bound);
                        }
                    }
                }
            }
        }
    }

    /// The `k` nearest matches, ascending by (distance, id).
    fn walk_nearest<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        k: usize,
    ) -> Vec<Found> {
        let mut heap: BinaryHeap<Found> = BinaryHeap::with_capacity(k.min(1024) + 1);
        self.walk_rings(locked, range, j, &mut |f, bound| {
            if heap.len() < k {
                heap.push(f);
            } else if let Some(top) = heap.peek()
                && f < *top
            {
                heap.pop();
                heap.push(f);
            }
            if heap.len() == k
                && let Some(top) = heap.peek()
            {
                *bound = bound.min(top.d);
            }
            true
        });
        heap.into_sorted_vec()
    }
}

/// Lower bounds on the distance from the centre to any point of a cell,
/// so walks skip cells that cannot hold a match.
struct CellBound {
    lon0: f64,
    lat0: f64,
    cos0: f64,
    cx0: i64,
}

impl CellBound {
    fn new(c: LonLat) -> Self {
        CellBound {
            lon0: c.lon(),
            lat0: c.lat(),
            cos0: c.lat().to_radians().cos(),
            cx0: col_of(c.lon()),
        }
    }

    /// Bound for the cell at unwrapped column `col` (same frame as the
    /// centre's column) and row `row`: the larger of the latitude gap
    /// `R·Δφ` and the meridian bound `R·asin(cos φ₀ · sin Δλ)`.
    #[inline]
    fn at(&self, col: i64, row: i64) -> f64 {
        let south = row_south(row);
        let north = south + crate::grid::CELL_DEG;
        let dlat = (south - self.lat0).max(self.lat0 - north).max(0.0);
        let west = col_west(col);
        let east = west + crate::grid::CELL_DEG;
        let dlon = (west - self.lon0).max(self.lon0 - east).max(0.0);
        let b_lat = dlat.to_radians() * EARTH_RADIUS_M;
        // asin(x) ≥ x and sin(d) ≥ d − d³/6: a trig-free lower bound on
        // R·asin(cos φ₀ · sin Δλ).
        let d = dlon.to_radians().min(FRAC_PI_2);
        let b_lon = self.cos0 * d * (1.0 - d * d / 6.0) * EARTH_RADIUS_M;
        b_lat.max(b_lon) * (1.0 - 1e-12) - 1e-6
    }

    /// Bound for a cell given by wrapped column `cx`: takes the copy of the
    /// column nearest the centre's.
    #[inline]
    fn wrapped(&self, cx: u32, cy: u32) -> f64 {
        let cols = i64::from(COLS);
        let d = (i64::from(cx) - self.cx0 + cols / 2).rem_euclid(cols) - cols / 2;
        self.at(self.cx0 + d, i64::from(cy))
    }
}

/// The cell offsets of ring `r` (Chebyshev distance `r` from the centre),
/// walking the perimeter once.
fn ring(r: i64) -> impl Iterator<Item = (i64, i64)> {
    let n = if r == 0 { 1 } else { 8 * r };
    (0..n).map(move |i| {
        if r == 0 {
            return (0, 0);
        }
        let side = 2 * r;
        match i / side {
            0 => (-r + i, -r),
            1 => (r, -r + (i - side)),
            2 => (r - (i - 2 * side), r),
            _ => (-r, r - (i - 3 * side)),
        }
    })
}

/// A lower bound (metres) on the distance from the centre to any point
/// outside the rectangle of rings 0..=r: the nearer of the latitude edges
/// (`R·Δφ`) and the longitude edges (the distance to a meridian Δλ away,
/// `R·asin(cos φ₀ · sin Δλ)`).
fn ring_lower_bound(lon0: f64, lat0: f64, cos0: f64, cx0: i64, cy0: i64, r: i64) -> f64 {
    let north = if cy0 + r + 1 >= i64::from(ROWS) || row_south(cy0 + r + 1) > LAT_LIMIT {
        f64::INFINITY
    } else {
        (row_south(cy0 + r + 1) - lat0).to_radians() * EARTH_RADIUS_M
    };
    let south = if cy0 - r <= 0 || row_south(cy0 - r) < -LAT_LIMIT {
        f64::INFINITY
    } else {
        (lat0 - row_south(cy0 - r)).to_radians() * EARTH_RADIUS_M
    };
    let dlon = (col_west(cx0 + r + 1) - lon0).min(lon0 - col_west(cx0 - r));
    let lon = if 2 * r + 1 >= i64::from(COLS) {
        f64::INFINITY
    } else {
        (cos0 * dlon.to_radians().min(FRAC_PI_2).sin()).asin() * EARTH_RADIUS_M
    };
    // A hair under, against rounding in the edge arithmetic.
    north.min(south).min(lon) * (1.0 - 1e-12) - 1e-6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_cover_each_cell_once() {
        for r in 0..5 {
            let cells: Vec<_> = ring(r).collect();
            assert_eq!(cells.len() as i64, if r == 0 { 1 } else { 8 * r });
            let mut sorted = cells.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), cells.len());
            assert!(cells.iter().all(|&(x, y)| x.abs().max(y.abs()) == r));
        }
    }

    #[test]
    fn ring_bound_is_below_every_point_outside() {
        // Points just outside the rectangle of rings 0..=r are never closer
        // than the bound.
        for &(lon0, lat0) in &[
            (0.001, 0.002),
            (-122.33, 47.61),
            (179.999, 60.0),
            (10.0, -70.0),
        ] {
            let c = LonLat::new(lon0, lat0).unwrap();
            let (cx0, cy0) = (col_of(c.lon()), row_of(c.lat()));
            let cos0 = c.lat().to_radians().cos();
            for r in 0..6 {
                let b = ring_lower_bound(c.lon(), c.lat(), cos0, cx0, cy0, r);
                for (dx, dy) in ring(r + 1) {
                    let (col, row) = (cx0 + dx, cy0 + dy);
                    // The cell's corners and edge midpoints.
                    for (fx, fy) in [
                        (0.0, 0.0),
                        (1.0, 0.0),
                        (0.0, 1.0),
                        (1.0, 1.0),
                        (0.5, 0.0),
                        (0.0, 0.5),
                    ] {
                        let lon = col_west(col) + fx * crate::grid::CELL_DEG;
                        let lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
                        let lat = row_south(row) + fy * crate::grid::CELL_DEG;
                        if let Ok(p) = LonLat::new(lon, lat) {
                            assert!(
                                haversine_m(c, p) >= b,
                                "r={r} ({lon},{lat}) nearer than bound {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}
