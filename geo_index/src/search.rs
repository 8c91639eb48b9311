//! `GEOSEARCH`: the three walks (k-nearest rings, `ANY` rings, full area
//! scan) over the shards an area touches.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::f64::consts::FRAC_PI_2;
use std::time::Instant;

use foldhash::fast::RandomState;
use parking_lot::RwLockReadGuard;

use crate::area::ShapeM;
use crate::coord::{EARTH_RADIUS_M, LAT_LIMIT};
use crate::grid::{
    COLS, CellRange, ROWS, angle, cell_key, col_of, col_west, row_of, row_south, shard_of,
};
use crate::prefetch::prefetch;
use crate::shard::{Shard, Slot};
use crate::{
    Attrs, Center, DriverId, DriverView, Filter, GeoError, GeoIndex, Hit, LonLat, Order, Search,
    Unit,
};

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
    use crate::haversine_m;

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
