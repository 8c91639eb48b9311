//! Exact point → H3 cell lookup with a geometric cache, so that counting
//! a million drivers per cell does not cost a million `h3o` conversions
//! (each a few hundred ns of trigonometry; the `pricing` benches measure
//! both paths).
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
//! tile remembers up to [`TILE_CANDIDATES`] cells seen in it and is split
//! into `SUB × SUB` sub-buckets (≈ 90 m at resolution 7). When a cell joins
//! a tile, every sub-bucket whose four corners are inside it (by the
//! margin plus the bulge of a parallel, see `Locator::classify`) is marked
//! interior: a point there is answered by two multiplications and a table
//! read, with no trigonometry (about 90 % of drivers at resolution 7). Other
//! points compute their unit vector and test the tile's candidates; a miss
//! goes to `h3o` and teaches the tile. The tables depend on geometry only,
//! never on drivers, so they stay valid forever: the first recompute over
//! a region pays for them (≈ 0.3 s for the 20 reference metros at
//! resolution 7), later ones reuse them.

use h3o::{CellIndex, LatLng, Resolution};

use crate::hash::FastMap;

/// Cells remembered per tile.
pub(crate) const TILE_CANDIDATES: usize = 6;

/// Inside-margin of the half-space test (unit sphere).
const MARGIN: f64 = 1e-9;

/// Default bound on remembered tiles (320 bytes each: ≈ 84 MB at the very
/// most; the 20 reference metros use ≈ 18 000 tiles, 6 MB, at resolution 7).
pub(crate) const DEFAULT_MAX_TILES: usize = 1 << 18;

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
            if len.is_nan() || len <= 0.0 {
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
        self.contains_by(p, MARGIN)
    }

    /// `true` when `p` is inside every edge by more than `margin`.
    #[inline]
    fn contains_by(&self, p: [f64; 3], margin: f64) -> bool {
        let mut inside = true;
        for n in &self.normals {
            inside &= dot(*n, p) > margin;
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

/// Points per [`Locator::interior_block`] call.
pub(crate) const BLOCK: usize = 256;
/// "No slot" in [`Locator::interior_block`]'s output.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// log2 of the sub-buckets per tile side.
const SUB_BITS: u32 = 4;
/// Sub-buckets per tile side: a tile is split into `SUB × SUB` rectangles.
pub(crate) const SUB: usize = 1 << SUB_BITS;
/// Sub-bucket state: not (yet) proven inside one candidate cell: test the
/// candidates.
const BOUNDARY: u8 = 0xFF;

/// 64-byte aligned so that the candidates share a cache line with the
/// first sub-bucket states.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Tile {
    cands: [u32; TILE_CANDIDATES],
    len: u8,
    /// Per sub-bucket: `BOUNDARY`, or the index in `cands` of the cell
    /// that contains the whole sub-bucket.
    sub: [u8; SUB * SUB],
}

impl Default for Tile {
    fn default() -> Self {
        Self {
            cands: [0; TILE_CANDIDATES],
            len: 0,
            sub: [BOUNDARY; SUB * SUB],
        }
    }
}

impl Tile {
    /// Adds a candidate; its index if it was added now.
    fn add(&mut self, slot: u32) -> Option<usize> {
        let n = usize::from(self.len);
        if n < TILE_CANDIDATES && !self.cands[..n].contains(&slot) {
            self.cands[n] = slot;
            self.len += 1;
            Some(n)
        } else {
            None
        }
    }
}

/// Where a point landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Located {
    /// A fast-path slot of the locator that answered.
    Slot(u32),
    /// A cell not in the fast-path tables (computed by `h3o`).
    Cell(CellIndex),
}

/// log2 of the tiles per super-tile side.
const SUPER_BITS: u32 = 6;
/// Tiles per super-tile.
const SUPER_LEN: usize = 1 << (2 * SUPER_BITS);

/// Tile key → tile index in two levels: a small hash map of 64 × 64-tile
/// super-tiles (≈ 90 km squares at resolution 7, a few per metro), each a
/// dense array of tile indices. The map stays in L1 and the arrays in L2,
/// where one flat map of every tile would miss the cache on most lookups
/// (the geo index walks its cells in no spatial order).
#[derive(Debug, Clone, Default)]
struct TileDir {
    super_of: FastMap<u64, u32>,
    supers: Vec<Box<[u32]>>,
    len: usize,
}

impl TileDir {
    /// Super-tile key and index inside it of tile `key`.
    #[inline]
    fn split(key: u64) -> (u64, usize) {
        let (ty, tx) = ((key >> 32) as u32 as i32, key as u32 as i32);
        let m = (1 << SUPER_BITS) - 1;
        let sk =
            (u64::from((ty >> SUPER_BITS) as u32) << 32) | u64::from((tx >> SUPER_BITS) as u32);
        (sk, (((ty & m) << SUPER_BITS) | (tx & m)) as usize)
    }

    #[inline]
    fn super_slice(&self, sk: u64) -> Option<&[u32]> {
        self.super_of.get(&sk).map(|&i| &*self.supers[i as usize])
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let (sk, i) = Self::split(key);
        self.super_slice(sk).map(|s| s[i]).filter(|&t| t != NO_SLOT)
    }

    fn insert(&mut self, key: u64, tile: u32) {
        let (sk, i) = Self::split(key);
        let si = match self.super_of.get(&sk) {
            Some(&si) => si,
            None => {
                let si = self.supers.len() as u32;
                self.supers
                    .push(vec![NO_SLOT; SUPER_LEN].into_boxed_slice());
                self.super_of.insert(sk, si);
                si
            }
        };
        let slot = &mut self.supers[si as usize][i];
        if *slot == NO_SLOT {
            self.len += 1;
        }
        *slot = tile;
    }
}

/// The last super-tile looked up: consecutive drivers of the geo index are
/// in the same region, so lookups skip the hash probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    key: u64,
    dir: Option<&'a [u32]>,
}

impl Default for Cursor<'_> {
    fn default() -> Self {
        Self {
            key: u64::MAX,
            dir: None,
        }
    }
}

/// `⌊x⌋` for finite `|x| < 2^62` without a libm call (the baseline x86-64
/// target has no SSE4.1 `roundsd`).
#[inline]
fn floor_i64(x: f64) -> i64 {
    let i = x as i64;
    i - i64::from((i as f64) > x)
}

/// Tile key of sub-bucket coordinates `(gy, gx)`.
#[inline]
fn tile_key(gy: i64, gx: i64) -> u64 {
    let (ty, tx) = ((gy >> SUB_BITS) as i32, (gx >> SUB_BITS) as i32);
    (u64::from(ty as u32) << 32) | u64::from(tx as u32)
}

/// Result of the fast lookup.
#[derive(Debug, Clone, Copy)]
struct Find {
    slot: Option<u32>,
    key: u64,
    /// The point's sub-bucket in tile `key`.
    sub: u16,
}

/// The geometric cache. Not shared mutably: a recompute locates with a
/// shared `&Locator` plus a private learner per thread, then absorbs the
/// learners.
///
/// Two levels: a sub-bucket proven to lie inside one cell (all four
/// corners inside by more than the margin plus the bulge of its parallel
/// edges, see [`Locator::classify`]) answers with no arithmetic beyond a
/// `floor`; any other point computes its unit vector and tests the tile's
/// candidate cells.
#[derive(Debug, Clone)]
pub(crate) struct Locator {
    res: Resolution,
    /// Sub-buckets per degree (`SUB` per tile).
    subs_per_degree: f64,
    /// Tile key → index in `tiles`.
    tile_of: TileDir,
    tiles: Vec<Tile>,
    tile_keys: Vec<u64>,
    cells: Vec<CellGeom>,
    slot_of: FastMap<CellIndex, u32>,
    max_tiles: usize,
}

impl Locator {
    pub(crate) fn new(res: Resolution, max_tiles: usize) -> Self {
        // A tile about one (average) edge long in latitude.
        let edge_deg = res.edge_length_m() / 111_195.0;
        Self {
            res,
            subs_per_degree: SUB as f64 / edge_deg,
            tile_of: TileDir::default(),
            tiles: Vec::new(),
            tile_keys: Vec::new(),
            cells: Vec::new(),
            slot_of: FastMap::default(),
            max_tiles,
        }
    }

    /// An empty learner with the same tiling.
    pub(crate) fn learner(&self) -> Self {
        Self::new(self.res, self.max_tiles)
    }

    /// Number of fast-path cells (slots).
    pub(crate) fn slots(&self) -> usize {
        self.cells.len()
    }

    pub(crate) fn cell(&self, slot: u32) -> CellIndex {
        self.cells[slot as usize].cell
    }

    /// The fast path: a slot whose cell certainly contains the point, or
    /// `None`.
    #[inline]
    fn find<'a>(&'a self, cur: &mut Cursor<'a>, lon: f64, lat: f64) -> Find {
        let gy = floor_i64(lat * self.subs_per_degree);
        let gx = floor_i64(lon * self.subs_per_degree);
        let key = tile_key(gy, gx);
        let sub = (((gy as usize) & (SUB - 1)) * SUB + ((gx as usize) & (SUB - 1))) as u16;
        let (sk, inner) = TileDir::split(key);
        if sk != cur.key {
            cur.key = sk;
            cur.dir = self.tile_of.super_slice(sk);
        }
        let tile = cur.dir.and_then(|d| self.tiles.get(d[inner] as usize));
        let Some(tile) = tile else {
            return Find {
                slot: None,
                key,
                sub,
            };
        };
        let state = tile.sub[usize::from(sub)];
        if state < BOUNDARY {
            return Find {
                slot: Some(tile.cands[usize::from(state)]),
                key,
                sub,
            };
        }
        let p = unit(lon, lat);
        let slot = tile.cands[..usize::from(tile.len)]
            .iter()
            .copied()
            .find(|&s| self.cells[s as usize].contains(p));
        Find { slot, key, sub }
    }

    /// The no-trigonometry part of the fast path for a block of valid
    /// points: `out[i]` is the slot of point `i` when its sub-bucket is
    /// interior, `NO_SLOT` otherwise. Done in stages (keys, then tile
    /// indices, then states) so that the independent table reads of a
    /// block overlap instead of forming one dependent chain per point.
    #[inline]
    pub(crate) fn interior_block(&self, pts: &[[f64; 2]], out: &mut [u32]) {
        debug_assert!(pts.len() <= BLOCK && out.len() >= pts.len());
        let n = pts.len();
        let mut keys = [0_u64; BLOCK];
        let mut subs = [0_u16; BLOCK];
        for (i, &[lon, lat]) in pts.iter().enumerate() {
            let gy = floor_i64(lat * self.subs_per_degree);
            let gx = floor_i64(lon * self.subs_per_degree);
            keys[i] = tile_key(gy, gx);
            subs[i] = (((gy as usize) & (SUB - 1)) * SUB + ((gx as usize) & (SUB - 1))) as u16;
        }
        let mut tix = [NO_SLOT; BLOCK];
        let (mut last_super, mut dir) = (u64::MAX, None);
        for i in 0..n {
            let (sk, inner) = TileDir::split(keys[i]);
            if sk != last_super {
                last_super = sk;
                dir = self.tile_of.super_slice(sk);
            }
            tix[i] = dir.map_or(NO_SLOT, |d: &[u32]| d[inner]);
        }
        for i in 0..n {
            out[i] = match self.tiles.get(tix[i] as usize) {
                Some(t) => {
                    let state = t.sub[usize::from(subs[i])];
                    if state < BOUNDARY {
                        t.cands[usize::from(state)]
                    } else {
                        NO_SLOT
                    }
                }
                None => NO_SLOT,
            };
        }
    }

    /// Locates `(lon, lat)` (finite, in range) using `self` for lookups and
    /// `learner` for what `self` lacks; a full miss runs `h3o` and teaches
    /// `learner`. Returns `None` only for a coordinate `h3o` rejects.
    #[inline]
    pub(crate) fn locate<'a>(
        &'a self,
        cur: &mut Cursor<'a>,
        learner: &mut Locator,
        lon: f64,
        lat: f64,
    ) -> Option<Located> {
        let f = self.find(cur, lon, lat);
        if let Some(s) = f.slot {
            return Some(Located::Slot(s));
        }
        let cell = match learner.find_in_tile(f.key, f.sub, lon, lat) {
            Some(c) => c,
            None => {
                let c = LatLng::new(lat, lon).ok()?.to_cell(self.res);
                learner.learn(f.key, c);
                c
            }
        };
        Some(Located::Cell(cell))
    }

    /// A learner's lookup: the sub-bucket's cell when the learner has
    /// classified it as interior (no arithmetic), else the candidate test.
    fn find_in_tile(&self, key: u64, sub: u16, lon: f64, lat: f64) -> Option<CellIndex> {
        let tile = self.tile(key)?;
        let state = tile.sub[usize::from(sub)];
        if state < BOUNDARY {
            return Some(self.cell(tile.cands[usize::from(state)]));
        }
        let p = unit(lon, lat);
        tile.cands[..usize::from(tile.len)]
            .iter()
            .find(|&&s| self.cells[s as usize].contains(p))
            .map(|&s| self.cell(s))
    }

    /// Remembers that `cell` occurs in tile `key`, and classifies the
    /// tile's sub-buckets against it at once, so that the rest of the
    /// first recompute finds the drivers of this cell's interior without
    /// the candidate test, and [`Locator::absorb`] adopts the classified
    /// tile instead of classifying it again (the first recompute's cost
    /// beside a warm one is printed by the pricing bench).
    fn learn(&mut self, key: u64, cell: CellIndex) {
        let slot = match self.slot_of.get(&cell) {
            Some(&s) => s,
            None => match CellGeom::of(cell) {
                Some(g) => self.add_cell(g),
                None => return,
            },
        };
        if let Some((ti, t)) = self.tile_mut(key)
            && let Some(ci) = t.add(slot)
        {
            self.classify_tile(ti, key, ci);
        }
    }

    fn tile(&self, key: u64) -> Option<&Tile> {
        self.tile_of.get(key).map(|i| &self.tiles[i as usize])
    }

    /// The tile `key` and its index, created if the bound allows.
    fn tile_mut(&mut self, key: u64) -> Option<(usize, &mut Tile)> {
        let i = match self.tile_of.get(key) {
            Some(i) => i,
            None if self.tiles.len() < self.max_tiles => {
                let i = self.tiles.len() as u32;
                self.tiles.push(Tile::default());
                self.tile_keys.push(key);
                self.tile_of.insert(key, i);
                i
            }
            None => return None,
        };
        Some((i as usize, &mut self.tiles[i as usize]))
    }

    fn add_cell(&mut self, g: CellGeom) -> u32 {
        let s = self.cells.len() as u32;
        self.slot_of.insert(g.cell, s);
        self.cells.push(g);
        s
    }

    /// Merges what `learner` learned. Every candidate added to a tile
    /// classifies the tile's sub-buckets against it ([`Locator::classify_tile`]).
    pub(crate) fn absorb(&mut self, learner: &Locator) {
        for (lt, &key) in learner.tiles.iter().zip(&learner.tile_keys) {
            let fresh = self.tile_of.get(key).is_none();
            let mut slots = [0_u32; TILE_CANDIDATES];
            for (k, &ls) in lt.cands[..usize::from(lt.len)].iter().enumerate() {
                let g = learner.cells[ls as usize];
                slots[k] = match self.slot_of.get(&g.cell) {
                    Some(&s) => s,
                    None => self.add_cell(g),
                };
            }
            if fresh && let Some((_, t)) = self.tile_mut(key) {
                // A tile new here: the learner classified it as it learned
                // (same tiling, same candidates in the same order), so its
                // sub-bucket states carry over without classifying again.
                *t = Tile {
                    cands: slots,
                    len: lt.len,
                    sub: lt.sub,
                };
                continue;
            }
            for &slot in &slots[..usize::from(lt.len)] {
                if let Some((ti, t)) = self.tile_mut(key)
                    && let Some(ci) = t.add(slot)
                {
                    self.classify_tile(ti, key, ci);
                }
            }
        }
    }

    /// Marks every sub-bucket of tile `ti` (key `key`) that lies wholly
    /// inside candidate `ci` as interior. The 17 × 17 corner grid needs 34
    /// `sin_cos` (rows and columns) and one six-edge test per corner; a
    /// sub-bucket is interior when its four corners pass with the margin of
    /// [`Locator::classify`]. O(SUB²).
    fn classify_tile(&mut self, ti: usize, key: u64, ci: usize) {
        let (ty, tx) = (
            i64::from((key >> 32) as u32 as i32),
            i64::from(key as u32 as i32),
        );
        let (gy0, gx0) = (ty << SUB_BITS, tx << SUB_BITS);
        let lat_lo = gy0 as f64 / self.subs_per_degree;
        let lat_hi = (gy0 + SUB as i64) as f64 / self.subs_per_degree;
        if lat_lo.abs() > 89.0 || lat_hi.abs() > 89.0 {
            return;
        }
        let g = self.cells[self.tiles[ti].cands[ci] as usize];
        let dlon = (1.0 / self.subs_per_degree).to_radians();
        let margin = MARGIN + dlon * dlon / 8.0 + 1e-12;
        let mut rows = [(0.0, 0.0); SUB + 1];
        let mut cols = [(0.0, 0.0); SUB + 1];
        for j in 0..=SUB {
            rows[j] = ((gy0 + j as i64) as f64 / self.subs_per_degree)
                .to_radians()
                .sin_cos();
            cols[j] = ((gx0 + j as i64) as f64 / self.subs_per_degree)
                .to_radians()
                .sin_cos();
        }
        let mut inside = [[false; SUB + 1]; SUB + 1];
        for (r, &(slat, clat)) in rows.iter().enumerate() {
            for (c, &(slon, clon)) in cols.iter().enumerate() {
                inside[r][c] = g.contains_by([clat * clon, clat * slon, slat], margin);
            }
        }
        let tile = &mut self.tiles[ti];
        for sy in 0..SUB {
            for sx in 0..SUB {
                let st = &mut tile.sub[sy * SUB + sx];
                if *st == BOUNDARY
                    && inside[sy][sx]
                    && inside[sy][sx + 1]
                    && inside[sy + 1][sx]
                    && inside[sy + 1][sx + 1]
                {
                    *st = ci as u8;
                }
            }
        }
    }

    /// `true` when the whole sub-bucket `sub` of tile `key` lies inside
    /// `g`: each corner is inside by more than `MARGIN` plus the bulge of a
    /// parallel over the sub-bucket's width. Meridian edges are great
    /// circles, so for a convex cell the minimum of `n · p` over the
    /// rectangle is at a corner except along the parallel edges, which
    /// stray from the great circle through their end points by at most
    /// `Δλ² / 16` radians (`Δλ²/8 · sin φ cos φ`); the test allows `Δλ² / 8`.
    fn classify(&self, key: u64, sub: u16, g: &CellGeom) -> bool {
        let (ty, tx) = (
            i64::from((key >> 32) as u32 as i32),
            i64::from(key as u32 as i32),
        );
        let gy = (ty << SUB_BITS) + i64::from(sub) / SUB as i64;
        let gx = (tx << SUB_BITS) + i64::from(sub) % SUB as i64;
        let lat0 = gy as f64 / self.subs_per_degree;
        let lat1 = (gy + 1) as f64 / self.subs_per_degree;
        let lon0 = gx as f64 / self.subs_per_degree;
        let lon1 = (gx + 1) as f64 / self.subs_per_degree;
        if lat0.abs() > 89.0 || lat1.abs() > 89.0 {
            return false;
        }
        let dlon = (lon1 - lon0).to_radians();
        let margin = MARGIN + dlon * dlon / 8.0 + 1e-12;
        [(lon0, lat0), (lon1, lat0), (lon0, lat1), (lon1, lat1)]
            .iter()
            .all(|&(x, y)| g.contains_by(unit(x, y), margin))
    }

    /// Checks the tables: slots and the cell map agree, tile candidates are
    /// valid and distinct, every interior sub-bucket passes its corner test.
    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.slot_of.len(), self.cells.len());
        for (i, g) in self.cells.iter().enumerate() {
            assert_eq!(self.slot_of[&g.cell], i as u32);
            assert_eq!(g.cell.resolution(), self.res);
        }
        assert!(self.tiles.len() <= self.max_tiles);
        assert_eq!(self.tiles.len(), self.tile_keys.len());
        assert_eq!(self.tiles.len(), self.tile_of.len);
        for (t, &key) in self.tiles.iter().zip(&self.tile_keys) {
            let i = self
                .tile_of
                .get(key)
                .expect("every tile is in the directory");
            assert_eq!(self.tiles[i as usize].len, t.len);
            let c = &t.cands[..usize::from(t.len)];
            for (i, s) in c.iter().enumerate() {
                assert!((*s as usize) < self.cells.len());
                assert!(!c[..i].contains(s));
            }
            for (sub, &state) in t.sub.iter().enumerate() {
                if state < BOUNDARY {
                    let g = &self.cells[c[usize::from(state)] as usize];
                    assert!(self.classify(key, sub as u16, g));
                }
            }
        }
    }

    /// Sub-buckets classified as inside one cell, and in total (tests).
    #[cfg(test)]
    pub(crate) fn interior_share(&self) -> (usize, usize) {
        let inside = self
            .tiles
            .iter()
            .map(|t| t.sub.iter().filter(|&&s| s < BOUNDARY).count())
            .sum();
        (inside, self.tiles.len() * SUB * SUB)
    }
}

#[cfg(test)]
#[path = "locator_tests.rs"]
mod tests;
