//! The published surge table: what a recompute produces and every fare
//! reads (the seed's `surge:{city}` sorted set), and the point → H3 cell
//! step its lookups share with the engine.

use std::collections::BTreeMap;
use std::time::Instant;

use geo::Point;
use h3o::{CellIndex, LatLng, Resolution};

use crate::hash::FastMap;
use crate::{Multiplier, PricingError};

/// One zone of a [`SurgeMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CellSurge {
    /// Ride requests in the window.
    pub demand: u32,
    /// Available drivers at the recompute.
    pub supply: u32,
    /// `demand × 1000 / max(supply, 1)` (no drivers counts as one, so a
    /// single request in an empty cell does not surge on its own).
    pub ratio_milli: u64,
    /// Published multiplier (after smoothing).
    pub multiplier: Multiplier,
}

/// A published surge table: every zone with demand, supply or surge at
/// the last recompute. Immutable; read it through an `Arc` while the next
/// one is computed.
#[derive(Debug, Clone)]
pub struct SurgeMap {
    pub(crate) resolution: Resolution,
    pub(crate) version: u64,
    pub(crate) computed_at: Option<Instant>,
    pub(crate) emergency: bool,
    pub(crate) cap: Multiplier,
    pub(crate) cells: FastMap<CellIndex, CellSurge>,
}

impl SurgeMap {
    pub(crate) fn empty(resolution: Resolution, cap: Multiplier) -> Self {
        Self {
            resolution,
            version: 0,
            computed_at: None,
            emergency: false,
            cap,
            cells: FastMap::default(),
        }
    }

    /// Recompute counter (0 before the first).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it was computed.
    pub fn computed_at(&self) -> Option<Instant> {
        self.computed_at
    }

    /// Whether the emergency cap was in force.
    pub fn emergency(&self) -> bool {
        self.emergency
    }

    /// The cap that was in force.
    pub fn cap(&self) -> Multiplier {
        self.cap
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// `true` with no zone.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The zone `cell`, if active.
    pub fn get(&self, cell: CellIndex) -> Option<&CellSurge> {
        self.cells.get(&cell)
    }

    /// The multiplier of `cell` (1.0 when not active). O(1).
    #[inline]
    pub fn multiplier(&self, cell: CellIndex) -> Multiplier {
        self.cells
            .get(&cell)
            .map_or(Multiplier::ONE, |c| c.multiplier)
    }

    /// The multiplier at a position: one `h3o` conversion and one hash
    /// lookup, O(1).
    ///
    /// # Errors
    /// [`PricingError::InvalidPosition`] for a non-finite or out-of-range
    /// point.
    pub fn multiplier_at(&self, point: Point<f64>) -> Result<Multiplier, PricingError> {
        Ok(self.multiplier(cell_of(point, self.resolution)?))
    }

    /// All zones, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (CellIndex, &CellSurge)> {
        self.cells.iter().map(|(&c, s)| (c, s))
    }

    /// The `n` hottest zones in the order of the seed's `surge:{city}`
    /// sorted set read with `ZREVRANGE`: score (the demand/supply ratio)
    /// descending, ties by member (the cell) descending. O(z log z).
    pub fn hottest(&self, n: usize) -> Vec<(CellIndex, CellSurge)> {
        let mut all: Vec<(CellIndex, CellSurge)> = self.iter().map(|(c, s)| (c, *s)).collect();
        all.sort_unstable_by(|a, b| {
            b.1.ratio_milli
                .cmp(&a.1.ratio_milli)
                .then(u64::from(b.0).cmp(&u64::from(a.0)))
        });
        all.truncate(n);
        all
    }

    /// Zones per multiplier (a histogram of the published surge).
    pub fn distribution(&self) -> BTreeMap<Multiplier, usize> {
        let mut h = BTreeMap::new();
        for s in self.cells.values() {
            *h.entry(s.multiplier).or_insert(0) += 1;
        }
        h
    }

    /// Total requests and total drivers over all zones.
    pub fn totals(&self) -> (u64, u64) {
        self.cells.values().fold((0, 0), |(d, s), c| {
            (d + u64::from(c.demand), s + u64::from(c.supply))
        })
    }
}

/// The H3 cell of a point, validated.
pub(crate) fn cell_of(point: Point<f64>, res: Resolution) -> Result<CellIndex, PricingError> {
    let (lon, lat) = (point.x(), point.y());
    let bad = |reason| PricingError::InvalidPosition { lon, lat, reason };
    if !lon.is_finite() || !lat.is_finite() {
        return Err(bad("coordinates must be finite"));
    }
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(bad(
            "longitude must be in -180..=180 and latitude in -90..=90",
        ));
    }
    LatLng::new(lat, lon)
        .map(|ll| ll.to_cell(res))
        .map_err(|_| bad("rejected by h3o"))
}
