//! `GEOSEARCH`: the three walks (k-nearest rings, `ANY` rings, full area
//! scan) over the shards an area touches.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Instant;

use foldhash::fast::RandomState;
use parking_lot::RwLockReadGuard;

use crate::area::ShapeM;
use crate::coord::{EARTH_RADIUS_M, HaversineFrom};
use crate::grid::{COLS, CellRange, angle, cell_key, shard_of};
use crate::rings::{Candidate, CellBound, Near};
use crate::shard::{Shard, Slot};
use crate::{
    Attrs, Center, DriverId, DriverView, Filter, GeoError, GeoIndex, Hit, LonLat, Order, Search,
    Unit,
};

/// Buffers a search keeps on its thread between calls (the k-nearest
/// walk's candidates, the matches found, the shards to lock), so that a
/// warm thread's searches allocate only their lock list instead of an
/// allocator call per buffer and per growth, a measurable part of a
/// k-nearest search's instructions.
pub(crate) struct Scratch {
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) found: Vec<Found>,
    /// The k-nearest walk's held candidates and the ones just outside.
    pub(crate) near: Vec<Near>,
    pub(crate) band: Vec<Near>,
    shards: Vec<usize>,
}

/// A buffer grown past this many elements is dropped instead of kept, so
/// one huge search does not pin its memory on the thread.
const SCRATCH_KEEP: usize = 4_096;

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = const {
        std::cell::Cell::new(Scratch::EMPTY)
    };
}

impl Scratch {
    const EMPTY: Scratch = Scratch {
        candidates: Vec::new(),
        found: Vec::new(),
        near: Vec::new(),
        band: Vec::new(),
        shards: Vec::new(),
    };

    /// The thread's buffers (empty ones if a search on this thread holds
    /// them, e.g. a predicate searching again).
    fn take() -> Scratch {
        SCRATCH.with(|c| c.replace(Scratch::EMPTY))
    }

    /// Gives the buffers back to the thread, emptied; oversized ones are
    /// dropped.
    fn give_back(mut self) {
        for len in [
            self.candidates.capacity(),
            self.found.capacity(),
            self.near.capacity(),
            self.band.capacity(),
        ] {
            if len > SCRATCH_KEEP {
                self = Scratch::EMPTY;
                break;
            }
        }
        self.candidates.clear();
        self.found.clear();
        self.near.clear();
        self.band.clear();
        self.shards.clear();
        SCRATCH.with(|c| c.set(self));
    }
}

/// Equirectangular distance around the centre, used only to skip exact
/// haversines: it is within a factor `1 ± eps` of the true distance for
/// every point the search can accept.
pub(crate) struct Approx {
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

    /// Whether the flat distance is used at all (small reach, not near a
    /// pole).
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// A distance in metres no point of squared flat distance `d2` is
    /// farther than (enabled only; twice the error allowed for).
    #[inline]
    pub(crate) fn upper(&self, d2: f64) -> f64 {
        d2.sqrt() / (1.0 - 2.0 * self.eps) + 0.01
    }

    /// The squared flat distance within which a point is surely within
    /// `r_m` (enabled only; twice the error allowed for).
    #[inline]
    pub(crate) fn inner(&self, r_m: f64) -> f64 {
        let b = (r_m * (1.0 - 2.0 * self.eps) - 0.01).max(0.0);
        b * b
    }

    /// The squared flat distance beyond which a point is surely farther
    /// than `bound_m`; `∞` when the approximation is off.
    #[inline]
    pub(crate) fn cut(&self, bound_m: f64) -> f64 {
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
pub(crate) struct Found {
    pub(crate) d: f64,
    pub(crate) slot: Slot,
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
pub(crate) struct Locked<'a> {
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
    pub(crate) fn shard_of_cell(&self, cx: u32, cy: u32) -> Option<&Shard> {
        self.shard(shard_of(cx, cy, self.mask))
    }

    /// The held shard of cell (`cx`, `cy`) and the cell's arena index, if
    /// it has the cell.
    #[inline]
    fn cell(&self, cx: u32, cy: u32) -> Option<(&Shard, u32)> {
        let shard = self.shard_of_cell(cx, cy)?;
        Some((shard, shard.cell_of.get(cell_key(cx, cy))?))
    }
}

/// Everything a walk needs to judge one slot.
pub(crate) struct Judge<'q, P> {
    /// The centre, with its haversine terms.
    pub(crate) from: HaversineFrom,
    pub(crate) shape: ShapeM,
    pub(crate) filter: &'q Filter,
    pub(crate) approx: Approx,
    now_ms: u64,
    /// The oldest update time still live on the default TTL.
    oldest_live_ms: u64,
    pub(crate) pred: P,
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
    /// hot loop does not allocate its results; the walk's own buffers are
    /// kept per thread, and a search allocates only the short list of the
    /// shard locks it holds.
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
        let mut scratch = Scratch::take();
        let locked = self.lock_range(&range, &mut scratch.shards);
        let now_ms = self.clock.ms(now);
        let mut judge = Judge {
            from: HaversineFrom::new(center),
            shape,
            filter: &q.filter,
            approx: Approx::new(center, shape.reach()),
            now_ms,
            // `updated + ttl > now ⇔ updated ≥ now + 1 − ttl`, in u128 so
            // that a `now` at the clock's end (u64::MAX) does not wrap; a
            // TTL of at least 1 ms keeps the result within u64.
            oldest_live_ms: u64::try_from(
                (u128::from(now_ms) + 1).saturating_sub(u128::from(self.default_ttl_ms)),
            )
            .unwrap_or(u64::MAX),
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
                self.walk_nearest(&locked, &range, &mut judge, k, &mut scratch)
            }
            (Some(k), true) => {
                let mut v = std::mem::take(&mut scratch.found);
                // Never allocate from a caller's count.
                v.reserve(k.min(1024));
                if rings_ok {
                    self.walk_any(&locked, &range, &mut judge, &mut |f| {
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
                let mut v = std::mem::take(&mut scratch.found);
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
        drop(locked);
        let per_unit = q.unit.metres();
        out.extend(found.drain(..).map(|f| {
            let pos = f.slot.pos();
            Hit {
                id: DriverId::stored(f.slot.id),
                distance: f.d / per_unit,
                pos,
                attrs: Attrs::unpack(f.slot.attrs()),
                hash: q.with_hash.then(|| pos.redis_geohash()),
            }
        }));
        scratch.found = found;
        scratch.give_back();
        Ok(())
    }

    /// Read-locks the shards `range` touches, in shard order (`shards` is
    /// a buffer for their list).
    fn lock_range(&self, range: &CellRange, shards: &mut Vec<usize>) -> Locked<'_> {
        shards.clear();
        if !range.shards_into(self.mask, shards) {
            shards.extend(0..self.shards.len());
        }
        Locked {
            guards: shards.iter().map(|&s| (s, self.read_shard(s))).collect(),
            mask: self.mask,
        }
    }

    /// Distance of a slot if it is a match: [`prefilter`](Self::prefilter),
    /// then [`refine`](Self::refine).
    #[inline]
    pub(crate) fn judge<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        j: &mut Judge<'_, P>,
        shard: &Shard,
        s: &Slot,
        cut: f64,
    ) -> Option<f64> {
        self.prefilter(j, shard, s, cut)?;
        self.refine(j, shard, s)
    }

    /// The cheap tests of a slot: not free, the attribute filter, the flat
    /// distance against `cut`, liveness. Returns the squared flat distance.
    /// Tests in turn, for the walks that look at one slot at a time and
    /// refine it at once (most slots of an area pass, and the refinement
    /// costs far more); a k-nearest scan uses [`sift_with`](Self::sift_with).
    #[inline]
    pub(crate) fn prefilter<P>(
        &self,
        j: &Judge<'_, P>,
        shard: &Shard,
        s: &Slot,
        cut: f64,
    ) -> Option<f64> {
        if s.is_free() || !j.filter.matches_packed(s.attrs()) {
            return None;
        }
        let d2 = j.approx.d2(s);
        (d2 <= cut && self.is_live_for(j, shard, s)).then_some(d2)
    }

    /// [`prefilter`](Self::prefilter)'s tests as a verdict and the squared
    /// flat distance (meaningful only if it passed), with the attribute
    /// test given (a scan picks the cheapest form of the filter once,
    /// [`Filter::attr_test`]), every test evaluated and combined without a
    /// branch, so that a scan of a cell's slots pays no mispredicted branch
    /// per driver.
    #[inline(always)]
    pub(crate) fn sift_with<P>(
        &self,
        j: &Judge<'_, P>,
        shard: &Shard,
        s: &Slot,
        cut: f64,
        attrs_pass: impl Fn(u32) -> bool,
    ) -> (bool, f64) {
        let d2 = j.approx.d2(s);
        let cheap = !s.is_free() & attrs_pass(s.attrs()) & (d2 <= cut);
        (cheap & self.is_live_for(j, shard, s), d2)
    }

    /// Whether `s` is live at the search's time. On the default TTL one
    /// compare of its update time with the oldest still live (`updated +
    /// ttl > now ⇔ updated ≥ now + 1 − ttl`); only a per-driver TTL (rare)
    /// looks its TTL up.
    #[inline(always)]
    fn is_live_for<P>(&self, j: &Judge<'_, P>, shard: &Shard, s: &Slot) -> bool {
        if s.custom_ttl() {
            self.is_live(shard, s, j.now_ms)
        } else {
            s.updated_ms() >= j.oldest_live_ms
        }
    }

    /// The exact shape test of a slot that passed the cheap tests, then the
    /// caller's predicate: its distance if it is a match.
    #[inline]
    pub(crate) fn refine<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        j: &mut Judge<'_, P>,
        shard: &Shard,
        s: &Slot,
    ) -> Option<f64> {
        let d = j.shape.test_from(&j.from, s.pos())?;
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
        let near = CellBound::new(j.from.origin());
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
                let Some((shard, c)) = locked.cell(cx, cy as u32) else {
                    continue;
                };
                for s in shard.leaf_slots(c).flatten() {
                    if let Some(d) = self.judge(j, shard, s, cut)
                        && !emit(Found { d, slot: *s })
                    {
                        return;
                    }
                }
            }
        }
    }
}
