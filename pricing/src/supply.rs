//! Where the surge engine reads available drivers from.

use std::time::Instant;

use geo::Point;

/// A source of available-driver positions for [`SurgeEngine::recompute_at`](crate::SurgeEngine::recompute_at).
///
/// Implemented for slices and vectors of `geo::Point` (every point counts)
/// and for `dispatchkit_geo_index::GeoIndex` (live drivers whose status is
/// `Status::AVAILABLE`).
pub trait SupplySource {
    /// Calls `f(lon, lat)` once per driver that counts as supply at `now`.
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64));

    /// About how many positions [`SupplySource::for_each_supply`] visits
    /// (an upper bound is fine); small sources are scanned on one thread.
    fn size_hint(&self) -> usize {
        usize::MAX
    }
}

impl SupplySource for [Point<f64>] {
    fn for_each_supply(&self, _now: Instant, f: &mut dyn FnMut(f64, f64)) {
        for p in self {
            f(p.x(), p.y());
        }
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}

impl SupplySource for Vec<Point<f64>> {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.as_slice().for_each_supply(now, f);
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}

/// Live drivers whose status is `Status::AVAILABLE`, visited shard by shard
/// (the index walks its ~600 m grid cells in order, so consecutive drivers
/// are close together, which the engine's cell cache exploits).
impl SupplySource for dispatchkit_geo_index::GeoIndex {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        let available = dispatchkit_geo_index::Filter::available();
        self.for_each_matching_at(now, &available, |_, pos, _| f(pos.lon(), pos.lat()));
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}
