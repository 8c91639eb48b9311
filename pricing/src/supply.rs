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
///
/// A source that can be walked in independent parts (a `GeoIndex` by
/// shard, a slice by range) says so with [`SupplySource::parts`]; the
/// engine's threads then share them out, each walking its own. A source
/// with one part is walked by one thread, which hands its positions to
/// the others.
pub trait SupplySource {
    /// Calls `f(lon, lat)` once per driver that counts as supply at `now`.
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64));

    /// About how many positions [`SupplySource::for_each_supply`] visits
    /// (an upper bound is fine); small sources are scanned on one thread.
    fn size_hint(&self) -> usize {
        usize::MAX
    }

    /// How many parts the source can be walked in, at the same time from
    /// different threads, by [`SupplySource::for_each_supply_in`]
    /// (default 1: the whole source, walked sequentially). A recompute
    /// calls `for_each_supply_in` once per part, so parts should be many
    /// drivers each (a shard, tens of thousands of rows), not one.
    fn parts(&self) -> usize {
        1
    }

    /// Calls `f(lon, lat)` once per driver of part `part` that counts as
    /// supply at `now`. The parts `0..parts()` together visit what
    /// [`SupplySource::for_each_supply`] does, each driver once; a part at
    /// or beyond `parts()` has no drivers. The default: part 0 is the whole
    /// source.
    fn for_each_supply_in(&self, part: usize, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        if part == 0 {
            self.for_each_supply(now, f);
        }
    }
}

/// Rows per part of a slice or a snapshot.
const SLICE_PART: usize = 65_536;

/// The parts of `rows`, [`SLICE_PART`] rows each.
fn row_parts<T>(rows: &[T]) -> usize {
    rows.len().div_ceil(SLICE_PART)
}

/// Part `part` of `rows` (empty beyond the last).
fn row_part<T>(rows: &[T], part: usize) -> &[T] {
    rows.chunks(SLICE_PART).nth(part).unwrap_or_default()
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

    fn parts(&self) -> usize {
        row_parts(self)
    }

    fn for_each_supply_in(&self, part: usize, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        row_part(self, part).for_each_supply(now, f);
    }
}

impl SupplySource for Vec<Point<f64>> {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.as_slice().for_each_supply(now, f);
    }

    fn size_hint(&self) -> usize {
        self.len()
    }

    fn parts(&self) -> usize {
        self.as_slice().parts()
    }

    fn for_each_supply_in(&self, part: usize, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.as_slice().for_each_supply_in(part, now, f);
    }
}

/// Live drivers whose status is `Status::AVAILABLE`, visited shard by shard
/// (the index walks its ~600 m grid cells in order, so consecutive drivers
/// are close together, which the engine's cell cache exploits); one part
/// per shard. A scan, not a snapshot: with writers running, a driver that
/// moves (or whose cell splits) meanwhile may count twice or, if it moved,
/// not at all (`GeoIndex::for_each_at`).
impl SupplySource for dispatchkit_geo_index::GeoIndex {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        let available = dispatchkit_geo_index::Filter::available();
        self.for_each_matching_at(now, &available, |_, pos, _| f(pos.lon(), pos.lat()));
    }

    fn size_hint(&self) -> usize {
        self.len()
    }

    fn parts(&self) -> usize {
        self.shard_count()
    }

    fn for_each_supply_in(&self, part: usize, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        let available = dispatchkit_geo_index::Filter::available();
        // A part beyond the shards has no drivers (the trait's contract).
        let _ = self.for_each_matching_in_shard_at(part, now, &available, |_, pos, _| {
            f(pos.lon(), pos.lat());
        });
    }
}

/// The snapshot's drivers whose status is `Status::AVAILABLE` (a snapshot
/// holds only drivers live at its time; `now` is not consulted); parts are
/// ranges of its rows.
impl SupplySource for dispatchkit_geo_index::Snapshot {
    fn for_each_supply(&self, _now: Instant, f: &mut dyn FnMut(f64, f64)) {
        available_in(&self.drivers, f);
    }

    fn size_hint(&self) -> usize {
        self.drivers.len()
    }

    fn parts(&self) -> usize {
        row_parts(&self.drivers)
    }

    fn for_each_supply_in(&self, part: usize, _now: Instant, f: &mut dyn FnMut(f64, f64)) {
        available_in(row_part(&self.drivers, part), f);
    }
}

fn available_in(drivers: &[dispatchkit_geo_index::SnapshotDriver], f: &mut dyn FnMut(f64, f64)) {
    let available = dispatchkit_geo_index::Filter::available();
    for d in drivers.iter().filter(|d| available.matches(&d.attrs)) {
        f(d.pos.lon(), d.pos.lat());
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

    /// Every driver of `s` once, by parts.
    fn by_parts(s: &dyn SupplySource, t: Instant) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        for part in 0..=s.parts() {
            // `parts()` itself is one beyond the last part: empty.
            s.for_each_supply_in(part, t, &mut |x, y| v.push((x.to_bits(), y.to_bits())));
        }
        v.sort_unstable();
        v
    }

    fn whole(s: &dyn SupplySource, t: Instant) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        s.for_each_supply(t, &mut |x, y| v.push((x.to_bits(), y.to_bits())));
        v.sort_unstable();
        v
    }

    /// The parts of every source together supply what the whole source
    /// does, each driver once: an index (one part per shard), its
    /// snapshot and a vector (parts of 65,536 rows), with more than one
    /// part each.
    #[test]
    fn parts_together_supply_the_whole() {
        let (t, index) = (Instant::now(), GeoIndex::new());
        let points: Vec<Point<f64>> = (0..70_000u32)
            .map(|i| {
                Point::new(
                    2.0 + f64::from(i % 300) * 1e-3,
                    48.0 + f64::from(i / 300) * 1e-3,
                )
            })
            .collect();
        let updates: Vec<_> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut a = Attrs::default();
                if i % 3 == 0 {
                    a.status = Status::BUSY;
                }
                dispatchkit_geo_index::DriverUpdate::new(
                    DriverId::from(i as u32),
                    LonLat::new(p.x(), p.y()).unwrap(),
                    t,
                )
                .with_attrs(a)
            })
            .collect();
        let _ = index.upsert_batch_at(&updates, t);
        let snapshot = index.snapshot_at(t);
        assert!(index.parts() > 1 && snapshot.parts() > 1 && points.parts() > 1);
        let from_index = whole(&index, t);
        assert_eq!(from_index.len(), 70_000 - 70_000_usize.div_ceil(3));
        assert_eq!(by_parts(&index, t), from_index);
        assert_eq!(by_parts(&snapshot, t), from_index);
        assert_eq!(whole(&snapshot, t), from_index);
        assert_eq!(by_parts(&points, t), whole(&points, t));
    }
}
