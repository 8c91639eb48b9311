//! The ring walks of `GEOSEARCH`: cells visited in rings outwards from the
//! centre's cell, for `ANY` and for the k-nearest walk, with the lower
//! bounds that let a walk skip cells and stop.
//!
//! The k-nearest walk visits cells nearest first and skips a cell the
//! bound has passed. A cell's slots are first sifted by the cheap tests
//! (free, attribute filter, the flat distance against the current bound,
//! liveness) with no branch per slot. Then, where the flat
//! (equirectangular) distance is on — every search whose radius is under
//! about 127 km away from the poles — the candidates compete on flat
//! distance alone: the `k` nearest so far are held, their farthest bounds
//! the walk, and only the final `k` (plus the rare candidates within the
//! flat distance's error of the `k`-th) get the exact haversine, so a
//! search makes about `k` exact tests however dense the cells. Elsewhere a
//! cell's `k` flat-nearest candidates are refined first and the rest are
//! mostly cut by their flat distance.

use std::collections::BinaryHeap;
use std::f64::consts::FRAC_PI_2;

use crate::attrs::AttrTest;
use crate::coord::{EARTH_RADIUS_M, LAT_LIMIT};
use crate::grid::{
    COLS, CellRange, ROWS, cell_key, col_of, col_west, key_xy, ring, row_of, row_south,
};
use crate::prefetch::{Level, prefetch_lines};
use crate::search::{Found, Judge, Locked, Scratch};
use crate::shard::{SPLIT, Shard, Slot, sub_xy};
use crate::{GeoIndex, LonLat};

/// One cell of a ring that can hold a match: the lower bound on its
/// distance from the centre, its shard, its key (then its index in the
/// shard's arena) and its slots.
type RingCell<'l> = (f64, &'l Shard, u32, &'l [Slot]);

/// The exact distance of a held candidate not refined yet.
const UNREFINED: f64 = -1.0;

/// A candidate the flat k-nearest walk holds: its squared flat distance,
/// its exact distance if known ([`UNREFINED`] if not) and the slot.
/// Ordered by flat distance (a max-heap's top is the farthest held).
#[derive(Clone, Copy)]
pub(crate) struct Near {
    d2: f64,
    exact: f64,
    slot: Slot,
}

impl PartialEq for Near {
    fn eq(&self, o: &Self) -> bool {
        self.d2.to_bits() == o.d2.to_bits()
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Squared distances are ≥ 0 and never NaN: their bits order like
        // the values.
        self.d2.to_bits().cmp(&o.d2.to_bits())
    }
}

/// Slot lines of every ring cell prefetched when its header is read: they
/// start every array's misses (and page walks) together, the hardware
/// prefetcher following. Prefetching every line queued the misses of cells
/// the walk then skips ahead of those it reads; of 3, 6 and 10 lines and
/// whole arrays, 6 ran fastest in the k-nearest replays at 1M and 10M
/// drivers (the issue note of the session that set it has the figures).
const FIRST_LINES: usize = 6;

/// The arena index of a ring cell the shard does not hold.
const NO_CELL: u32 = u32::MAX;

/// A slot that passed the cheap tests: its squared flat distance and its
/// index in the cell's slots (12 bytes written per slot scanned, not the
/// slot's 24).
#[derive(Clone, Copy)]
pub(crate) struct Candidate {
    d2: f64,
    i: u32,
}

impl Candidate {
    /// A placeholder in the scratch buffer.
    const EMPTY: Candidate = Candidate { d2: 0.0, i: 0 };
}

impl GeoIndex {
    /// Visits the rings of cells outwards from `center`'s cell within
    /// `range`, handing `visit` each ring's cells whose lower bound is
    /// within `*bound`, nearest first; `visit` may lower `*bound` and
    /// returns false to stop. Stops by itself once every unvisited cell is
    /// farther than `*bound`.
    fn walk_rings<'l>(
        &self,
        locked: &'l Locked<'_>,
        range: &CellRange,
        center: LonLat,
        bound: &mut f64,
        mut visit: impl FnMut(&[RingCell<'l>], &mut f64) -> bool,
    ) {
        let (lon0, lat0) = (center.lon(), center.lat());
        let cx0 = col_of(lon0);
        let cy0 = row_of(lat0);
        let max_r = (cx0 - range.col_lo)
            .max(range.col_hi - cx0)
            .max(cy0 - range.row_lo)
            .max(range.row_hi - cy0)
            .max(0);
        let cos0 = lat0.to_radians().cos();
        let near = &CellBound::new(center);
        // The cells of ring `r` within `bound` whose shard the search holds,
        // as (lower bound, shard, key), their index words prefetched.
        let ring_cells = |r: i64, bound: f64| {
            ring(r).filter_map(move |(dx, dy)| {
                let (col, cy) = (cx0 + dx, cy0 + dy);
                if cy < range.row_lo
                    || cy > range.row_hi
                    || col < range.col_lo
                    || col > range.col_hi
                {
                    return None;
                }
                let b = near.at(col, cy);
                if b > bound {
                    return None;
                }
                let cx = col.rem_euclid(i64::from(COLS)) as u32;
                let cy = cy as u32;
                let shard = locked.shard_of_cell(cx, cy)?;
                let key = cell_key(cx, cy);
                shard.cell_of.prefetch(key, Level::L1);
                Some((b, shard, key, &[][..]))
            })
        };
        // A cell costs three dependent cache misses (index word, cell
        // header, slots), so the ring is resolved in four passes, each
        // prefetching the memory the next one reads for every cell of the
        // ring: the misses of a pass overlap instead of queueing one cell at
        // a time.
        let mut cells: Vec<RingCell<'l>> = Vec::with_capacity(9);
        // Ring 1 (eight cells at most), looked up with ring 0.
        let mut next: [Option<RingCell<'l>>; 8] = [None; 8];
        for r in 0..=max_r {
            if r > 0 && ring_lower_bound(lon0, lat0, cos0, cx0, cy0, r - 1) > *bound {
                return;
            }
            cells.clear();
            if r == 1 {
                // Looked up with ring 0's (below).
                cells.extend(next.iter().flatten().filter(|c| c.0 <= *bound));
            } else {
                cells.extend(ring_cells(r, *bound));
            }
            // Nearly every search reaches ring 1: its cells are looked up
            // with ring 0's (index words, then headers), so that two of its
            // three round trips to memory overlap ring 0's.
            let ahead: &mut [Option<RingCell<'l>>] = if r == 0 && max_r > 0 {
                for (slot, c) in next.iter_mut().zip(ring_cells(1, *bound)) {
                    *slot = Some(c);
                }
                &mut next
            } else {
                &mut []
            };
            // The key becomes the cell's index value (its arena index, or
            // its first sub-cell's flagged `SPLIT`; `NO_CELL`: none), its
            // header (its sub-cells' headers) prefetched: this ring's cells
            // (ring 1's already are) and, at ring 0, ring 1's.
            let fresh = if r == 1 { &mut [][..] } else { &mut cells[..] };
            for (_, shard, key, _) in fresh.iter_mut().chain(ahead.iter_mut().flatten()) {
                *key = shard.prefetch_cell(*key, Level::L1).unwrap_or(NO_CELL);
            }
            // A split cell's sub-cells join the ring as cells of their own,
            // each with its own bound (never below its cell's), so that a
            // walk scans the sub-cells near the centre and skips the rest.
            // Each cell's first slot lines are prefetched as soon as its
            // header gives their address, so that they are on their way
            // while the next headers are read (see `FIRST_LINES`).
            for e in 0..cells.len() {
                let (b, shard, v, _) = cells[e];
                if v == NO_CELL {
                    continue;
                }
                if v & SPLIT == 0 {
                    if let Some(cell) = shard.cells.get(v as usize) {
                        cells[e].3 = &cell.slots;
                        prefetch_lines(&cell.slots, 0..FIRST_LINES);
                    }
                    continue;
                }
                cells[e].0 = f64::INFINITY; // empty itself: the walks skip it
                for c in Shard::leaves(v) {
                    let Some(sub) = shard.cells.get(c as usize) else {
                        continue;
                    };
                    if sub.live() == 0 {
                        continue;
                    }
                    let (cx, cy) = key_xy(sub.key);
                    let sb = near.wrapped_sub(cx, cy, sub.sub()).max(b);
                    if sb <= *bound {
                        prefetch_lines(&sub.slots, 0..FIRST_LINES);
                        cells.push((sb, shard, c, &sub.slots));
                    }
                }
            }
            // The nearest cell, scanned first, gets all its lines: a crowded
            // one spans more than the hardware prefetcher has in flight when
            // the scan starts.
            cells.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            if let Some(&(_, _, _, slots)) = cells.first() {
                prefetch_lines(slots, FIRST_LINES..usize::MAX);
            }
            if !visit(&cells, bound) {
                return;
            }
        }
    }

    /// Matches ring by ring (the `ANY` walk), in ring order; `emit` returns
    /// false to stop.
    pub(crate) fn walk_any<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        emit: &mut dyn FnMut(Found) -> bool,
    ) {
        let mut bound = j.shape.reach();
        let cut = j.approx.cut(bound);
        self.walk_rings(locked, range, j.from.origin(), &mut bound, |cells, _| {
            for &(_, shard, _, slots) in cells {
                for s in slots {
                    if let Some(d) = self.judge(j, shard, s, cut)
                        && !emit(Found { d, slot: *s })
                    {
                        return false;
                    }
                }
            }
            true
        });
    }

    /// The `k` nearest matches by (distance, id), and possibly a few more,
    /// unordered (the caller sorts and truncates): with the flat distance
    /// on, [`Self::walk_nearest_flat`], else each cell refined eagerly
    /// ([`Self::walk_nearest_exact`]).
    pub(crate) fn walk_nearest<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        k: usize,
        scratch: &mut Scratch,
    ) -> Vec<Found> {
        if j.approx.enabled() {
            self.walk_nearest_flat(locked, range, j, k, scratch)
        } else {
            self.walk_nearest_exact(locked, range, j, k, scratch)
        }
    }

    /// The k-nearest walk on flat distances, refining only at the end: the
    /// `k` flat-nearest candidates so far are held in a heap whose top
    /// bounds the walk (its flat distance turned into an upper bound on the
    /// true one); candidates the heap gives up or refuses but that are
    /// within the cut of the bound are kept aside (`band`), and only the
    /// held ones and the band's survivors get the exact haversine at the
    /// end, so about `k` exact tests per search instead of one per
    /// candidate that was nearer than the heap's top when it came (a number
    /// that grows with the drivers per cell). Every held candidate is a match (the
    /// caller's predicate has passed, and it is within the radius: one
    /// whose flat distance does not prove it is refined at once), so the
    /// bound is always above the `k`-th match's distance and no cell that
    /// could hold one is skipped.
    fn walk_nearest_flat<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        k: usize,
        scratch: &mut Scratch,
    ) -> Vec<Found> {
        let mut heap = heap_in(&mut scratch.near, k);
        let mut band = std::mem::take(&mut scratch.band);
        band.clear();
        let buf = &mut scratch.candidates;
        let reach = j.shape.reach();
        let inside = j.approx.inner(reach);
        let mut bound = reach;
        let mut cut = j.approx.cut(bound);
        self.walk_rings(
            locked,
            range,
            j.from.origin(),
            &mut bound,
            |cells, bound| {
                for &(b, shard, _, slots) in cells {
                    if b > *bound {
                        continue;
                    }
                    let n = self.sift_cell(j, shard, slots, cut, buf);
                    let candidates = &mut buf[..n];
                    // The cell's `k` flat-nearest first: they settle the heap's
                    // top, which then refuses most of the rest.
                    nearest_first(candidates, k);
                    for c in candidates.iter() {
                        let slot = &slots[c.i as usize];
                        if c.d2 > cut || !(j.pred)(shard, slot) {
                            continue;
                        }
                        // Not provably within the radius by its flat
                        // distance: decided now, so the heap holds matches only.
                        let exact = if c.d2 > inside {
                            match j.shape.test_from(&j.from, slot.pos()) {
                                Some(d) => d,
                                None => continue,
                            }
                        } else {
                            UNREFINED
                        };
                        let near = Near {
                            d2: c.d2,
                            exact,
                            slot: *slot,
                        };
                        if heap.len() < k {
                            heap.push(near);
                        } else if let Some(mut top) = heap.peek_mut() {
                            if near.d2 < top.d2 {
                                band.push(std::mem::replace(&mut *top, near));
                            } else {
                                band.push(near);
                            }
                        }
                        if heap.len() == k
                            && let Some(top) = heap.peek()
                        {
                            *bound = bound.min(j.approx.upper(top.d2));
                            cut = j.approx.cut(*bound);
                        }
                    }
                    if band.len() > k.saturating_mul(4).saturating_add(64) {
                        band.retain(|c| c.d2 <= cut);
                    }
                }
                true
            },
        );
        let mut found = std::mem::take(&mut scratch.found);
        found.clear();
        for near in heap.iter().chain(band.iter().filter(|c| c.d2 <= cut)) {
            let d = if near.exact == UNREFINED {
                match j.shape.test_from(&j.from, near.slot.pos()) {
                    Some(d) => d,
                    // Not reached: `inside` proves it within the radius.
                    None => continue,
                }
            } else {
                near.exact
            };
            found.push(Found { d, slot: near.slot });
        }
        scratch.near = heap.into_vec();
        scratch.band = band;
        found
    }

    /// The slots of one cell that pass the cheap tests against `cut`, at
    /// the front of `buf`; returns how many. Each slot is written at the
    /// end of the kept ones and kept by moving the end past it: no branch
    /// per slot.
    #[inline]
    fn sift_cell<P>(
        &self,
        j: &Judge<'_, P>,
        shard: &Shard,
        slots: &[Slot],
        cut: f64,
        buf: &mut Vec<Candidate>,
    ) -> usize {
        if buf.len() < slots.len() {
            buf.resize(slots.len(), Candidate::EMPTY);
        }
        // One loop per form of the filter, each without a branch per slot.
        match j.filter.attr_test() {
            AttrTest::Masked { mask, value } => {
                self.sift_slots(j, shard, slots, cut, buf, |bits| bits & mask == value)
            }
            AttrTest::Full(f) => {
                self.sift_slots(j, shard, slots, cut, buf, |bits| f.matches_packed(bits))
            }
        }
    }

    /// [`Self::sift_cell`]'s loop for one attribute test.
    #[inline(always)]
    fn sift_slots<P>(
        &self,
        j: &Judge<'_, P>,
        shard: &Shard,
        slots: &[Slot],
        cut: f64,
        buf: &mut [Candidate],
        attrs_pass: impl Fn(u32) -> bool + Copy,
    ) -> usize {
        let mut n = 0;
        for (i, s) in slots.iter().enumerate() {
            let (pass, d2) = self.sift_with(j, shard, s, cut, attrs_pass);
            buf[n] = Candidate { d2, i: i as u32 };
            n += usize::from(pass);
        }
        n
    }

    /// The k-nearest walk refining cell by cell: each cell filtered by the
    /// cheap tests, then refined with its `k` flat-nearest candidates first
    /// (see the module docs). For searches where the flat distance is off.
    fn walk_nearest_exact<P: FnMut(&Shard, &Slot) -> bool>(
        &self,
        locked: &Locked<'_>,
        range: &CellRange,
        j: &mut Judge<'_, P>,
        k: usize,
        scratch: &mut Scratch,
    ) -> Vec<Found> {
        let mut heap = heap_in(&mut scratch.found, k);
        let buf = &mut scratch.candidates;
        let mut bound = j.shape.reach();
        self.walk_rings(
            locked,
            range,
            j.from.origin(),
            &mut bound,
            |cells, bound| {
                // Cell by cell, nearest first: a cell the bound has passed by
                // the time it comes is skipped whole.
                for &(b, shard, _, slots) in cells {
                    if b > *bound {
                        continue;
                    }
                    // The flat distance is off here, so it cuts nothing; it
                    // still orders roughly, so the `k` flat-nearest are
                    // refined first and fill the heap, whose top then skips
                    // the cells it has passed.
                    let n = self.sift_cell(j, shard, slots, f64::INFINITY, buf);
                    let candidates = &mut buf[..n];
                    nearest_first(candidates, k);
                    for c in candidates.iter() {
                        let slot = slots[c.i as usize];
                        if let Some(d) = self.refine(j, shard, &slot) {
                            Self::keep_nearest(&mut heap, k, Found { d, slot }, bound);
                        }
                    }
                }
                true
            },
        );
        // Unsorted: the search sorts what a walk found.
        heap.into_vec()
    }

    /// Keeps `f` if it is among the `k` nearest so far; once `k` are held,
    /// `bound` is the farthest of them.
    #[inline]
    fn keep_nearest(heap: &mut BinaryHeap<Found>, k: usize, f: Found, bound: &mut f64) {
        if heap.len() < k {
            heap.push(f);
        } else if let Some(mut top) = heap.peek_mut()
            && f < *top
        {
            *top = f;
        }
        if heap.len() == k
            && let Some(top) = heap.peek()
        {
            *bound = bound.min(top.d);
        }
    }
}

/// A max-heap for a k-nearest walk in the thread's buffer `buf` (taken,
/// emptied, with room for `k + 1` up to 1,025: never allocated from a
/// caller's count).
fn heap_in<T: Ord>(buf: &mut Vec<T>, k: usize) -> BinaryHeap<T> {
    let mut v = std::mem::take(buf);
    v.clear();
    v.reserve(k.min(1024) + 1);
    BinaryHeap::from(v)
}

/// Moves the `k` flat-nearest of `candidates` to the front, in no
/// particular order (the rest follow, in none either), so that a walk
/// taking them in order fills its heap with them first. O(n)
/// (`select_nth_unstable`); nothing moves when there are at most `k`.
// Squared distances are ≥ 0 and never NaN: their bits order like the values.
fn nearest_first(candidates: &mut [Candidate], k: usize) {
    if k > 0 && candidates.len() > k {
        candidates.select_nth_unstable_by_key(k - 1, |c| c.d2.to_bits());
    }
}

/// Lower bounds on the distance from the centre to any point of a cell,
/// so walks skip cells that cannot hold a match.
pub(crate) struct CellBound {
    lon0: f64,
    lat0: f64,
    cos0: f64,
    cx0: i64,
}

impl CellBound {
    pub(crate) fn new(c: LonLat) -> Self {
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
    pub(crate) fn at(&self, col: i64, row: i64) -> f64 {
        self.rect(col, row, (0.0, 0.0, 1.0))
    }

    /// Bound for sub-cell `sub` of the cell given by wrapped column `cx`
    /// (the copy of the column nearest the centre's).
    #[inline]
    pub(crate) fn wrapped_sub(&self, cx: u32, cy: u32, sub: u8) -> f64 {
        self.rect(self.unwrap(cx), i64::from(cy), sub_xy(sub))
    }

    /// Bound for the part of a cell at offsets `(ox, oy)` (fractions of
    /// its side from its south-west corner) of side `frac` of the cell's.
    #[inline]
    fn rect(&self, col: i64, row: i64, (ox, oy, frac): (f64, f64, f64)) -> f64 {
        use crate::grid::CELL_DEG;
        let south = row_south(row) + oy * CELL_DEG;
        let north = south + frac * CELL_DEG;
        let dlat = (south - self.lat0).max(self.lat0 - north).max(0.0);
        let west = col_west(col) + ox * CELL_DEG;
        let east = west + frac * CELL_DEG;
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
    pub(crate) fn wrapped(&self, cx: u32, cy: u32) -> f64 {
        self.at(self.unwrap(cx), i64::from(cy))
    }

    /// The unwrapped column of wrapped column `cx` nearest the centre's.
    #[inline]
    fn unwrap(&self, cx: u32) -> i64 {
        let cols = i64::from(COLS);
        self.cx0 + (i64::from(cx) - self.cx0 + cols / 2).rem_euclid(cols) - cols / 2
    }
}

/// A lower bound (metres) on the distance from the centre to any point
/// outside the rectangle of rings 0..=r: the nearer of the latitude edges
/// (`R·Δφ`) and the longitude edges (the distance to a meridian Δλ away,
/// `R·asin(cos φ₀ · sin Δλ)`, bounded below without trigonometry).
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
        // asin(x) ≥ x and sin(d) ≥ d − d³/6 (as in `CellBound::at`): no
        // trigonometry per ring, and below R·asin(cos φ₀ · sin Δλ) by a
        // relative d²/6 (4·10⁻⁹ a kilometre out).
        let d = dlon.to_radians().min(FRAC_PI_2);
        cos0 * d * (1.0 - d * d / 6.0) * EARTH_RADIUS_M
    };
    // A hair under, against rounding in the edge arithmetic.
    north.min(south).min(lon) * (1.0 - 1e-12) - 1e-6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haversine_m;

    #[test]
    fn nearest_first_puts_the_k_nearest_first() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for n in 0..80usize {
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Few distinct values, so ties are common.
                    ((x >> 33) % 17) as f64
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for k in 0..=n + 1 {
                let mut c: Vec<Candidate> = values
                    .iter()
                    .enumerate()
                    .map(|(i, &d2)| Candidate { d2, i: i as u32 })
                    .collect();
                nearest_first(&mut c, k);
                // The same candidates, each with its own distance.
                let mut is: Vec<u32> = c.iter().map(|c| c.i).collect();
                is.sort_unstable();
                assert!(is.iter().enumerate().all(|(i, &j)| i as u32 == j));
                assert!(c.iter().all(|c| c.d2 == values[c.i as usize]));
                // The first `k` are the `k` smallest (as a multiset).
                let m = k.min(n);
                let mut front: Vec<f64> = c[..m].iter().map(|c| c.d2).collect();
                front.sort_by(f64::total_cmp);
                assert_eq!(front, sorted[..m], "n={n} k={k}");
                if k == 0 || n <= k {
                    assert!(c.iter().enumerate().all(|(i, c)| c.i == i as u32), "moved");
                }
            }
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
