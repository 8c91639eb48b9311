//! Geofences: circles and polygons whose enter / exit transitions are
//! reported by the update that causes them.
//!
//! Each fence is registered in the shards of the tiles its bounding box
//! touches, keyed by tile, so an update pays for fences only when its tile
//! has one: a shard without fences costs one `is_empty` test per update.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use geo::{BoundingRect, Intersects, Point, Polygon};

use crate::grid::CellRange;
use crate::{DriverId, GeoError, LonLat, haversine_m};

/// A geofence shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Fence {
    /// Every point within `radius_m` metres (haversine) of `center`.
    Circle {
        /// Centre.
        center: LonLat,
        /// Radius in metres, finite and `> 0`.
        radius_m: f64,
    },
    /// A polygon in longitude/latitude degrees (`x` = longitude); its
    /// boundary counts as inside. Polygons must not cross the antimeridian.
    Polygon(Polygon<f64>),
}

/// Whether a driver entered or left a fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FenceEventKind {
    /// Outside (or new) before the update, inside after.
    Enter,
    /// Inside before the update, outside after.
    Exit,
}

/// A fence transition caused by one location update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FenceEvent {
    /// The driver that moved.
    pub driver: DriverId,
    /// The fence's id as registered.
    pub fence: u64,
    /// Enter or exit.
    pub kind: FenceEventKind,
}

/// A registered fence with its precomputed bounds.
#[derive(Debug)]
pub(crate) struct FenceShape {
    pub id: u64,
    pub fence: Fence,
    pub range: CellRange,
}

impl FenceShape {
    pub(crate) fn new(id: u64, fence: Fence) -> Result<Self, GeoError> {
        let range = match &fence {
            Fence::Circle { center, radius_m } => {
                if !(radius_m.is_finite() && *radius_m > 0.0) {
                    return Err(GeoError::InvalidValue {
                        what: "fence radius",
                        value: *radius_m,
                        reason: "must be a finite number of metres greater than zero",
                    });
                }
                crate::grid::radius_range(*center, *radius_m)
            }
            Fence::Polygon(poly) => {
                if poly.exterior().0.len() < 4 {
                    return Err(GeoError::InvalidFence(
                        "a polygon needs at least 3 vertices",
                    ));
                }
                for c in poly
                    .exterior()
                    .0
                    .iter()
                    .chain(poly.interiors().iter().flat_map(|r| r.0.iter()))
                {
                    LonLat::new(c.x, c.y)?;
                }
                let rect = poly.bounding_rect().ok_or(GeoError::InvalidFence(
                    "a polygon needs at least 3 vertices",
                ))?;
                if rect.max().x - rect.min().x > 180.0 {
                    return Err(GeoError::InvalidFence(
                        "polygons wider than 180 degrees (or crossing the antimeridian) are not supported",
                    ));
                }
                CellRange::new(
                    rect.min().y,
                    rect.max().y,
                    Some((rect.min().x, rect.max().x)),
                )
            }
        };
        Ok(FenceShape { id, fence, range })
    }

    /// Whether `p` is inside (boundary included).
    pub(crate) fn contains(&self, p: LonLat) -> bool {
        match &self.fence {
            Fence::Circle { center, radius_m } => haversine_m(*center, p) <= *radius_m,
            Fence::Polygon(poly) => poly.intersects(&Point::from(p)),
        }
    }

    /// Tile keys the fence's bounding box touches.
    pub(crate) fn tiles(&self) -> Vec<u32> {
        let r = &self.range;
        let mut out = Vec::new();
        let tx_lo = r.col_lo.div_euclid(64);
        let tx_hi = if r.all_cols() {
            tx_lo + 1023
        } else {
            r.col_hi.div_euclid(64)
        };
        for ty in r.row_lo.div_euclid(64)..=r.row_hi.div_euclid(64) {
            for tx in tx_lo..=tx_hi {
                out.push(tile_key(tx.rem_euclid(1024) as u32, ty as u32));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[inline]
pub(crate) fn tile_key(tx: u32, ty: u32) -> u32 {
    (ty << 10) | tx
}

#[inline]
pub(crate) fn tile_of(cx: u32, cy: u32) -> u32 {
    tile_key(cx >> 6, cy >> 6)
}

/// The fences of one shard, by tile.
#[derive(Debug, Default)]
pub(crate) struct ShardFences {
    by_tile: HashMap<u32, Vec<Arc<FenceShape>>, RandomState>,
}

impl ShardFences {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_tile.is_empty()
    }

    #[inline]
    pub(crate) fn at(&self, p: LonLat) -> &[Arc<FenceShape>] {
        if self.by_tile.is_empty() {
            return &[];
        }
        let (cx, cy) = crate::grid::cell_xy(p);
        self.by_tile
            .get(&tile_of(cx, cy))
            .map_or(&[], Vec::as_slice)
    }

    pub(crate) fn add(&mut self, tile: u32, f: Arc<FenceShape>) {
        self.by_tile.entry(tile).or_default().push(f);
    }

    pub(crate) fn remove(&mut self, tile: u32, id: u64) {
        if let Some(v) = self.by_tile.get_mut(&tile) {
            v.retain(|f| f.id != id);
            if v.is_empty() {
                self.by_tile.remove(&tile);
            }
        }
    }
}

/// Appends the enter / exit events of a move from `old` (None: a new
/// driver) to `new`, given the fences registered at each end.
pub(crate) fn transitions(
    driver: DriverId,
    old: Option<(LonLat, &[Arc<FenceShape>])>,
    new: (LonLat, &[Arc<FenceShape>]),
    out: &mut Vec<FenceEvent>,
) {
    let (new_pos, new_fences) = new;
    let inside_old = |f: &FenceShape| old.is_some_and(|(p, _)| f.contains(p));
    for f in new_fences {
        let (was, is) = (inside_old(f), f.contains(new_pos));
        if is && !was {
            out.push(FenceEvent {
                driver,
                fence: f.id,
                kind: FenceEventKind::Enter,
            });
        } else if was && !is {
            out.push(FenceEvent {
                driver,
                fence: f.id,
                kind: FenceEventKind::Exit,
            });
        }
    }
    if let Some((old_pos, old_fences)) = old {
        for f in old_fences {
            // Fences also registered at the new end were handled above.
            if new_fences.iter().any(|g| g.id == f.id) {
                continue;
            }
            if f.contains(old_pos) && !f.contains(new_pos) {
                out.push(FenceEvent {
                    driver,
                    fence: f.id,
                    kind: FenceEventKind::Exit,
                });
            }
        }
    }
}
