//! The surge engine: per-H3-cell demand and supply, a ratio → multiplier
//! curve, smoothing over neighbouring cells and over time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use geo::Point;
use h3o::{CellIndex, Resolution};
use parking_lot::{Mutex, RwLock};

use crate::demand::DemandWindow;
use crate::hash::FastMap;
use crate::locator::{DEFAULT_MAX_TILES, Locator};
use crate::surge_map::{CellSurge, SurgeMap, cell_of};
use crate::surge_scan::scan;
use crate::{Bps, Multiplier, PricingError, SupplySource, SurgeCurve};

/// Parameters of a [`SurgeEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "surge_config_serde::Unchecked")
)]
pub struct SurgeConfig {
    /// H3 resolution of the zones (default 7: ≈ 5 km² cells).
    pub resolution: Resolution,
    /// Sliding window of ride requests (default 5 min).
    pub window: Duration,
    /// Ratio → multiplier curve.
    pub curve: SurgeCurve,
    /// Grid-disk radius of the neighbour smoothing (default 1; 0 = off).
    pub smoothing_k: u32,
    /// Weight of the neighbours' mean surge in a cell's own (default 30 %).
    pub neighbour_weight: Bps,
    /// Largest change of a cell's multiplier per recompute, thousandths
    /// (default 500 = 0.5×); a multiple of the curve's step.
    pub max_change_milli: u32,
    /// Threads that walk and locate drivers in a recompute (default 2).
    pub threads: usize,
    /// Bound on the cell cache's tiles (default 2^18, 320 bytes each;
    /// beyond it new areas are located by `h3o` directly).
    pub max_tiles: usize,
}

dispatchkit_geo_index::deserialize_checked!(
    surge_config_serde,
    SurgeConfig {
        resolution: Resolution,
        window: Duration,
        curve: SurgeCurve,
        smoothing_k: u32,
        neighbour_weight: Bps,
        max_change_milli: u32,
        threads: usize,
        max_tiles: usize,
    },
    SurgeConfig::validate,
    PricingError
);

impl Default for SurgeConfig {
    fn default() -> Self {
        Self {
            resolution: Resolution::Seven,
            window: Duration::from_secs(300),
            curve: SurgeCurve::default(),
            smoothing_k: 1,
            neighbour_weight: Bps(3_000),
            max_change_milli: 500,
            threads: 2,
            max_tiles: DEFAULT_MAX_TILES,
        }
    }
}

impl SurgeConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`PricingError::InvalidConfig`] naming the field: a zero window,
    /// an invalid curve, `max_change_milli` zero or not a multiple of the
    /// step, a neighbour weight above 100 %, `smoothing_k > 8`, `threads`
    /// outside `1..=64`, zero `max_tiles`.
    pub fn validate(&self) -> Result<(), PricingError> {
        let bad = |what, value: i64, reason| {
            Err(PricingError::InvalidConfig {
                what,
                value,
                reason,
            })
        };
        self.curve.validate()?;
        if self.window.is_zero() {
            return bad("window", 0, "the demand window must be longer than zero");
        }
        let step = self.curve.step_milli;
        if self.max_change_milli == 0 || !self.max_change_milli.is_multiple_of(step) {
            return bad(
                "max_change_milli",
                i64::from(self.max_change_milli),
                "must be a positive multiple of the curve step",
            );
        }
        if self.neighbour_weight > Bps::FULL {
            return bad(
                "neighbour_weight",
                i64::from(self.neighbour_weight.0),
                "at most 10000 bps",
            );
        }
        if self.smoothing_k > 8 {
            return bad(
                "smoothing_k",
                i64::from(self.smoothing_k),
                "at most 8 rings",
            );
        }
        if !(1..=64).contains(&self.threads) {
            return bad("threads", self.threads as i64, "must be in 1..=64");
        }
        if self.max_tiles == 0 {
            return bad("max_tiles", 0, "must be at least 1");
        }
        Ok(())
    }
}

/// What one [`SurgeEngine::recompute_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecomputeStats {
    /// Version of the published map.
    pub version: u64,
    /// Drivers counted as supply.
    pub drivers: usize,
    /// Supply positions skipped as invalid (non-finite or out of range).
    pub skipped: usize,
    /// Drivers located by the warm cell cache without `h3o`.
    pub fast_path: usize,
    /// Requests in the window.
    pub requests: usize,
    /// Zones in the map.
    pub cells: usize,
    /// Zones with a multiplier above 1.0.
    pub surging: usize,
}

#[derive(Debug)]
struct EngineState {
    locator: Locator,
    /// Published multipliers above 1.0 (thousandths): the time-smoothing
    /// baseline of the next recompute.
    prev: FastMap<CellIndex, u32>,
    version: u64,
}

/// Surge pricing for one city (or any region): demand = ride requests per
/// H3 cell over a sliding window, supply = available drivers per cell read
/// from a [`SupplySource`] (the geo index), multiplier from a
/// [`SurgeCurve`], smoothed over the grid disk of each cell and bounded in
/// its change per recompute. `Send + Sync`: requests are recorded and
/// lookups served from any thread while a recompute runs (lookups read the
/// previous map until the new one is published).
///
/// ```
/// use std::time::Instant;
/// use geo::Point;
/// use dispatchkit_pricing::{Multiplier, PricingError, SurgeConfig, SurgeEngine};
///
/// let engine = SurgeEngine::new(SurgeConfig::default())?;
/// let t0 = Instant::now();
/// let here = Point::new(-122.335, 47.608);
/// for _ in 0..6 {
///     engine.record_request_at(here, t0)?;
/// }
/// let drivers = vec![here, here];                 // 6 requests / 2 drivers = ratio 3.0
/// engine.recompute_at(&drivers, t0);
/// // Curve: 1.0 + (3.0 − 1.2) = 2.8x; 70 % own excess + 30 % neighbours' (none):
/// // 1.0 + 0.7 × 1.8 = 2.26 → 2.2x; bounded to +0.5x per recompute → 1.5x now.
/// assert_eq!(engine.multiplier_at(here)?, Multiplier::from_milli(1_500)?);
/// let hot = engine.snapshot().hottest(1);
/// assert_eq!(hot[0].1.ratio_milli, 3_000);
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Debug)]
pub struct SurgeEngine {
    config: SurgeConfig,
    demand: Mutex<DemandWindow>,
    state: Mutex<EngineState>,
    published: RwLock<Arc<SurgeMap>>,
    emergency: AtomicBool,
    lock_waits: AtomicU64,
}

impl SurgeEngine {
    /// An engine with `config`.
    ///
    /// # Errors
    /// As [`SurgeConfig::validate`].
    pub fn new(config: SurgeConfig) -> Result<Self, PricingError> {
        config.validate()?;
        Ok(Self {
            demand: Mutex::new(DemandWindow::new(config.window)),
            state: Mutex::new(EngineState {
                locator: Locator::new(config.resolution, config.max_tiles),
                prev: FastMap::default(),
                version: 0,
            }),
            published: RwLock::new(Arc::new(SurgeMap::empty(
                config.resolution,
                config.curve.cap,
            ))),
            emergency: AtomicBool::new(false),
            lock_waits: AtomicU64::new(0),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SurgeConfig {
        &self.config
    }

    /// Declares or ends an emergency: while declared, recomputes cap every
    /// multiplier at the curve's `emergency_cap` (immediately, regardless
    /// of the bounded change per recompute).
    pub fn set_emergency(&self, on: bool) {
        self.emergency.store(on, Ordering::Relaxed);
    }

    /// Whether an emergency is declared.
    pub fn emergency(&self) -> bool {
        self.emergency.load(Ordering::Relaxed)
    }

    /// Times a caller found the demand lock taken (contention figure).
    pub fn lock_waits(&self) -> u64 {
        self.lock_waits.load(Ordering::Relaxed)
    }

    fn demand(&self) -> parking_lot::MutexGuard<'_, DemandWindow> {
        match self.demand.try_lock() {
            Some(g) => g,
            None => {
                self.lock_waits.fetch_add(1, Ordering::Relaxed);
                self.demand.lock()
            }
        }
    }

    /// Records a ride request at `point` at `now`; returns its cell.
    /// O(1) (one `h3o` conversion).
    ///
    /// # Errors
    /// [`PricingError::InvalidPosition`]; nothing is recorded.
    pub fn record_request_at(
        &self,
        point: Point<f64>,
        now: Instant,
    ) -> Result<CellIndex, PricingError> {
        let cell = cell_of(point, self.config.resolution)?;
        self.demand().record(cell, now);
        Ok(cell)
    }

    /// [`SurgeEngine::record_request_at`] with `Instant::now()`.
    ///
    /// # Errors
    /// As [`SurgeEngine::record_request_at`].
    pub fn record_request(&self, point: Point<f64>) -> Result<CellIndex, PricingError> {
        self.record_request_at(point, Instant::now())
    }

    /// Records a request in a known cell of the engine's resolution.
    ///
    /// # Errors
    /// [`PricingError::InvalidConfig`] for a cell of another resolution.
    pub fn record_request_in_cell_at(
        &self,
        cell: CellIndex,
        now: Instant,
    ) -> Result<(), PricingError> {
        if cell.resolution() != self.config.resolution {
            return Err(PricingError::InvalidConfig {
                what: "cell resolution",
                value: i64::from(u8::from(cell.resolution())),
                reason: "differs from the engine's resolution",
            });
        }
        self.demand().record(cell, now);
        Ok(())
    }

    /// The last published map.
    pub fn snapshot(&self) -> Arc<SurgeMap> {
        Arc::clone(&self.published.read())
    }

    /// The published multiplier at `point`. O(1).
    ///
    /// # Errors
    /// [`PricingError::InvalidPosition`].
    pub fn multiplier_at(&self, point: Point<f64>) -> Result<Multiplier, PricingError> {
        let cell = cell_of(point, self.config.resolution)?;
        Ok(self.published.read().multiplier(cell))
    }

    /// [`SurgeEngine::recompute_at`] with `Instant::now()`.
    pub fn recompute<S: SupplySource + Sync + ?Sized>(&self, supply: &S) -> RecomputeStats {
        self.recompute_at(supply, Instant::now())
    }

    /// Refreshes the whole map at `now`: expires old requests, counts the
    /// available drivers of `supply` per cell (on `threads` threads that
    /// share its parts, [`SupplySource::parts`], with the exact cell
    /// cache), applies the curve, the neighbour smoothing
    /// and the bounded change, and publishes the new map. Recomputes are
    /// serialised. O(drivers + active cells × disk size).
    ///
    /// Per cell `c`, all in integer thousandths:
    /// `raw(c) = curve(demand × 1000 / max(supply, 1))`;
    /// `e(c) = raw(c) − 1000`;
    /// `s(c) = ⌊e(c) × (1 − w) + w × Σ_{n ∈ disk(c, k) ∖ c} e(n) / (3k(k+1))⌋`,
    /// quantised down to the step (cells off the map count as 1.0;
    /// pentagon disks are short and count the missing cells as 1.0);
    /// `m(c) = clamp(1000 + s(c), prev(c) − Δ, prev(c) + Δ)`, at most the
    /// cap in force.
    pub fn recompute_at<S: SupplySource + Sync + ?Sized>(
        &self,
        supply: &S,
        now: Instant,
    ) -> RecomputeStats {
        let mut st = self.state.lock();
        let st = &mut *st;
        let (supply_counts, drivers, skipped, fast) =
            self.count_supply(&mut st.locator, supply, now);
        let (demand_counts, requests) = {
            let mut d = self.demand();
            d.expire(now);
            (d.counts().clone(), d.len())
        };
        let emergency = self.emergency();
        st.version += 1;
        let map = self.build_map(
            &supply_counts,
            &demand_counts,
            &mut st.prev,
            emergency,
            st.version,
            now,
        );
        let stats = RecomputeStats {
            version: st.version,
            drivers,
            skipped,
            fast_path: fast,
            requests,
            cells: map.len(),
            surging: st.prev.len(),
        };
        *self.published.write() = Arc::new(map);
        stats
    }

    /// Available drivers per cell; exact (equal to one `h3o` conversion
    /// per driver). Returns the counts, drivers counted, positions skipped
    /// and drivers located without `h3o`.
    fn count_supply<S: SupplySource + Sync + ?Sized>(
        &self,
        locator: &mut Locator,
        supply: &S,
        now: Instant,
    ) -> (FastMap<CellIndex, u32>, usize, usize, usize) {
        let passes = scan(locator, supply, now, self.config.threads);
        let mut counts: FastMap<CellIndex, u32> = FastMap::default();
        let mut by_slot = vec![0_u32; locator.slots()];
        let (mut drivers, mut skipped, mut fast) = (0, 0, 0);
        for p in &passes {
            for (s, &n) in p.by_slot.iter().enumerate() {
                by_slot[s] += n;
                drivers += n as usize;
            }
            for (&c, &n) in &p.extra {
                *counts.entry(c).or_insert(0) += n;
                drivers += n as usize;
            }
            skipped += p.skipped;
            fast += p.fast;
        }
        for (s, &n) in by_slot.iter().enumerate() {
            if n > 0 {
                *counts.entry(locator.cell(s as u32)).or_insert(0) += n;
            }
        }
        for p in &passes {
            locator.absorb(&p.learner);
        }
        (counts, drivers, skipped, fast)
    }

    fn build_map(
        &self,
        supply: &FastMap<CellIndex, u32>,
        demand: &FastMap<CellIndex, u32>,
        prev: &mut FastMap<CellIndex, u32>,
        emergency: bool,
        version: u64,
        now: Instant,
    ) -> SurgeMap {
        let cfg = &self.config;
        let curve = &cfg.curve;
        let cap = u64::from(curve.effective_cap(emergency).milli());
        let mut cells: FastMap<CellIndex, CellSurge> = FastMap::default();
        let blank = CellSurge {
            demand: 0,
            supply: 0,
            ratio_milli: 0,
            multiplier: Multiplier::ONE,
        };
        for (&c, &n) in supply {
            cells.entry(c).or_insert(blank).supply = n;
        }
        for (&c, &n) in demand {
            cells.entry(c).or_insert(blank).demand = n;
        }
        let mut excess: FastMap<CellIndex, u64> = FastMap::default();
        for (&c, s) in cells.iter_mut() {
            s.ratio_milli = u64::from(s.demand) * 1_000 / u64::from(s.supply.max(1));
            let raw = curve.multiplier(s.ratio_milli, emergency).milli();
            if raw > 1_000 {
                excess.insert(c, u64::from(raw) - 1_000);
            }
        }
        let mut target: FastMap<CellIndex, u64> = FastMap::default();
        let k = cfg.smoothing_k;
        let w = u64::from(cfg.neighbour_weight.0);
        if k > 0 && w > 0 {
            let ring = 3 * u64::from(k) * (u64::from(k) + 1);
            let mut nb: FastMap<CellIndex, u64> = FastMap::default();
            for (&c, &e) in &excess {
                for n in c.grid_disk_safe(k) {
                    if n != c {
                        *nb.entry(n).or_insert(0) += e;
                    }
                }
            }
            let mut all: Vec<CellIndex> = excess.keys().chain(nb.keys()).copied().collect();
            all.sort_unstable();
            all.dedup();
            for c in all {
                let own = excess.get(&c).copied().unwrap_or(0);
                let around = nb.get(&c).copied().unwrap_or(0);
                let v = (u128::from(own) * u128::from(10_000 - w) * u128::from(ring)
                    + u128::from(around) * u128::from(w))
                    / (10_000 * u128::from(ring));
                let m = curve.quantise(1_000 + v as u64).min(cap);
                if m > 1_000 {
                    target.insert(c, m);
                }
            }
        } else {
            target.extend(excess.iter().map(|(&c, &e)| (c, (1_000 + e).min(cap))));
        }
        let delta = u64::from(cfg.max_change_milli);
        let mut next: FastMap<CellIndex, u32> = FastMap::default();
        let mut keys: Vec<CellIndex> = target.keys().chain(prev.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for c in keys {
            let t = target.get(&c).copied().unwrap_or(1_000);
            let p = prev.get(&c).map_or(1_000, |&m| u64::from(m));
            let m = t
                .clamp(p.saturating_sub(delta).max(1_000), p + delta)
                .min(cap);
            if m > 1_000 {
                next.insert(c, m as u32);
                cells.entry(c).or_insert(blank).multiplier = Multiplier::within_bounds(m as u32);
            }
        }
        *prev = next;
        SurgeMap {
            resolution: cfg.resolution,
            version,
            computed_at: Some(now),
            emergency,
            cap: curve.effective_cap(emergency),
            cells,
        }
    }

    /// Checks every invariant: demand counts tally the window, the
    /// locator's tables are consistent, every published multiplier is
    /// `1.0 + k × step`, at most the cap in force, and equals the
    /// time-smoothing baseline. Panics with a description otherwise. For
    /// tests (public so that integration tests can call it); O(state).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.demand.lock().check_invariants();
        let st = self.state.lock();
        st.locator.check_invariants();
        let map = self.snapshot();
        assert_eq!(map.version, st.version);
        let step = self.config.curve.step_milli;
        for (c, s) in map.iter() {
            let m = s.multiplier.milli();
            assert!(m >= 1_000 && m <= map.cap.milli(), "{m} outside 1.0..=cap");
            assert_eq!((m - 1_000) % step, 0, "{m} off the step grid");
            assert_eq!(
                st.prev.get(&c).copied().unwrap_or(1_000),
                m,
                "baseline differs from the published multiplier"
            );
            assert_eq!(
                s.ratio_milli,
                u64::from(s.demand) * 1_000 / u64::from(s.supply.max(1))
            );
        }
        assert!(st.prev.keys().all(|c| map.get(*c).is_some()));
    }
}

#[cfg(test)]
#[path = "surge_tests.rs"]
mod tests;
