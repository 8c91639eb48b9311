//! Issue 14, the geo index's cases: hostile input and races. Each test is
//! named after its case and failed before the fix; every call that could
//! hang runs under a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverUpdate, Fence, FenceEventKind, GeoError, GeoIndex, IndexConfig,
    LAT_LIMIT, LonLat, Search, Snapshot, SnapshotDriver, Status, Unit, redis_geohash,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use dispatchkit_test_support::cases;
use dispatchkit_test_support::within;

fn ll(lon: f64, lat: f64) -> LonLat {
    LonLat::new(lon, lat).unwrap()
}

fn id(i: u64) -> DriverId {
    DriverId::new(i).unwrap()
}

fn populated(t0: Instant) -> Arc<GeoIndex> {
    let index = Arc::new(
        GeoIndex::with_config(IndexConfig {
            epoch: Some(t0),
            ..IndexConfig::default()
        })
        .unwrap(),
    );
    for i in 0..200u64 {
        let _ = index
            .upsert_at(
                id(i),
                ll(-122.33 + i as f64 * 1e-4, 47.61),
                Attrs::default(),
                t0,
            )
            .unwrap();
    }
    index
}

#[test]
fn case_01_reserved_id_is_unrepresentable_and_reads_return() {
    assert_eq!(DriverId::new(u64::MAX), Err(GeoError::ReservedId(u64::MAX)));
    assert!(DriverId::try_from(u64::MAX).is_err());
    assert_eq!(DriverId::MAX.get(), u64::MAX - 1);
    // JSON cannot build it either.
    assert!(serde_json::from_str::<DriverId>("18446744073709551615").is_err());
    assert_eq!(serde_json::from_str::<DriverId>("7").unwrap(), id(7));
    // The largest ids on every read / claim / search path of a non-empty
    // index: typed errors, promptly.
    let t0 = Instant::now();
    let index = populated(t0);
    for probe in [DriverId::MAX, id(u64::MAX - 2), id(1 << 63)] {
        let ix = Arc::clone(&index);
        within(10, move || {
            let unknown = Err(GeoError::UnknownDriver(probe));
            assert_eq!(ix.get_at(probe, t0).map(|_| ()), unknown);
            assert_eq!(
                ix.compare_and_set_status_at(probe, Status::AVAILABLE, Status::BUSY, t0),
                Err(GeoError::UnknownDriver(probe))
            );
            assert_eq!(ix.remove_at(probe, t0).map(|_| ()), unknown);
            assert_eq!(
                ix.search_at(&Search::member_radius(probe, 5.0, Unit::Kilometers), t0),
                Err(GeoError::UnknownDriver(probe))
            );
            assert_eq!(
                ix.move_at(probe, ll(0.0, 0.0), t0),
                Err(GeoError::UnknownDriver(probe))
            );
        });
    }
    // The largest id is an ordinary driver.
    let _ = index
        .upsert_at(DriverId::MAX, ll(0.0, 0.0), Attrs::default(), t0)
        .unwrap();
    assert_eq!(index.get_at(DriverId::MAX, t0).unwrap().id, DriverId::MAX);
    index.check_invariants();
}

#[test]
fn case_03_count_never_preallocates() {
    let t0 = Instant::now();
    let index = populated(t0);
    let c = ll(-122.33, 47.61);
    for q in [
        Search::radius(c, 50.0, Unit::Kilometers)
            .count(usize::MAX)
            .any(),
        Search::radius(c, 50.0, Unit::Kilometers).count(usize::MAX),
        Search::radius(c, 50.0, Unit::Kilometers)
            .count(usize::MAX)
            .desc(),
        Search::boxed(c, 50.0, 50.0, Unit::Kilometers)
            .count(usize::MAX)
            .any(),
    ] {
        let ix = Arc::clone(&index);
        let hits = within(10, move || ix.search_at(&q, t0)).unwrap();
        assert_eq!(hits.len(), 200, "{q:?}");
        let ix = Arc::clone(&index);
        let hits = within(10, move || ix.search_where_at(&q, t0, |_| true)).unwrap();
        assert_eq!(hits.len(), 200, "{q:?}");
    }
    let ix = Arc::clone(&index);
    let near = within(10, move || {
        ix.nearest_at(c, usize::MAX, 5_000.0, &Default::default(), t0)
    });
    assert_eq!(near.unwrap().len(), 200);
}

#[test]
fn case_12_future_updates_and_malformed_snapshots_are_refused() {
    let t0 = Instant::now();
    let index = populated(t0);
    let before = index.snapshot_at(t0);
    let year = Duration::from_secs(365 * 86_400);
    let d = id(5);
    let e = index
        .update_at(DriverUpdate::new(d, ll(1.0, 1.0), t0 + year), t0)
        .unwrap_err();
    assert!(
        matches!(e, GeoError::FutureUpdate { max_skew_ms: 5_000, ahead_ms } if ahead_ms >= 365 * 86_400_000),
        "{e}"
    );
    assert!(e.to_string().contains("max_future_skew"), "{e}");
    let report = index.upsert_batch_at(&[DriverUpdate::new(d, ll(1.0, 1.0), t0 + year)], t0);
    assert!(matches!(
        report.rejected[..],
        [(0, GeoError::FutureUpdate { .. })]
    ));
    // Before the epoch, or past the 40-bit timeline.
    let early = t0.checked_sub(Duration::from_secs(1)).unwrap();
    assert!(matches!(
        index.update_at(DriverUpdate::new(d, ll(1.0, 1.0), early), t0),
        Err(GeoError::TimeOutOfRange { .. })
    ));
    let far = t0 + Duration::from_millis(1 << 41);
    assert!(matches!(
        index.update_at(DriverUpdate::new(d, ll(1.0, 1.0), far), far),
        Err(GeoError::TimeOutOfRange { .. })
    ));
    assert_eq!(
        index.snapshot_at(t0),
        before,
        "refused updates changed the index"
    );
    // Within the skew: accepted; later real updates are not stale, and the
    // driver still expires on time.
    let skewed = t0 + Duration::from_secs(4);
    let _ = index
        .update_at(DriverUpdate::new(d, ll(1.0, 1.0), skewed), t0)
        .unwrap();
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(
        index.update_at(DriverUpdate::new(d, ll(1.0, 2.0), t1), t1),
        Ok(dispatchkit_geo_index::Upsert::Moved)
    );
    assert!(index.get_at(d, t1 + Duration::from_secs(30)).is_err());
    // A far-future read sees everything expired; nothing wraps.
    assert_eq!(index.live_len_at(t0 + 400 * year), 0);

    // Snapshots: absurd ages and duplicates are refused whole.
    let good = index.snapshot_at(t1);
    let cfg = IndexConfig::default();
    assert!(GeoIndex::restore_at(&good, cfg, t1).is_ok());
    let with = |f: &dyn Fn(&mut Snapshot)| {
        let mut s = good.clone();
        f(&mut s);
        GeoIndex::restore_at(&s, cfg, t1).unwrap_err()
    };
    for age in [i64::MIN, i64::MAX, -6_000, 30_000] {
        let e = with(&|s: &mut Snapshot| s.drivers[3].age_ms = age);
        assert!(
            matches!(e, GeoError::InvalidSnapshot { row: 3, .. }),
            "age {age}: {e}"
        );
    }
    let e = with(&|s: &mut Snapshot| {
        let dup: SnapshotDriver = s.drivers[0];
        s.drivers.push(dup);
    });
    assert!(matches!(e, GeoError::InvalidSnapshot { reason, .. } if reason.contains("twice")));
    let e = with(&|s: &mut Snapshot| s.drivers[1].ttl_ms = Some(0));
    assert!(matches!(e, GeoError::InvalidValue { .. }), "{e}");
    let e = with(&|s: &mut Snapshot| s.default_ttl_ms = 0);
    assert!(matches!(e, GeoError::InvalidValue { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(10_000),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Case 15: WITHHASH of the stored point is Redis's hash of the input,
    /// for inputs anywhere and for inputs on the edges of Redis cells
    /// (where quantisation used to cross into the next cell).
    #[test]
    fn case_15_withhash_is_geoadd_hash_of_the_input(
        lon in -180.0f64..=180.0,
        lat in -LAT_LIMIT..=LAT_LIMIT,
        cell in 0u64..(1 << 26),
        nudge in -4i32..=4,
    ) {
        let p = LonLat::new(lon, lat).unwrap();
        prop_assert_eq!(p.redis_geohash(), redis_geohash(lon, lat));
        // A latitude a few ulps from a cell edge.
        let edge = -LAT_LIMIT + (cell as f64 / 67_108_864.0) * (2.0 * LAT_LIMIT);
        let lat = f64::from_bits((edge.to_bits() as i64 + i64::from(nudge)) as u64)
            .clamp(-LAT_LIMIT, LAT_LIMIT);
        let p = LonLat::new(lon, lat).unwrap();
        prop_assert_eq!(p.redis_geohash(), redis_geohash(lon, lat));
        prop_assert!(p.distance_m(LonLat::new(lon, p.lat()).unwrap()) < 0.01);
    }
}

#[test]
fn case_16_concurrent_fence_replacement_leaves_one_shape() {
    let t0 = Instant::now();
    let index = Arc::new(
        GeoIndex::with_config(IndexConfig {
            epoch: Some(t0),
            shards: 64,
            ..IndexConfig::default()
        })
        .unwrap(),
    );
    // Two writers replace the same fence at once; rounds repeat (up to 50)
    // until the index has seen them contend, which a loaded 2-core machine
    // may not schedule in every round.
    for _round in 0..50 {
        let barrier = Arc::new(Barrier::new(2));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (index, barrier) = (Arc::clone(&index), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    for k in 0..2_000 {
                        // Large circles spanning many tiles (and shards), each
                        // thread its own centre.
                        let lon = if (w + k) % 2 == 0 { 10.0 } else { 10.5 };
                        let fence = Fence::Circle {
                            center: ll(lon, 50.0),
                            radius_m: 60_000.0,
                        };
                        index.add_fence(7, fence).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        if index.stats().lock_contentions > 0 {
            break;
        }
    }
    assert!(
        index.stats().lock_contentions > 0,
        "the two writers never contended"
    );
    // Whatever shape won, a driver entering it gets exactly one event, and
    // after removal no tile still holds the fence.
    let d = id(1);
    let r = index.upsert_batch_at(&[DriverUpdate::new(d, ll(10.25, 50.0), t0)], t0);
    assert_eq!(r.events.len(), 1, "{:?}", r.events);
    assert_eq!(r.events[0].kind, FenceEventKind::Enter);
    index.remove_fence(7).unwrap();
    for (k, lon) in [9.5, 10.25, 11.0, 10.25].into_iter().enumerate() {
        let t = t0 + Duration::from_secs(k as u64 + 1);
        let r = index.upsert_batch_at(&[DriverUpdate::new(d, ll(lon, 50.0), t)], t);
        assert!(r.events.is_empty(), "orphaned tiles: {:?}", r.events);
    }
    index.check_invariants();
}

#[test]
fn case_17_move_never_resurrects_a_removed_driver() {
    // One thread moves the driver back and forth (across shards); the other
    // removes and re-inserts it. A move checks presence under the lock that
    // moves, so after a removal nobody sees the driver until it is
    // re-inserted, and a re-insert is never undone by a move.
    let t0 = Instant::now();
    let index = populated(t0);
    let d = id(7);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mover = {
        let (index, stop, outcomes) =
            (Arc::clone(&index), Arc::clone(&stop), Arc::clone(&outcomes));
        thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let lon = if k.is_multiple_of(2) { -122.33 } else { 13.4 };
                let t = t0 + Duration::from_millis(k);
                match index.move_at(d, ll(lon, 47.61), t) {
                    Ok(_) => outcomes[0].fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        assert_eq!(e, GeoError::UnknownDriver(d));
                        outcomes[1].fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    for _ in 0..5_000 {
        let _ = index.remove_at(d, t0).expect("only this thread removes");
        assert!(
            index.get_at(d, t0).is_err(),
            "a move resurrected the driver"
        );
        let hits = index
            .search_at(&Search::radius(ll(13.4, 47.61), 5.0, Unit::Kilometers), t0)
            .unwrap();
        assert!(
            hits.iter().all(|h| h.id != d),
            "a move resurrected the driver"
        );
        let _ = index
            .update_at(DriverUpdate::new(d, ll(-122.33, 47.61), t0), t0)
            .unwrap();
        thread::yield_now();
        assert!(index.get_at(d, t0).is_ok(), "a move undid an insert");
    }
    stop.store(true, Ordering::Relaxed);
    mover.join().unwrap();
    let (moved, refused) = (
        outcomes[0].load(Ordering::Relaxed),
        outcomes[1].load(Ordering::Relaxed),
    );
    assert!(
        moved > 0 && refused > 0,
        "no interleaving: {moved} moved, {refused} refused"
    );
    index.check_invariants();
}

#[test]
fn case_18_callbacks_may_call_into_the_index() {
    let t0 = Instant::now();
    let index = populated(t0);
    let stop = Arc::new(AtomicBool::new(false));
    // A writer keeps the shard locks busy (parking_lot queues readers
    // behind a waiting writer, which is what deadlocked a nested read).
    let writer = {
        let (index, stop) = (Arc::clone(&index), Arc::clone(&stop));
        thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let batch: Vec<_> = (0..200u64)
                    .map(|i| {
                        let lon = -122.33 + i as f64 * 1e-4 + (k % 7) as f64 * 1e-6;
                        DriverUpdate::new(id(i), ll(lon, 47.61), t0)
                    })
                    .collect();
                let _ = index.upsert_batch_at(&batch, t0);
            }
        })
    };
    let ix = Arc::clone(&index);
    let claimed = within(30, move || {
        let mut claimed = 0;
        for _ in 0..200 {
            let q = Search::radius(ll(-122.33, 47.61), 5.0, Unit::Kilometers).count(3);
            let hits = ix
                .search_where_at(&q, t0, |v| {
                    // A lookup and an atomic claim from inside the callback.
                    ix.get_at(v.id, t0).is_ok()
                        && ix
                            .compare_and_set_status_at(v.id, Status::AVAILABLE, Status::BUSY, t0)
                            .unwrap_or(false)
                })
                .unwrap();
            claimed += hits.len();
            ix.for_each_at(t0, |v| {
                let _ = ix.get_at(v.id, t0);
            });
            ix.for_each_matching_at(t0, &Default::default(), |d, _, _| {
                let _ = ix.position_at(d, t0);
            });
        }
        claimed
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Every driver was claimed exactly once, three per search.
    assert_eq!(claimed, 200);
    assert!(index.stats().lock_contentions > 0, "no contention happened");
    index.check_invariants();
}

#[test]
fn a_search_at_the_end_of_the_clock_finds_nothing_live() {
    // A `now` so late that its milliseconds since the epoch saturate the
    // clock (u64::MAX): every driver has expired, and no arithmetic on the
    // time may overflow (a CI run's arbitrary-arguments test found one).
    let t0 = Instant::now();
    let index = populated(t0);
    let Some(late) = t0.checked_add(Duration::from_secs(u64::MAX / 1_000 + 1)) else {
        return; // a platform whose Instant cannot reach it cannot pass it in
    };
    for q in [
        Search::radius(ll(-122.33, 47.61), 5.0, Unit::Kilometers).count(3),
        Search::radius(ll(-122.33, 47.61), 5.0, Unit::Kilometers).asc(),
        Search::radius(ll(-122.33, 47.61), 5.0, Unit::Kilometers)
            .count(3)
            .any(),
    ] {
        assert_eq!(index.search_at(&q, late).unwrap(), vec![]);
        assert!(
            !index.search_at(&q, t0).unwrap().is_empty(),
            "populated near the centre"
        );
    }
}

#[test]
fn a_ring_walk_takes_any_count() {
    // A radius small enough for the k-nearest ring walk (not the area
    // scan), with the largest count: the walk's bookkeeping must not
    // overflow on it, and it returns every match, nearest first.
    let t0 = Instant::now();
    let index = populated(t0);
    let c = ll(-122.33, 47.61);
    let all = index
        .search_at(&Search::radius(c, 300.0, Unit::Meters).asc(), t0)
        .unwrap();
    assert!(all.len() > 10, "{} drivers within 300 m", all.len());
    let ix = Arc::clone(&index);
    let q = Search::radius(c, 300.0, Unit::Meters).count(usize::MAX);
    let hits = within(10, move || ix.search_at(&q, t0)).unwrap();
    assert_eq!(hits, all);
}
