//! Where the surge engine reads available drivers from.

use std::time::Instant;

use geo::Point;

/// A source of available-driver positions for [`SurgeEngine::recompute_at`](crate::SurgeEngine::recompute_at).
///
/// Implemented for slices and vectors of `geo::Point` (every point counts),
/// for `dispatchkit_geo_index::GeoIndex` (live drivers whose status is
/// `Status::AVAILABLE`), and for a `dispatchkit_geo_index::Snapshot` (its
/// available drivers: how a `RedisGeoIndex` feeds the engine, through
/// `RedisGeoIndex::snapshot_at`, one pass over Redis per recompute).
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

/// The snapshot's drivers whose status is `Status::AVAILABLE` (a snapshot
/// holds only drivers live at its time; `now` is not consulted).
impl SupplySource for dispatchkit_geo_index::Snapshot {
    fn for_each_supply(&self, _now: Instant, f: &mut dyn FnMut(f64, f64)) {
        let available = dispatchkit_geo_index::Filter::available();
        for d in self.drivers.iter().filter(|d| available.matches(&d.attrs)) {
            f(d.pos.lon(), d.pos.lat());
        }
    }

    fn size_hint(&self) -> usize {
        self.drivers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat, Status};

    /// A snapshot is the same supply as the index it was taken from.
    #[test]
    fn a_snapshot_supplies_what_its_index_does() {
        let (t, index) = (Instant::now(), GeoIndex::new());
        for i in 0..50u32 {
            let mut a = Attrs::default();
            if i % 3 == 0 {
                a.status = Status::BUSY;
            }
            let p = LonLat::new(-0.1 + f64::from(i) * 1e-3, 51.5).unwrap();
            let _ = index.upsert_at(DriverId::from(i), p, a, t).unwrap();
        }
        let collect = |s: &dyn SupplySource| {
            let mut v = Vec::new();
            s.for_each_supply(t, &mut |x, y| v.push((x.to_bits(), y.to_bits())));
            v.sort_unstable();
            v
        };
        let from_index = collect(&index);
        assert_eq!(from_index.len(), 33);
        assert_eq!(collect(&index.snapshot_at(t)), from_index);
    }
}
