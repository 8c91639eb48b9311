//! Surge: every ride request is recorded as demand in its H3 cell; every
//! simulated minute the engine recounts live supply (available cars and
//! XLs in the geo index) and publishes a new map that quotes read.

use std::sync::Arc;
use std::time::Instant;

use dispatchkit::geo::{Filter, GeoError};
use dispatchkit::pricing::{
    Multiplier, PricingError, SupplySource, SurgeConfig, SurgeEngine, SurgeMap,
};
use geo::Point;

use crate::fleet::ride_vehicles;
use crate::index::Index;
use crate::report::{Latencies, Minute};

/// Available ride drivers of the index (couriers on bikes are not ride
/// supply), read at `now` (on Redis: from a snapshot).
struct RideSupply(Vec<Point<f64>>);

impl RideSupply {
    fn read(index: &Index, now: Instant) -> Result<Self, GeoError> {
        let filter = Filter::available().vehicles(ride_vehicles());
        let mut points = Vec::new();
        index.for_each_matching_at(now, &filter, |p| points.push(p.into()))?;
        Ok(RideSupply(points))
    }
}

impl SupplySource for RideSupply {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.0.for_each_supply(now, f);
    }

    fn size_hint(&self) -> usize {
        self.0.len()
    }

    fn parts(&self) -> usize {
        self.0.parts()
    }

    fn for_each_supply_in(&self, part: usize, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.0.for_each_supply_in(part, now, f);
    }
}

pub struct Surge {
    engine: SurgeEngine,
    /// The published map quotes read (replaced once a minute).
    pub map: Arc<SurgeMap>,
    pub minutes: Vec<Minute>,
    pub record_latency: Latencies,
    pub lookup_latency: Latencies,
    pub recompute_latency: Latencies,
}

impl Surge {
    pub fn new() -> Result<Self, PricingError> {
        let engine = SurgeEngine::new(SurgeConfig::default())?;
        Ok(Self {
            map: engine.snapshot(),
            engine,
            minutes: Vec::new(),
            record_latency: Latencies::default(),
            lookup_latency: Latencies::default(),
            recompute_latency: Latencies::default(),
        })
    }

    /// Records a ride request at `pickup` and returns the multiplier its
    /// quote gets (from the last published map).
    pub fn request(
        &mut self,
        pickup: Point<f64>,
        now: Instant,
    ) -> Result<Multiplier, PricingError> {
        let t = Instant::now();
        self.engine.record_request_at(pickup, now)?;
        self.record_latency.record(t.elapsed());
        self.multiplier(pickup)
    }

    /// The published multiplier at `p`.
    pub fn multiplier(&mut self, p: Point<f64>) -> Result<Multiplier, PricingError> {
        let t = Instant::now();
        let m = self.map.multiplier_at(p)?;
        self.lookup_latency.record(t.elapsed());
        Ok(m)
    }

    /// Recomputes from the index at `now` (minute `minute`) and publishes.
    pub fn recompute(&mut self, index: &Index, now: Instant, minute: u32) -> Result<(), GeoError> {
        let t = Instant::now();
        let stats = self
            .engine
            .recompute_at(&RideSupply::read(index, now)?, now);
        self.recompute_latency.record(t.elapsed());
        self.map = self.engine.snapshot();
        let max = self
            .map
            .iter()
            .map(|(_, c)| c.multiplier)
            .max()
            .unwrap_or(Multiplier::ONE);
        self.minutes.push(Minute {
            minute,
            available: stats.drivers as u64,
            requests_in_window: stats.requests as u64,
            cells: stats.cells as u64,
            surging: stats.surging as u64,
            max_multiplier: max.to_string(),
        });
        Ok(())
    }
}
