//! Concurrency: writers move drivers back and forth across shard
//! boundaries while readers search; matchers race to claim drivers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverUpdate, Filter, GeoIndex, IndexConfig, LonLat, Search, Status, Unit,
};
use dispatchkit_test_support::within;

const DRIVERS: u64 = 400;
const BATCHES: u64 = 300;

/// Position of driver `id` after its `k`-th move: it oscillates east-west
/// over 0.8° around a point where four 0.35° tiles meet, so most moves
/// cross a tile (and usually a lock shard) boundary.
fn pos(id: u64, k: u64) -> LonLat {
    let corner = (-122.6953125, 47.4609375);
    let phase = ((id * 7 + k * 13) % 80) as f64 / 100.0 - 0.4;
    let lat = corner.1 + ((id % 20) as f64 - 10.0) * 0.01;
    LonLat::new(corner.0 + phase, lat).unwrap()
}

/// Position of driver `id` after its `k`-th move in a crowded block of
/// about 2 × 2 cells around the same tile corner: moves cross sub-cell,
/// cell, tile and shard edges.
fn crowded_pos(id: u64, k: u64) -> LonLat {
    let corner = (-122.6953125, 47.4609375);
    let phase = ((id * 7 + k * 13) % 80) as f64 / 80.0 - 0.5;
    let lat = corner.1 + ((id % 20) as f64 - 10.0) * 0.0005;
    LonLat::new(corner.0 + phase * 0.012, lat).unwrap()
}

#[test]
fn no_driver_lost_or_duplicated_while_moving_across_shards() {
    let split = IndexConfig::default().split_cells_at;
    let _ = within(120, move || moving_drivers_stay_whole(pos, split));
}

/// The same while the crowded cells split under the writers (8 drivers a
/// cell): searches see every driver once throughout. (A split whose moves
/// were not published would leave writers retrying stale locations
/// forever: `within` turns that into a failure.)
#[test]
fn no_driver_lost_or_duplicated_while_crowded_cells_split() {
    let stats = within(120, || moving_drivers_stay_whole(crowded_pos, Some(8)));
    assert!(stats.split_cells > 0, "no cell split: {stats:?}");
}

/// Two writers move their halves of the drivers `BATCHES` times (driver
/// `i`'s `k`-th position is `pos(i, k)`) while two readers search: no
/// result misses a driver or holds one twice, and every driver ends at its
/// last position. Asserts contention happened; returns the stats.
fn moving_drivers_stay_whole(
    pos: fn(u64, u64) -> LonLat,
    split_cells_at: Option<usize>,
) -> dispatchkit_geo_index::IndexStats {
    let t0 = Instant::now();
    let index = Arc::new(
        GeoIndex::with_config(IndexConfig {
            shards: 4,
            epoch: Some(t0),
            split_cells_at,
            ..IndexConfig::default()
        })
        .unwrap(),
    );
    let start: Vec<_> = (0..DRIVERS)
        .map(|i| DriverUpdate::new(DriverId::new(i).unwrap(), pos(i, 0), t0))
        .collect();
    assert_eq!(index.upsert_batch_at(&start, t0).inserted, DRIVERS as usize);
    let centre = LonLat::new(-122.6953125, 47.4609375).unwrap();
    // 100 km covers every position any driver can take.
    let everything = Search::radius(centre, 100.0, Unit::Kilometers);
    let done = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicUsize::new(0));

    std::thread::scope(|s| {
        for w in 0..2u64 {
            let index = index.clone();
            s.spawn(move || {
                let mine: Vec<u64> = (0..DRIVERS).filter(|i| i % 2 == w).collect();
                for k in 1..=BATCHES {
                    let at = t0 + Duration::from_millis(k);
                    let batch: Vec<_> = mine
                        .iter()
                        .map(|&i| DriverUpdate::new(DriverId::new(i).unwrap(), pos(i, k), at))
                        .collect();
                    let r = index.upsert_batch_at(&batch, at);
                    assert_eq!(r.moved, batch.len(), "a move was lost or judged stale");
                }
            });
        }
        for _ in 0..2 {
            let (index, done, searches) = (index.clone(), done.clone(), searches.clone());
            s.spawn(move || {
                let now = t0 + Duration::from_millis(BATCHES);
                let mut rounds = 0;
                while !done.load(Ordering::Relaxed) || rounds < 20 {
                    let hits = index.search_at(&everything, now).unwrap();
                    let ids: HashSet<u64> = hits.iter().map(|h| h.id.get()).collect();
                    assert_eq!(
                        ids.len(),
                        hits.len(),
                        "a driver appeared twice in one result"
                    );
                    assert_eq!(
                        hits.len(),
                        DRIVERS as usize,
                        "a driver was missing from a result"
                    );
                    let near = index
                        .search_at(
                            &Search::radius(centre, 5.0, Unit::Kilometers).count(10),
                            now,
                        )
                        .unwrap();
                    assert!(near.windows(2).all(|w| w[0].distance <= w[1].distance));
                    rounds += 1;
                    searches.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The scope's writers finish first; then let the readers stop.
        s.spawn({
            let done = done.clone();
            let index = index.clone();
            move || {
                while index
                    .get_at(DriverId::new(0).unwrap(), t0)
                    .map(|v| v.updated_at)
                    != Ok(t0 + Duration::from_millis(BATCHES))
                    || index
                        .get_at(DriverId::new(1).unwrap(), t0)
                        .map(|v| v.updated_at)
                        != Ok(t0 + Duration::from_millis(BATCHES))
                {
                    std::hint::spin_loop();
                }
                done.store(true, Ordering::Relaxed);
            }
        });
    });

    index.check_invariants();
    let now = t0 + Duration::from_millis(BATCHES);
    for i in 0..DRIVERS {
        assert_eq!(
            index.position_at(DriverId::new(i).unwrap(), now).unwrap(),
            pos(i, BATCHES),
            "driver {i} lost its last write"
        );
    }
    assert!(searches.load(Ordering::Relaxed) >= 40);
    let stats = index.stats();
    assert!(
        stats.lock_contentions > 0,
        "no lock contention happened: the test proved nothing ({stats:?})"
    );
    stats
}

#[test]
fn racing_claims_assign_each_driver_once() {
    let t0 = Instant::now();
    let p = LonLat::new(2.35, 48.85).unwrap();
    let mut lost_races = 0;
    // Rounds until riders have actually collided on a driver (on 2 cores a
    // round can run without overlap); the invariant is checked every round.
    for round in 0..500 {
        let index = GeoIndex::with_config(IndexConfig {
            epoch: Some(t0),
            ..IndexConfig::default()
        })
        .unwrap();
        for i in 0..20u64 {
            let at = LonLat::new(2.35 + i as f64 * 1e-4, 48.85).unwrap();
            let _ = index
                .upsert_at(DriverId::new(i).unwrap(), at, Attrs::default(), t0)
                .unwrap();
        }
        let barrier = std::sync::Barrier::new(4);
        let (claimed, lost): (Vec<Vec<u64>>, Vec<usize>) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (index, barrier) = (&index, &barrier);
                    s.spawn(move || {
                        let (mut mine, mut lost) = (Vec::new(), 0);
                        barrier.wait();
                        // Each rider takes the nearest available driver, as
                        // many times as it can.
                        for _ in 0..40 {
                            let hits = index
                                .nearest_at(p, 3, 5_000.0, &Filter::available(), t0)
                                .unwrap();
                            for h in hits {
                                if index
                                    .compare_and_set_status_at(
                                        h.id,
                                        Status::AVAILABLE,
                                        Status::BUSY,
                                        t0,
                                    )
                                    .unwrap()
                                {
                                    mine.push(h.id.get());
                                    break;
                                }
                                lost += 1;
                            }
                        }
                        (mine, lost)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).unzip()
        });
        let all: Vec<u64> = claimed.iter().flatten().copied().collect();
        let unique: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            unique.len(),
            "round {round}: a driver was assigned twice"
        );
        assert_eq!(
            unique.len(),
            20,
            "round {round}: every driver is claimed exactly once"
        );
        assert!(
            index
                .nearest_at(p, 1, 5_000.0, &Filter::available(), t0)
                .unwrap()
                .is_empty()
        );
        lost_races += lost.iter().sum::<usize>();
        if lost_races > 0 {
            break;
        }
    }
    assert!(
        lost_races > 0,
        "no two riders ever raced for one driver: the test proved nothing"
    );
}

/// Whole-index scans release a shard's lock between batches of cells, so
/// writers run while a scan is under way. Two writers walk their drivers
/// along a row of cells, crowding each in turn so that it splits into
/// sub-cells (moving the drivers it held to new places in the arena),
/// while two readers scan (`for_each_at`, and `for_each_matching_in_shard_at`
/// over every shard): every resident driver (one that never moves) is seen
/// in every scan, at least once; a split may show one twice, as Redis's
/// `SCAN` may return an element twice. The scenario is repeated (on a
/// fresh index) until a lock was contended and a scan saw a resident
/// twice, i.e. a cell was split under a running scan; every attempt
/// asserts the guarantee.
#[test]
fn scans_see_every_resident_while_cells_split_under_them() {
    let (stats, twice) = within(300, || {
        let mut last = None;
        for _ in 0..50 {
            let (stats, twice) = scan_while_cells_split();
            assert!(
                stats.split_cells >= SPLIT_ROW,
                "cells did not split: {stats:?}"
            );
            last = Some((stats, twice));
            if stats.lock_contentions > 0 && twice > 0 {
                break;
            }
        }
        last.unwrap()
    });
    assert!(
        stats.lock_contentions > 0 && twice > 0,
        "no cell split under a running scan in 50 attempts: the test proved nothing ({stats:?}, {twice} residents seen twice)"
    );
}

/// Cells of the row [`scan_while_cells_split`] crowds.
const SPLIT_ROW: u64 = 400;

/// One attempt of [`scans_see_every_resident_while_cells_split_under_them`]:
/// the index's stats and how many times a scan saw a resident twice.
fn scan_while_cells_split() -> (dispatchkit_geo_index::IndexStats, usize) {
    // Six residents a cell, one shard: a scan takes several lock holds.
    const CELLS: u64 = SPLIT_ROW;
    const RESIDENTS: u64 = 6 * CELLS;
    let t0 = Instant::now();
    let index = Arc::new(
        GeoIndex::with_config(IndexConfig {
            shards: 1,
            epoch: Some(t0),
            split_cells_at: Some(8),
            ..IndexConfig::default()
        })
        .unwrap(),
    );
    // Cell `c` of the row, at fraction `f` of its side (the row starts on a
    // cell edge: −122.6953125 is a multiple of 360 / 2^16).
    let cell_deg = 360.0 / 65_536.0;
    let at = |c: u64, f: f64, g: f64| {
        LonLat::new(
            -122.6953125 + (c as f64 + f) * cell_deg,
            47.4609375 + g * cell_deg,
        )
        .unwrap()
    };
    let residents: Vec<_> = (0..RESIDENTS)
        .map(|i| {
            let f = (i % 6) as f64 / 6.0 + 0.05;
            DriverUpdate::new(DriverId::new(10_000 + i).unwrap(), at(i / 6, f, f), t0)
        })
        .collect();
    assert_eq!(
        index.upsert_batch_at(&residents, t0).inserted,
        RESIDENTS as usize
    );
    let writing = AtomicUsize::new(2);
    let (scans, twice) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (index, writing) = (&index, &writing);
            s.spawn(move || {
                for c in 0..CELLS {
                    let when = t0 + Duration::from_millis(c + 1);
                    let batch: Vec<_> = (0..10u64)
                        .map(|d| {
                            let f = (d as f64 + 0.5) / 10.0;
                            let id = DriverId::new(w * 10 + d).unwrap();
                            DriverUpdate::new(id, at(c, f, 1.0 - f), when)
                        })
                        .collect();
                    let r = index.upsert_batch_at(&batch, when);
                    assert_eq!(r.inserted + r.moved, batch.len(), "{r:?}");
                }
                writing.fetch_sub(1, Ordering::Relaxed);
            });
        }
        for r in 0..2 {
            let (index, writing, scans, twice) = (&index, &writing, &scans, &twice);
            s.spawn(move || {
                let mut rounds = 0;
                while writing.load(Ordering::Relaxed) > 0 || rounds < 5 {
                    let mut seen = vec![0u32; RESIDENTS as usize];
                    let mut count = |id: DriverId| {
                        // A callback that reads the index, as callers' do:
                        // the writers get the lock meanwhile.
                        let _ = index.position_at(id, t0);
                        if let Some(k) = id.get().checked_sub(10_000) {
                            seen[k as usize] += 1;
                        }
                    };
                    if r == 0 {
                        index.for_each_at(t0, |v| count(v.id));
                    } else {
                        for sh in 0..index.shard_count() {
                            index
                                .for_each_matching_in_shard_at(
                                    sh,
                                    t0,
                                    &Filter::default(),
                                    |id, _, _| count(id),
                                )
                                .unwrap();
                        }
                    }
                    if let Some(k) = seen.iter().position(|&n| n == 0) {
                        panic!("resident {} missing from a scan", 10_000 + k);
                    }
                    twice.fetch_add(seen.iter().filter(|&&n| n > 1).count(), Ordering::Relaxed);
                    rounds += 1;
                    scans.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert!(scans.load(Ordering::Relaxed) >= 10);
    index.check_invariants();
    (index.stats(), twice.load(Ordering::Relaxed))
}
