//! The fixed world grid: cells of 360/65536 degrees (≈ 611 m of latitude,
//! 611·cos φ m of longitude) and tiles of 64 × 64 cells (≈ 39 km), each
//! tile mapped to one lock shard.

use crate::LonLat;
use crate::coord::EARTH_RADIUS_M;

/// Columns of the grid (longitude), 2^16.
pub(crate) const COLS: u32 = 1 << 16;
/// Rows of the grid (latitude over −90..90), 2^15.
pub(crate) const ROWS: u32 = 1 << 15;
const LON_SHIFT: u32 = 16;
const LAT_SHIFT: u32 = 17;
/// Side of a cell in degrees, both axes (exact in binary).
pub(crate) const CELL_DEG: f64 = 360.0 / COLS as f64;
/// Cells per tile side, as a shift.
const TILE_SHIFT: u32 = 6;

/// Cell column and row of a point.
#[inline]
pub(crate) fn cell_xy(p: LonLat) -> (u32, u32) {
    let (lon_q, lat_q) = p.raw();
    (lon_q >> LON_SHIFT, lat_q >> LAT_SHIFT)
}

/// The 32-bit key of a cell.
#[inline]
pub(crate) fn cell_key(cx: u32, cy: u32) -> u32 {
    debug_assert!(cx < COLS && cy < ROWS);
    (cy << 16) | cx
}

/// Column and row of a cell key.
#[inline]
pub(crate) fn key_xy(key: u32) -> (u32, u32) {
    (key & 0xFFFF, key >> 16)
}

/// The lock shard of a cell: tiles are hashed onto shards, so neighbouring
/// metros spread over locks while one tile is always one lock.
#[inline]
pub(crate) fn shard_of(cx: u32, cy: u32, mask: usize) -> usize {
    let tile = (u64::from(cy >> TILE_SHIFT) << 32) | u64::from(cx >> TILE_SHIFT);
    (tile.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

/// Longitude of the west edge of column `cx` (unwrapped: any integer).
#[inline]
pub(crate) fn col_west(cx: i64) -> f64 {
    cx as f64 * CELL_DEG - 180.0
}

/// Latitude of the south edge of row `cy`.
#[inline]
pub(crate) fn row_south(cy: i64) -> f64 {
    cy as f64 * CELL_DEG - 90.0
}

/// Column containing longitude `lon` (unwrapped, may be outside 0..COLS).
#[inline]
pub(crate) fn col_of(lon: f64) -> i64 {
    ((lon + 180.0) / CELL_DEG).floor() as i64
}

/// Row containing latitude `lat`, clamped to the grid.
#[inline]
pub(crate) fn row_of(lat: f64) -> i64 {
    (((lat + 90.0) / CELL_DEG).floor() as i64).clamp(0, i64::from(ROWS) - 1)
}

/// Columns `lo..=hi` (unwrapped) and rows `row_lo..=row_hi` that cover a
/// search shape; `all_cols` when the shape spans every longitude.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CellRange {
    pub col_lo: i64,
    pub col_hi: i64,
    pub row_lo: i64,
    pub row_hi: i64,
}

impl CellRange {
    /// The cells covering latitudes `lat_lo..=lat_hi` and longitudes
    /// `lon_lo..=lon_hi` (unwrapped; `None` = every longitude).
    pub(crate) fn new(lat_lo: f64, lat_hi: f64, lon: Option<(f64, f64)>) -> Self {
        let (col_lo, col_hi) = match lon {
            Some((lo, hi)) if hi - lo < 360.0 - 2.0 * CELL_DEG => (col_of(lo), col_of(hi)),
            _ => (0, i64::from(COLS) - 1),
        };
        CellRange {
            col_lo,
            col_hi,
            row_lo: row_of(lat_lo),
            row_hi: row_of(lat_hi),
        }
    }

    pub(crate) fn cols(&self) -> u64 {
        (self.col_hi - self.col_lo + 1) as u64
    }

    pub(crate) fn rows(&self) -> u64 {
        (self.row_hi - self.row_lo + 1) as u64
    }

    pub(crate) fn all_cols(&self) -> bool {
        self.cols() >= u64::from(COLS)
    }

    /// Whether the cell (`cx`, `cy`) is inside the range (wrap-aware).
    #[inline]
    pub(crate) fn contains(&self, cx: u32, cy: u32) -> bool {
        let cy = i64::from(cy);
        if cy < self.row_lo || cy > self.row_hi {
            return false;
        }
        if self.all_cols() {
            return true;
        }
        let off = (i64::from(cx) - self.col_lo).rem_euclid(i64::from(COLS));
        off <= self.col_hi - self.col_lo
    }

    /// Appends the distinct lock shards of the tiles the range covers,
    /// ascending, to `out` (empty); false, with nothing appended, when that
    /// would be most shards anyway.
    pub(crate) fn shards_into(&self, mask: usize, out: &mut Vec<usize>) -> bool {
        let tile = 1i64 << TILE_SHIFT;
        let tiles_x = (self.col_hi.div_euclid(tile) - self.col_lo.div_euclid(tile) + 1) as usize;
        let tiles_y = (self.row_hi.div_euclid(tile) - self.row_lo.div_euclid(tile) + 1) as usize;
        if self.all_cols() || tiles_x * tiles_y > mask.div_ceil(2) {
            return false;
        }
        for ty in self.row_lo.div_euclid(tile)..=self.row_hi.div_euclid(tile) {
            for tx in self.col_lo.div_euclid(tile)..=self.col_hi.div_euclid(tile) {
                let cx = (tx * tile).rem_euclid(i64::from(COLS)) as u32;
                let cy = (ty * tile) as u32;
                out.push(shard_of(cx, cy, mask));
            }
        }
        out.sort_unstable();
        out.dedup();
        true
    }
}

/// Angular distance (radians) for `m` metres.
#[inline]
pub(crate) fn angle(m: f64) -> f64 {
    m / EARTH_RADIUS_M
}

/// Half-widths of the bounding box of a spherical cap: (Δlat, Δlon) in
/// degrees, Δlon `None` when the cap reaches a pole or is a hemisphere.
pub(crate) fn circle_extent(center: LonLat, radius_m: f64) -> (f64, Option<f64>) {
    use std::f64::consts::FRAC_PI_2;
    let a = angle(radius_m);
    let lat = center.lat().to_radians();
    let dlat = a.to_degrees();
    if lat.abs() + a >= FRAC_PI_2 || a >= FRAC_PI_2 {
        return (dlat, None);
    }
    let s = a.sin() / lat.cos();
    if s >= 1.0 {
        return (dlat, None);
    }
    (dlat, Some(s.asin().to_degrees()))
}

/// The cells covering a circle of `radius_m` around `center`, with a 1 cm
/// margin against rounding.
pub(crate) fn radius_range(center: LonLat, radius_m: f64) -> CellRange {
    const MARGIN: f64 = 1e-7;
    let (dlat, dlon) = circle_extent(center, radius_m);
    let (lon, lat) = (center.lon(), center.lat());
    CellRange::new(
        lat - dlat - MARGIN,
        lat + dlat + MARGIN,
        dlon.map(|d| (lon - d - MARGIN, lon + d + MARGIN)),
    )
}

/// The cell offsets of ring `r` (Chebyshev distance `r` from the centre),
/// walking the perimeter once.
pub(crate) fn ring(r: i64) -> impl Iterator<Item = (i64, i64)> {
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
}
