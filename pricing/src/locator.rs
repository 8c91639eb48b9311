//! Exact point → H3 cell lookup with a geometric cache, so that counting
//! a million drivers per cell does not cost a million `h3o` conversions
//! (≈ 400 ns each on the reference machine).
//!
//! # Why the fast path is exact
//!
//! An H3 cell that lies on a single icosahedron face is, in that face's
//! gnomonic projection, a hexagon, and `h3o` assigns a point to the cell by
//! projecting it onto its closest face and rounding to the nearest hexagon
//! centre. Gnomonic projections map straight lines to great circles, so such
//! a cell is the spherical hexagon bounded by the great circles through
//! consecutive boundary vertices, and the closest-face region of a face is
//! exactly its spherical triangle, so every point of the cell projects onto
//! that face. A point `p` (unit vector) is therefore in the cell when
//! `nᵢ · p > 0` for the six inward edge normals `nᵢ = vᵢ × vᵢ₊₁`.
//!
//! The fast path accepts a point only when `nᵢ · p > MARGIN` for all six
//! edges, `MARGIN` = 1e-9 (about 6 mm on the earth), orders of magnitude
//! above the floating-point error of either computation. Anything closer
//! to an edge, any pentagon, any cell spanning two faces, and any point
//! whose tile has no matching candidate goes to `h3o` itself. So the
//! locator returns exactly what `h3o` returns, which the tests check
//! against brute force over millions of points.
//!
//! # The cache
//!
//! Points are bucketed into lat/lon tiles about one H3 edge long; each
//! tile remembers up to [`TILE_CANDIDATES`] cells seen in it. The tables
//! only depend on geometry, never on drivers, so they stay valid forever
//! and warm up after the first recompute.

use h3o::{CellIndex, LatLng, Resolution};

use crate::hash::FxHashMap;

/// Cells remembered per tile.
pub(crate) const TILE_CANDIDATES: usize = 6;

/// Inside-margin of the half-space test (unit sphere).
const MARGIN: f64 = 1e-9;

/// Default bound on remembered tiles (≈ 40 MB at most).
pub(crate) const DEFAULT_MAX_TILES: usize = 1 << 20;

/// A fast-path cell: its index and six inward edge normals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CellGeom {
    pub(crate) cell: CellIndex,
    normals: [[f64; 3]; 6],
}

impl CellGeom {
    /// The geometry of `cell` if it is eligible for the fast path (a
    /// hexagon on one icosahedron face), `None` otherwise.
    pub(crate) fn of(cell: CellIndex) -> Option<Self> {
        if cell.is_pentagon() || cell.icosahedron_faces().len() != 1 {
            return None;
        }
        let b = cell.boundary();
        if b.len() != 6 {
            return None;
        }
        let v: Vec<[f64; 3]> = b.iter().map(|ll| unit(ll.lng(), ll.lat())).collect();
        let c = LatLng::from(cell);
        let centre = unit(c.lng(), c.lat());
        let mut normals = [[0.0; 3]; 6];
        for i in 0..6 {
            let mut n = cross(v[i], v[(i + 1) % 6]);
            let len = dot(n, n).sqrt();
            if !(len > 0.0) {
                return None;
            }
            n = n.map(|x| x / len);
            let side = dot(n, centre);
            if side.abs() < 1e3 * MARGIN {
                return None;
            }
            if side < 0.0 {
                n = n.map(|x| -x);
            }
            normals[i] = n;
        }
        Some(Self { cell, normals })
    }

    /// `true` when `p` is strictly inside the cell by more than the margin.
    #[inline]
    pub(crate) fn contains(&self, p: [f64; 3]) -> bool {
        let mut inside = true;
        for n in &self.normals {
            inside &= dot(*n, p) > MARGIN;
        }
        inside
    }
}

#[inline]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// The unit vector of a point given in degrees.
#[inline]
pub(crate) fn unit(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (slat, clat) = lat_deg.to_radians().sin_cos();
    let (slon, clon) = lon_deg.to_radians().sin_cos();
    [clat * clon, clat * slon, slat]
}

#[derive(Debug, Clone, Copy, Default)]
struct Tile {
    cands: [u32; TILE_CANDIDATES],
    len: u8,
}

/// Where a point landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Located {
    /// A fast-path slot of the locator that answered.
    Slot(u32),
    /// A cell not in the fast-path tables (computed by `h3o`).
    Cell(CellIndex),
}

/// The geometric cache. Not shared mutably: a recompute locates with a
/// shared `&Locator` plus a private learner per thread, then absorbs the
/// learners.
#[derive(Debug, Clone)]
pub(crate) struct Locator {
    res: Resolution,
    tiles_per_degree: f64,
    tiles: FxHashMap<u64, Tile>,
    cells: Vec<CellGeom>,
    slot_of: FxHashMap<CellIndex, u32>,
    max_tiles: usize,
}

impl Locator {
    pub(crate) fn new(res: Resolution, max_tiles: usize) -> Self {
        // A tile about one (average) edge long in latitude.
        let edge_deg = res.edge_length_m() / 111_195.0;
        Self {
            res,
            tiles_per_degree: 1.0 / edge_deg,
            tiles: FxHashMap::default(),
            cells: Vec::new(),
            slot_of: FxHashMap::default(),
            max_tiles,
        }
    }

    /// An empty learner with the same tiling.
    pub(crate) fn learner(&self) -> Self {
        Self {
            tiles: FxHashMap::default(),
            cells: Vec::new(),
            slot_of: FxHashMap::default(),
            ..*self
        }
    }

    /// Number of fast-path cells (slots).
    pub(crate) fn slots(&self) -> usize {
        self.cells.len()
    }

    pub(crate) fn cell(&self, slot: u32) -> CellIndex {
        self.cells[slot as usize].cell
    }

    #[inline]
    fn key(&self, lon: f64, lat: f64) -> u64 {
        let y = (lat * self.tiles_per_degree).floor() as i32;
        let x = (lon * self.tiles_per_degree).floor() as i32;
        (u64::from(y as u32) << 32) | u64::from(x as u32)
    }

    /// The fast path only: a slot whose cell certainly contains the point.
    #[inline]
    pub(crate) fn find(&self, lon: f64, lat: f64) -> Option<u32> {
        let tile = self.tiles.get(&self.key(lon, lat))?;
        let p = unit(lon, lat);
        tile.cands[..usize::from(tile.len)]
            .iter()
            .copied()
            .find(|&s| self.cells[s as usize].contains(p))
    }

    /// Locates `(lon, lat)` (finite, in range) using `self` for lookups and
    /// `learner` for what `self` lacks; a full miss runs `h3o` and teaches
    /// `learner`.
    #[inline]
    pub(crate) fn locate(&self, learner: &mut Locator, lon: f64, lat: f64) -> Option<Located> {
        if let Some(s) = self.find(lon, lat) {
            return Some(Located::Slot(s));
        }
        if let Some(s) = learner.find(lon, lat) {
            return Some(Located::Cell(learner.cell(s)));
        }
        let cell = LatLng::new(lat, lon).ok()?.to_cell(self.res);
        learner.learn(lon, lat, cell);
        Some(Located::Cell(cell))
    }

    /// Remembers that `cell` occurs in the tile of `(lon, lat)`.
    pub(crate) fn learn(&mut self, lon: f64, lat: f64, cell: CellIndex) {
        let slot = match self.slot_of.get(&cell) {
            Some(&s) => s,
            None => match CellGeom::of(cell) {
                Some(g) => self.add_cell(g),
                None => return,
            },
        };
        let key = self.key(lon, lat);
        if self.tiles.len() >= self.max_tiles && !self.tiles.contains_key(&key) {
            return;
        }
        let tile = self.tiles.entry(key).or_default();
        let n = usize::from(tile.len);
        if n < TILE_CANDIDATES && !tile.cands[..n].contains(&slot) {
            tile.cands[n] = slot;
            tile.len += 1;
        }
    }

    fn add_cell(&mut self, g: CellGeom) -> u32 {
        let s = self.cells.len() as u32;
        self.slot_of.insert(g.cell, s);
        self.cells.push(g);
        s
    }

    /// Merges what `learner` learned. Deterministic for a given learner.
    pub(crate) fn absorb(&mut self, learner: &Locator) {
        let mut keys: Vec<u64> = learner.tiles.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let lt = learner.tiles[&key];
            if self.tiles.len() >= self.max_tiles && !self.tiles.contains_key(&key) {
                continue;
            }
            for &ls in &lt.cands[..usize::from(lt.len)] {
                let g = learner.cells[ls as usize];
                let slot = match self.slot_of.get(&g.cell) {
                    Some(&s) => s,
                    None => self.add_cell(g),
                };
                let tile = self.tiles.entry(key).or_default();
                let n = usize::from(tile.len);
                if n < TILE_CANDIDATES && !tile.cands[..n].contains(&slot) {
                    tile.cands[n] = slot;
                    tile.len += 1;
                }
            }
        }
    }

    /// Checks the tables: slots and the cell map agree, tile candidates are
    /// valid and distinct.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn validate(&self) {
        assert_eq!(self.slot_of.len(), self.cells.len());
        for (i, g) in self.cells.iter().enumerate() {
            assert_eq!(self.slot_of[&g.cell], i as u32);
            assert_eq!(g.cell.resolution(), self.res);
        }
        assert!(self.tiles.len() <= self.max_tiles);
        for t in self.tiles.values() {
            let c = &t.cands[..usize::from(t.len)];
            for (i, s) in c.iter().enumerate() {
                assert!((*s as usize) < self.cells.len());
                assert!(!c[..i].contains(s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h3(lon: f64, lat: f64, res: Resolution) -> CellIndex {
        LatLng::new(lat, lon).unwrap().to_cell(res)
    }

    fn resolve(loc: &Locator, learner: &mut Locator, lon: f64, lat: f64) -> CellIndex {
        match loc.locate(learner, lon, lat).unwrap() {
            Located::Slot(s) => loc.cell(s),
            Located::Cell(c) => c,
        }
    }

    #[test]
    fn cell_geometry_contains_its_centre_not_its_neighbours_centres() {
        let c = h3(-122.33, 47.61, Resolution::Seven);
        let g = CellGeom::of(c).unwrap();
        let ll = LatLng::from(c);
        assert!(g.contains(unit(ll.lng(), ll.lat())));
        for n in c.grid_disk::<Vec<_>>(1) {
            if n != c {
                let ll = LatLng::from(n);
                assert!(!g.contains(unit(ll.lng(), ll.lat())));
            }
        }
        // Pentagons are never on the fast path.
        let p = Resolution::Seven.pentagons().next().unwrap();
        assert!(CellGeom::of(p).is_none());
    }

    /// Points on and around cell vertices and edge midpoints — the hardest
    /// places — agree with `h3o` once the tables are warm.
    #[test]
    fn boundaries_agree_with_h3o() {
        for res in [Resolution::Five, Resolution::Seven, Resolution::Nine] {
            let mut loc = Locator::new(res, DEFAULT_MAX_TILES);
            let centre = h3(2.35, 48.85, res);
            let mut pts = Vec::new();
            for c in centre.grid_disk::<Vec<_>>(3) {
                let b = c.boundary();
                for i in 0..b.len() {
                    let (a, z) = (b[i], b[(i + 1) % b.len()]);
                    for t in [0.0, 0.5, 1e-7, 1.0 - 1e-7] {
                        let lat = a.lat() + (z.lat() - a.lat()) * t;
                        let lon = a.lng() + (z.lng() - a.lng()) * t;
                        for d in [0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7] {
                            pts.push((lon + d, lat - d));
                        }
                    }
                }
            }
            for round in 0..2 {
                let mut learner = loc.learner();
                for &(lon, lat) in &pts {
                    assert_eq!(
                        resolve(&loc, &mut learner, lon, lat),
                        h3(lon, lat, res),
                        "({lon}, {lat}) at {res:?}, round {round}"
                    );
                }
                loc.absorb(&learner);
                loc.validate();
            }
            assert!(loc.slots() > 0);
        }
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases() / 10,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
            )),
            ..ProptestConfig::default()
        })]

        /// Anywhere on the globe (including the antimeridian and near the
        /// poles), after warming on a cloud of points, every lookup equals
        /// `h3o`.
        #[test]
        fn agrees_with_h3o_anywhere(
            lon in -180.0_f64..=180.0,
            lat in -85.0_f64..=85.0,
            offsets in proptest::collection::vec((-0.05_f64..0.05, -0.05_f64..0.05), 50),
            res in 4_u8..=10,
        ) {
            let res = Resolution::try_from(res).unwrap();
            let mut loc = Locator::new(res, DEFAULT_MAX_TILES);
            let pts: Vec<(f64, f64)> = offsets
                .iter()
                .map(|&(dx, dy)| {
                    let x = lon + dx;
                    let x = if x > 180.0 { x - 360.0 } else if x < -180.0 { x + 360.0 } else { x };
                    (x, (lat + dy).clamp(-85.0, 85.0))
                })
                .collect();
            for _ in 0..2 {
                let mut learner = loc.learner();
                for &(x, y) in &pts {
                    prop_assert_eq!(resolve(&loc, &mut learner, x, y), h3(x, y, res));
                }
                loc.absorb(&learner);
            }
            loc.validate();
        }
    }
}
