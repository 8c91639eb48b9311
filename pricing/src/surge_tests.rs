//! The surge engine against its naive twin, and its properties.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;

use geo::Point;
use proptest::prelude::*;

use super::*;
use h3o::LatLng;

fn h3(p: Point<f64>, res: Resolution) -> CellIndex {
    LatLng::new(p.y(), p.x()).unwrap().to_cell(res)
}

/// The twin: every count by brute force (one `h3o` conversion per driver
/// and per request, a linear scan of the window), the smoothing gathered
/// per cell (the engine scatters), plain `BTreeMap`s.
#[derive(Debug, Default)]
struct Twin {
    requests: Vec<(Point<f64>, Instant)>,
    prev: BTreeMap<CellIndex, u64>,
}

impl Twin {
    fn record(&mut self, p: Point<f64>, at: Instant) {
        // The engine treats time as monotone.
        let at = self.requests.last().map_or(at, |&(_, t)| t.max(at));
        self.requests.push((p, at));
    }

    fn recompute(
        &mut self,
        cfg: &SurgeConfig,
        drivers: &[Point<f64>],
        now: Instant,
        emergency: bool,
    ) -> BTreeMap<CellIndex, CellSurge> {
        let res = cfg.resolution;
        let mut supply: BTreeMap<CellIndex, u32> = BTreeMap::new();
        for &d in drivers {
            *supply.entry(h3(d, res)).or_default() += 1;
        }
        let mut demand: BTreeMap<CellIndex, u32> = BTreeMap::new();
        for &(p, at) in &self.requests {
            if now.saturating_duration_since(at) < cfg.window {
                *demand.entry(h3(p, res)).or_default() += 1;
            }
        }
        let cells: BTreeSet<CellIndex> = supply.keys().chain(demand.keys()).copied().collect();
        let curve = cfg.curve;
        let cap = u64::from(curve.effective_cap(emergency).milli());
        let mut excess: BTreeMap<CellIndex, u64> = BTreeMap::new();
        let mut out: BTreeMap<CellIndex, CellSurge> = BTreeMap::new();
        for &c in &cells {
            let d = demand.get(&c).copied().unwrap_or(0);
            let s = supply.get(&c).copied().unwrap_or(0);
            let ratio = u64::from(d) * 1000 / u64::from(s.max(1));
            let raw = u64::from(curve.multiplier(ratio, emergency).milli());
            if raw > 1000 {
                excess.insert(c, raw - 1000);
            }
            out.insert(
                c,
                CellSurge {
                    demand: d,
                    supply: s,
                    ratio_milli: ratio,
                    multiplier: Multiplier::ONE,
                },
            );
        }
        let k = cfg.smoothing_k;
        let w = u64::from(cfg.neighbour_weight.0);
        let mut target: BTreeMap<CellIndex, u64> = BTreeMap::new();
        if k > 0 && w > 0 {
            let ring = 3 * u64::from(k) * (u64::from(k) + 1);
            let candidates: BTreeSet<CellIndex> = excess
                .keys()
                .flat_map(|c| c.grid_disk::<Vec<_>>(k))
                .collect();
            for x in candidates {
                let own = excess.get(&x).copied().unwrap_or(0);
                // Gather: the excess of every other cell of x's own disk.
                let around: u64 = x
                    .grid_disk::<Vec<_>>(k)
                    .into_iter()
                    .filter(|&n| n != x)
                    .map(|n| excess.get(&n).copied().unwrap_or(0))
                    .sum();
                let v = (own * (10_000 - w) * ring + around * w) / (10_000 * ring);
                let step = u64::from(curve.step_milli);
                let m = (1000 + v / step * step).min(cap);
                if m > 1000 {
                    target.insert(x, m);
                }
            }
        } else {
            for (&c, &e) in &excess {
                target.insert(c, (1000 + e).min(cap));
            }
        }
        let delta = u64::from(cfg.max_change_milli);
        let keys: BTreeSet<CellIndex> = target.keys().chain(self.prev.keys()).copied().collect();
        let mut next = BTreeMap::new();
        for c in keys {
            let t = target.get(&c).copied().unwrap_or(1000);
            let p = self.prev.get(&c).copied().unwrap_or(1000);
            let lo = if p > 1000 + delta { p - delta } else { 1000 };
            let m = t.max(lo).min(p + delta).min(cap);
            if m > 1000 {
                next.insert(c, m);
                out.entry(c)
                    .or_insert(CellSurge {
                        demand: 0,
                        supply: 0,
                        ratio_milli: 0,
                        multiplier: Multiplier::ONE,
                    })
                    .multiplier = Multiplier::from_milli(m as u32).unwrap();
            }
        }
        self.prev = next;
        out
    }
}

fn as_btree(map: &SurgeMap) -> BTreeMap<CellIndex, CellSurge> {
    map.iter().map(|(c, s)| (c, *s)).collect()
}

/// A cluster of points within ~±0.03° of `(lon, lat)`.
fn cluster(lon: f64, lat: f64, offsets: &[(f64, f64)]) -> Vec<Point<f64>> {
    offsets
        .iter()
        .map(|&(dx, dy)| {
            Point::new(
                (lon + dx).clamp(-180.0, 180.0),
                (lat + dy).clamp(-85.0, 85.0),
            )
        })
        .collect()
}

fn cases() -> u32 {
    dispatchkit_test_support::cases(10_000)
}

#[derive(Debug, Clone)]
struct Step {
    drivers: Vec<(f64, f64)>,
    requests: Vec<(f64, f64)>,
    advance_s: u64,
    emergency: bool,
}

fn step() -> impl Strategy<Value = Step> {
    let off = || (-0.03_f64..0.03, -0.03_f64..0.03);
    (
        proptest::collection::vec(off(), 0..120),
        proptest::collection::vec(off(), 0..160),
        0_u64..200,
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(drivers, requests, advance_s, emergency)| Step {
            drivers,
            requests,
            advance_s,
            emergency,
        })
}

fn config() -> impl Strategy<Value = SurgeConfig> {
    (
        6_u8..=8,
        0_u32..=2,
        0_u32..=10_000,
        1_u32..=4,
        1_u32..=3,
        1_usize..=2,
        60_u64..=300,
    )
        .prop_map(
            |(res, k, w, change_steps, step_tenths, threads, window_s)| {
                let step = 50 * step_tenths;
                SurgeConfig {
                    resolution: Resolution::try_from(res).unwrap(),
                    window: Duration::from_secs(window_s),
                    curve: SurgeCurve {
                        threshold_milli: 1_000,
                        slope_milli: 1_500,
                        step_milli: step,
                        cap: Multiplier::from_milli(1_000 + 20 * step).unwrap(),
                        emergency_cap: Multiplier::from_milli(1_000 + 4 * step).unwrap(),
                    },
                    smoothing_k: k,
                    neighbour_weight: Bps(w),
                    max_change_milli: change_steps * step,
                    threads,
                    max_tiles: 1 << 16,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 20,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Step by step the engine's map equals the twin's (counts, ratios,
    /// multipliers), `validate` holds, and every multiplier changes by at
    /// most `max_change` per recompute (except a drop forced by the
    /// emergency cap), stays within `1.0..=cap` and on the step grid.
    #[test]
    fn engine_matches_naive_twin(
        cfg in config(),
        lon in -170.0_f64..170.0,
        lat in -70.0_f64..70.0,
        steps in proptest::collection::vec(step(), 1..6),
    ) {
        let engine = SurgeEngine::new(cfg).unwrap();
        let mut twin = Twin::default();
        let t0 = Instant::now();
        let mut now = t0;
        let mut before: BTreeMap<CellIndex, CellSurge> = BTreeMap::new();
        for st in &steps {
            now += Duration::from_secs(st.advance_s);
            for p in cluster(lon, lat, &st.requests) {
                engine.record_request_at(p, now).unwrap();
                twin.record(p, now);
            }
            let drivers = cluster(lon, lat, &st.drivers);
            engine.set_emergency(st.emergency);
            let stats = engine.recompute_at(&drivers, now);
            engine.check_invariants();
            let map = engine.snapshot();
            let got = as_btree(&map);
            let want = twin.recompute(&cfg, &drivers, now, st.emergency);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(stats.drivers, drivers.len());
            let cap = cfg.curve.effective_cap(st.emergency).milli();
            for (c, s) in &got {
                let m = s.multiplier.milli();
                prop_assert!((1_000..=cap).contains(&m));
                prop_assert_eq!((m - 1_000) % cfg.curve.step_milli, 0);
                let old = before.get(c).map_or(1_000, |o| o.multiplier.milli());
                let forced = m == cap && old > cap;
                prop_assert!(m.abs_diff(old) <= cfg.max_change_milli || forced,
                    "{} -> {} (max change {})", old, m, cfg.max_change_milli);
            }
            for (c, o) in &before {
                if !got.contains_key(c) {
                    prop_assert!(o.multiplier.milli() - 1_000 <= cfg.max_change_milli);
                }
            }
            before = got;
        }
    }
}

/// `n` points spread over several metros and the antimeridian.
fn spread(n: usize) -> Vec<Point<f64>> {
    let centres = [
        (-122.33, 47.61),
        (139.65, 35.68),
        (179.99, -16.5),
        (-58.38, -34.6),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // A tiny LCG: test input, not a workload.
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 11) as f64 / (1_u64 << 53) as f64 - 0.5
    };
    (0..n)
        .map(|i| {
            let (lon, lat) = centres[i % centres.len()];
            let lon = lon + next() * 0.3;
            let lon = if lon > 180.0 { lon - 360.0 } else { lon };
            Point::new(lon, lat + next() * 0.3)
        })
        .collect()
}

/// A source that can only be walked sequentially (one part).
struct Sequential<'a>(&'a [Point<f64>]);

impl SupplySource for Sequential<'_> {
    fn for_each_supply(&self, now: Instant, f: &mut dyn FnMut(f64, f64)) {
        self.0.for_each_supply(now, f);
    }

    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

/// A source large enough for several threads is counted exactly (equal to
/// brute force) whether its parts are shared out (a vector: parts of
/// 65,536 points) or it is walked by one thread that hands chunks to the
/// others (a one-part source), on one, two and three threads.
#[test]
fn large_sources_count_exactly_on_every_path() {
    let pts = spread(200_000);
    assert!(pts.parts() > 1);
    let want = brute_supply(&pts);
    let t = Instant::now();
    for threads in [1, 2, 3] {
        let engine = counting_engine(threads);
        for round in 0..2 {
            let stats = if round == 0 {
                engine.recompute_at(&pts, t)
            } else {
                engine.recompute_at(&Sequential(&pts), t)
            };
            assert_eq!(stats.drivers, pts.len());
            engine.check_invariants();
            assert_eq!(
                published_supply(&engine),
                want,
                "round {round}, {threads} threads"
            );
        }
    }
}

/// Drivers per resolution-7 cell, one `h3o` conversion per point.
fn brute_supply(pts: &[Point<f64>]) -> BTreeMap<CellIndex, u32> {
    let mut want: BTreeMap<CellIndex, u32> = BTreeMap::new();
    for &p in pts {
        *want.entry(h3(p, Resolution::Seven)).or_default() += 1;
    }
    want
}

/// An engine on `threads` threads without smoothing (its map's supply
/// is the raw count).
fn counting_engine(threads: usize) -> SurgeEngine {
    SurgeEngine::new(SurgeConfig {
        threads,
        smoothing_k: 0,
        ..SurgeConfig::default()
    })
    .unwrap()
}

/// The supply of every cell of the engine's published map.
fn published_supply(engine: &SurgeEngine) -> BTreeMap<CellIndex, u32> {
    engine
        .snapshot()
        .iter()
        .map(|(c, s)| (c, s.supply))
        .collect()
}

/// Supply counts of the engine equal brute force over ten thousand points
/// spread over several metros and the antimeridian, cold and warm, on one
/// and two threads.
#[test]
fn supply_counts_equal_brute_force() {
    let pts = spread(40_000);
    let want = brute_supply(&pts);
    for threads in [1, 2] {
        let engine = counting_engine(threads);
        let t = Instant::now();
        for round in 0..3 {
            let stats = engine.recompute_at(&pts, t);
            engine.check_invariants();
            assert_eq!(
                published_supply(&engine),
                want,
                "round {round}, {threads} threads"
            );
            if round > 0 {
                assert!(stats.fast_path * 10 > pts.len() * 9, "{stats:?}");
                let (inside, known) = engine.state.lock().locator.interior_share();
                assert!(
                    inside * 2 > known,
                    "{inside} of {known} sub-buckets interior"
                );
            }
        }
    }
}

#[test]
fn invalid_positions_and_configs_are_typed_errors() {
    let engine = SurgeEngine::new(SurgeConfig::default()).unwrap();
    let t = Instant::now();
    for (lon, lat) in [
        (f64::NAN, 0.0),
        (0.0, f64::INFINITY),
        (181.0, 0.0),
        (0.0, -90.5),
    ] {
        assert!(matches!(
            engine.record_request_at(Point::new(lon, lat), t),
            Err(PricingError::InvalidPosition { .. })
        ));
        assert!(matches!(
            engine.multiplier_at(Point::new(lon, lat)),
            Err(PricingError::InvalidPosition { .. })
        ));
    }
    let wrong = h3(Point::new(2.35, 48.85), Resolution::Nine);
    assert!(matches!(
        engine.record_request_in_cell_at(wrong, t),
        Err(PricingError::InvalidConfig {
            what: "cell resolution",
            ..
        })
    ));
    // Invalid supply positions are skipped and counted, not panicked on.
    let stats = engine.recompute_at(&vec![Point::new(f64::NAN, 1.0), Point::new(2.35, 48.85)], t);
    assert_eq!((stats.drivers, stats.skipped), (1, 1));
    // Nothing of the refused requests was recorded.
    assert_eq!(stats.requests, 0);
    engine.check_invariants();
    let d = SurgeConfig::default();
    let bad = [
        SurgeConfig {
            window: Duration::ZERO,
            ..d
        },
        SurgeConfig {
            max_change_milli: 150,
            ..d
        },
        SurgeConfig {
            max_change_milli: 0,
            ..d
        },
        SurgeConfig {
            neighbour_weight: Bps(10_001),
            ..d
        },
        SurgeConfig {
            smoothing_k: 9,
            ..d
        },
        SurgeConfig { threads: 0, ..d },
        SurgeConfig { max_tiles: 0, ..d },
        SurgeConfig {
            curve: SurgeCurve {
                step_milli: 0,
                ..d.curve
            },
            ..d
        },
    ];
    for b in bad {
        assert!(
            matches!(SurgeEngine::new(b), Err(PricingError::InvalidConfig { .. })),
            "{b:?}"
        );
    }
}

#[test]
fn requests_leave_the_window_and_hottest_is_ordered_like_zrevrange() {
    let cfg = SurgeConfig {
        smoothing_k: 0,
        max_change_milli: 2_000,
        ..SurgeConfig::default()
    };
    let engine = SurgeEngine::new(cfg).unwrap();
    let t0 = Instant::now();
    let a = Point::new(-0.1278, 51.5074);
    let b = Point::new(-0.0878, 51.5074); // ~2.8 km east: another res-7 cell
    let c = Point::new(-0.2078, 51.5074);
    for _ in 0..6 {
        engine.record_request_at(a, t0).unwrap();
    }
    for _ in 0..3 {
        engine
            .record_request_at(b, t0 + Duration::from_secs(200))
            .unwrap();
        engine
            .record_request_at(c, t0 + Duration::from_secs(200))
            .unwrap();
    }
    let drivers = vec![a, b, c];
    engine.recompute_at(&drivers, t0 + Duration::from_secs(250));
    let map = engine.snapshot();
    let hot = map.hottest(3);
    assert_eq!(hot[0].0, h3(a, Resolution::Seven));
    assert_eq!(hot[0].1.ratio_milli, 6_000);
    // b and c tie on ratio 3.0: the larger cell index first (ZREVRANGE).
    assert_eq!(hot[1].1.ratio_milli, 3_000);
    assert_eq!(hot[2].1.ratio_milli, 3_000);
    assert!(u64::from(hot[1].0) > u64::from(hot[2].0));
    // 6.0: 1.0 + 4.8 → capped at 3.0x.
    assert_eq!(hot[0].1.multiplier, Multiplier::from_milli(3_000).unwrap());
    assert_eq!(
        engine.multiplier_at(a).unwrap(),
        Multiplier::from_milli(3_000).unwrap()
    );
    let hist = map.distribution();
    assert_eq!(hist.values().sum::<usize>(), map.len());
    // At t0 + 300 s the six requests at `a` leave the window (exclusive end).
    engine.recompute_at(&drivers, t0 + Duration::from_secs(300));
    let map = engine.snapshot();
    assert_eq!(map.get(h3(a, Resolution::Seven)).unwrap().demand, 0);
    assert_eq!(map.totals(), (6, 3));
    // Without demand the multiplier decays by max_change per recompute.
    assert_eq!(
        engine.multiplier_at(a).unwrap(),
        Multiplier::from_milli(1_000).unwrap()
    );
    engine.check_invariants();
}

#[test]
fn emergency_caps_immediately() {
    let cfg = SurgeConfig {
        smoothing_k: 0,
        max_change_milli: 2_000,
        ..SurgeConfig::default()
    };
    let engine = SurgeEngine::new(cfg).unwrap();
    let t = Instant::now();
    let p = Point::new(13.405, 52.52);
    for _ in 0..10 {
        engine.record_request_at(p, t).unwrap();
    }
    engine.recompute_at(&vec![p], t);
    assert_eq!(
        engine.multiplier_at(p).unwrap(),
        Multiplier::from_milli(3_000).unwrap()
    );
    engine.set_emergency(true);
    assert!(engine.emergency());
    engine.recompute_at(&vec![p], t);
    assert_eq!(
        engine.multiplier_at(p).unwrap(),
        Multiplier::from_milli(1_500).unwrap()
    );
    assert!(engine.snapshot().emergency());
    engine.check_invariants();
}

/// Requests are recorded and multipliers read from several threads while
/// another thread recomputes: no request is lost, every read multiplier is
/// valid, and the demand lock was contended.
#[test]
fn concurrent_records_lookups_and_recomputes() {
    let engine = SurgeEngine::new(SurgeConfig::default()).unwrap();
    let t = Instant::now();
    let centre = Point::new(151.2093, -33.8688);
    let drivers: Vec<Point<f64>> = (0..2_000)
        .map(|i| {
            Point::new(
                151.2093 + (i % 40) as f64 * 1e-3,
                -33.8688 + (i / 40) as f64 * 1e-3,
            )
        })
        .collect();
    let per_thread = 10_000;
    for round in 0..20 {
        let done = AtomicBool::new(false);
        let start = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            let recompute = s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    engine.recompute_at(&drivers, t);
                }
            });
            let recorders: Vec<_> = (0..3)
                .map(|k| {
                    let (e, start) = (&engine, &start);
                    s.spawn(move || {
                        start.wait();
                        for i in 0..per_thread {
                            let p = Point::new(
                                centre.x() + (i % 50) as f64 * 1e-3,
                                centre.y() + k as f64 * 1e-3,
                            );
                            e.record_request_at(p, t).unwrap();
                            let m = e.multiplier_at(p).unwrap();
                            assert!(
                                m >= Multiplier::ONE && m <= Multiplier::from_milli(3_000).unwrap()
                            );
                        }
                    })
                })
                .collect();
            for r in recorders {
                r.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
            recompute.join().unwrap();
        });
        let stats = engine.recompute_at(&drivers, t);
        assert_eq!(stats.requests, 3 * per_thread * (round + 1));
        assert_eq!(
            engine.snapshot().totals().0,
            3 * per_thread as u64 * (round as u64 + 1)
        );
        engine.check_invariants();
        if engine.lock_waits() > 0 {
            return;
        }
    }
    panic!("20 rounds never contended: the test proves nothing");
}
