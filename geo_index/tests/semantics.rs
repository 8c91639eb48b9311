//! Redis GEO semantics, bad input, expiry, the stale rule, geofences and
//! snapshots.

use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, Center, DriverId, DriverUpdate, Fence, FenceEvent, FenceEventKind, Filter, GeoError,
    GeoIndex, IndexConfig, LonLat, Search, Shape, Snapshot, Status, Unit, Upsert,
};
use proptest::prelude::*;

fn ll(lon: f64, lat: f64) -> LonLat {
    LonLat::new(lon, lat).unwrap()
}

fn index_at(t0: Instant) -> GeoIndex {
    GeoIndex::with_config(IndexConfig {
        epoch: Some(t0),
        ..IndexConfig::default()
    })
    .unwrap()
}

fn ids(hits: &[dispatchkit_geo_index::Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id.get()).collect()
}

/// Redis's own documentation example (GEOADD Sicily … Palermo Catania).
fn sicily(t0: Instant) -> GeoIndex {
    let index = index_at(t0);
    let _ = index
        .upsert_at(
            DriverId::new(1).unwrap(),
            ll(13.361389, 38.115556),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let _ = index
        .upsert_at(
            DriverId::new(2).unwrap(),
            ll(15.087269, 37.502669),
            Attrs::default(),
            t0,
        )
        .unwrap();
    index
}

#[test]
fn matches_the_redis_documentation_examples() {
    let t0 = Instant::now();
    let index = sicily(t0);
    // GEODIST Sicily Palermo Catania → "166274.1516" (m) and "166.2742" km.
    let d = index
        .distance_at(
            DriverId::new(1).unwrap(),
            DriverId::new(2).unwrap(),
            Unit::Meters,
            t0,
        )
        .unwrap();
    assert!((d - 166_274.151_6).abs() < 0.5, "{d}");
    let km = index
        .distance_at(
            DriverId::new(1).unwrap(),
            DriverId::new(2).unwrap(),
            Unit::Kilometers,
            t0,
        )
        .unwrap();
    assert!((km - 166.2742).abs() < 0.0005);
    let mi = index
        .distance_at(
            DriverId::new(1).unwrap(),
            DriverId::new(2).unwrap(),
            Unit::Miles,
            t0,
        )
        .unwrap();
    assert!((mi - 103.3182).abs() < 0.0005, "{mi}");
    // GEORADIUS Sicily 15 37 200 km WITHDIST → Palermo 190.4424, Catania 56.4413.
    let q = Search::radius(ll(15.0, 37.0), 200.0, Unit::Kilometers)
        .asc()
        .with_hash();
    let hits = index.search_at(&q, t0).unwrap();
    assert_eq!(ids(&hits), vec![2, 1]);
    assert!((hits[0].distance - 56.4413).abs() < 0.0005);
    assert!((hits[1].distance - 190.4424).abs() < 0.0005);
    assert_eq!(hits[1].hash, Some(3_479_099_956_230_698));
    assert_eq!(hits[0].hash, Some(3_479_447_370_796_909));
    // GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 100 km → only Catania.
    let q = Search::radius(ll(15.0, 37.0), 100.0, Unit::Kilometers);
    assert_eq!(ids(&index.search_at(&q, t0).unwrap()), vec![2]);
    // GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC → Catania, Palermo.
    let q = Search::boxed(ll(15.0, 37.0), 400.0, 400.0, Unit::Kilometers).asc();
    assert_eq!(ids(&index.search_at(&q, t0).unwrap()), vec![2, 1]);
    // GEOPOS Sicily Palermo → 13.36138933897018433 38.11555639549629859 (cell
    // centre of Redis's 52-bit hash; we store to 5 mm, so within 0.5 m).
    let p = index.position_at(DriverId::new(1).unwrap(), t0).unwrap();
    assert!(p.distance_m(ll(13.361_389_338_970_184, 38.115_556_395_496_3)) < 0.5);
}

#[test]
fn count_implies_asc_desc_reverses_any_stops_early() {
    let t0 = Instant::now();
    let index = index_at(t0);
    for i in 0..20u64 {
        let _ = index
            .upsert_at(
                DriverId::new(i).unwrap(),
                ll(0.001 * i as f64, 0.0),
                Attrs::default(),
                t0,
            )
            .unwrap();
    }
    let c = ll(0.0, 0.0);
    let asc = index
        .search_at(&Search::radius(c, 10.0, Unit::Kilometers).count(5), t0)
        .unwrap();
    assert_eq!(ids(&asc), vec![0, 1, 2, 3, 4]);
    let desc = index
        .search_at(
            &Search::radius(c, 10.0, Unit::Kilometers).count(3).desc(),
            t0,
        )
        .unwrap();
    assert_eq!(ids(&desc), vec![19, 18, 17]);
    let any = index
        .search_at(
            &Search::radius(c, 10.0, Unit::Kilometers).count(4).any(),
            t0,
        )
        .unwrap();
    assert_eq!(any.len(), 4);
    let all = index
        .search_at(&Search::radius(c, 10.0, Unit::Kilometers), t0)
        .unwrap();
    assert_eq!(all.len(), 20);
    // FROMMEMBER includes the member itself, at distance 0.
    let q = Search::member_radius(DriverId::new(7).unwrap(), 150.0, Unit::Meters).asc();
    let hits = index.search_at(&q, t0).unwrap();
    assert_eq!(ids(&hits)[0], 7);
    let mut rest = ids(&hits)[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, vec![6, 8]);
    assert_eq!(hits[0].distance, 0.0);
    // Units: 1 mi is 1609.34 m.
    let q = Search::member_radius(DriverId::new(0).unwrap(), 1.0, Unit::Miles).asc();
    let hits = index.search_at(&q, t0).unwrap();
    assert_eq!(hits.len(), 15);
    assert!((hits[1].distance * 1609.34 - 111.3).abs() < 0.5);
}

#[test]
fn boundary_points_are_inside() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let c = ll(2.35, 48.85);
    let p = ll(2.36, 48.85);
    let _ = index
        .upsert_at(DriverId::new(1).unwrap(), p, Attrs::default(), t0)
        .unwrap();
    let d = c.distance_m(p);
    // Redis keeps members with distance <= radius.
    assert_eq!(
        index
            .search_at(&Search::radius(c, d, Unit::Meters), t0)
            .unwrap()
            .len(),
        1
    );
    let below = d * (1.0 - 1e-12);
    assert_eq!(
        index
            .search_at(&Search::radius(c, below, Unit::Meters), t0)
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn antimeridian_and_the_latitude_limit() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let _ = index
        .upsert_at(
            DriverId::new(1).unwrap(),
            ll(179.999, -16.5),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let _ = index
        .upsert_at(
            DriverId::new(2).unwrap(),
            ll(-179.999, -16.5),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let _ = index
        .upsert_at(
            DriverId::new(3).unwrap(),
            ll(-179.95, -16.5),
            Attrs::default(),
            t0,
        )
        .unwrap();
    // From either side, the other side is 213 m away, not 40,000 km.
    let q = Search::radius(ll(179.9995, -16.5), 1.0, Unit::Kilometers).asc();
    assert_eq!(ids(&index.search_at(&q, t0).unwrap()), vec![1, 2]);
    let q = Search::radius(ll(-179.9995, -16.5), 6.0, Unit::Kilometers).asc();
    assert_eq!(ids(&index.search_at(&q, t0).unwrap()), vec![2, 1, 3]);
    let q = Search::boxed(ll(180.0, -16.5), 2.0, 2.0, Unit::Kilometers).asc();
    assert_eq!(ids(&index.search_at(&q, t0).unwrap()).len(), 2);
    // Near the latitude limit a radius spans every longitude.
    for (i, lon) in [-170.0, -60.0, 0.0, 90.0, 179.0].iter().enumerate() {
        let _ = index
            .upsert_at(
                DriverId::new(10 + i as u64).unwrap(),
                ll(*lon, 85.05),
                Attrs::default(),
                t0,
            )
            .unwrap();
    }
    let q = Search::radius(ll(0.0, 85.05112878), 1200.0, Unit::Kilometers).asc();
    let hits = index.search_at(&q, t0).unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, DriverId::new(12).unwrap());
    let nearest = index
        .nearest_at(ll(0.0, 85.0), 2, 2_000_000.0, &Filter::new(), t0)
        .unwrap();
    // lon -60 is nearer than lon 90 to (0, 85).
    assert_eq!(ids(&nearest), vec![12, 11]);
}

#[test]
fn bybox_uses_redis_rectangle_test() {
    let t0 = Instant::now();
    let index = index_at(t0);
    // 10 km wide, 2 km high around (0, 60): a point 4 km east is in, 1.5 km
    // north is out, 6 km east is out.
    let c = ll(0.0, 60.0);
    let east = |m: f64| ll(m / (111_226.0 * 0.5), 60.0);
    let _ = index
        .upsert_at(
            DriverId::new(1).unwrap(),
            east(4_000.0),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let _ = index
        .upsert_at(
            DriverId::new(2).unwrap(),
            ll(0.0, 60.0 + 1_500.0 / 111_226.0),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let _ = index
        .upsert_at(
            DriverId::new(3).unwrap(),
            east(6_000.0),
            Attrs::default(),
            t0,
        )
        .unwrap();
    let hits = index
        .search_at(&Search::boxed(c, 10.0, 2.0, Unit::Kilometers), t0)
        .unwrap();
    assert_eq!(ids(&hits), vec![1]);
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let t0 = Instant::now();
    let index = sicily(t0);
    let before = index.snapshot_at(t0);
    for (lon, lat) in [
        (f64::NAN, 0.0),
        (0.0, f64::INFINITY),
        (180.5, 0.0),
        (0.0, 85.06),
        (0.0, -90.0),
    ] {
        let e = LonLat::new(lon, lat).unwrap_err();
        assert!(matches!(e, GeoError::InvalidCoordinate { .. }), "{e}");
        assert!(e.to_string().contains("invalid coordinate"), "{e}");
    }
    assert!(LonLat::try_from(geo::Point::new(200.0, 0.0)).is_err());
    let c = ll(15.0, 37.0);
    let bad = [
        Search::radius(c, -1.0, Unit::Kilometers),
        Search::radius(c, f64::NAN, Unit::Kilometers),
        Search::radius(c, f64::NEG_INFINITY, Unit::Kilometers),
        Search::boxed(c, f64::NAN, 1.0, Unit::Kilometers),
        Search::boxed(c, 1.0, -1.0, Unit::Kilometers),
        Search::radius(c, 1.0, Unit::Kilometers).count(0),
        Search::radius(c, 1.0, Unit::Kilometers).any(),
    ];
    for q in bad {
        let e = index.search_at(&q, t0).unwrap_err();
        assert!(
            matches!(
                e,
                GeoError::InvalidValue { .. } | GeoError::InvalidCount { .. }
            ),
            "{q:?}: {e}"
        );
    }
    assert_eq!(
        index
            .search_at(&Search::radius(c, 1.0, Unit::Kilometers).count(0), t0)
            .unwrap_err()
            .to_string(),
        "invalid COUNT Some(0): COUNT must be > 0"
    );
    assert!(matches!("furlong".parse::<Unit>(), Err(GeoError::InvalidUnit(u)) if u == "furlong"));
    let e = index
        .search_at(
            &Search::member_radius(DriverId::new(99).unwrap(), 1.0, Unit::Meters),
            t0,
        )
        .unwrap_err();
    assert_eq!(e, GeoError::UnknownDriver(DriverId::new(99).unwrap()));
    // FROMMEMBER of an expired driver.
    let later = t0 + Duration::from_secs(31);
    let e = index
        .search_at(
            &Search::member_radius(DriverId::new(1).unwrap(), 1.0, Unit::Meters),
            later,
        )
        .unwrap_err();
    assert_eq!(e, GeoError::UnknownDriver(DriverId::new(1).unwrap()));
    assert_eq!(DriverId::new(u64::MAX), Err(GeoError::ReservedId(u64::MAX)));
    let heavy = Attrs {
        load: 8,
        ..Attrs::default()
    };
    assert!(matches!(
        index.upsert_at(DriverId::new(5).unwrap(), c, heavy, t0),
        Err(GeoError::InvalidAttribute { what: "load", .. })
    ));
    assert!(matches!(
        index.update_attrs_at(DriverId::new(1).unwrap(), |a| a.load = 9, t0),
        Err(GeoError::InvalidAttribute { .. })
    ));
    assert!(
        index
            .update_at(
                DriverUpdate::new(DriverId::new(6).unwrap(), c, t0).with_ttl(Duration::ZERO),
                t0
            )
            .is_err()
    );
    assert_eq!(
        index.move_at(DriverId::new(42).unwrap(), c, t0),
        Err(GeoError::UnknownDriver(DriverId::new(42).unwrap()))
    );
    assert_eq!(
        index.remove_at(DriverId::new(42).unwrap(), t0).unwrap_err(),
        GeoError::UnknownDriver(DriverId::new(42).unwrap())
    );
    assert!(
        index
            .distance_at(
                DriverId::new(1).unwrap(),
                DriverId::new(42).unwrap(),
                Unit::Meters,
                t0
            )
            .is_err()
    );
    assert!(
        index
            .compare_and_set_status_at(
                DriverId::new(42).unwrap(),
                Status::AVAILABLE,
                Status::BUSY,
                t0
            )
            .is_err()
    );
    let batch = [
        DriverUpdate::new(DriverId::new(7).unwrap(), c, t0 + Duration::from_secs(60)),
        DriverUpdate::new(DriverId::new(7).unwrap(), c, t0).with_attrs(heavy),
    ];
    let r = index.upsert_batch_at(&batch, t0);
    assert_eq!(
        r.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(r.inserted + r.moved, 0);
    assert_eq!(index.snapshot_at(t0), before, "bad input changed the index");
    for shards in [0, 3, 8192] {
        let cfg = IndexConfig {
            shards,
            ..IndexConfig::default()
        };
        assert!(matches!(
            GeoIndex::with_config(cfg),
            Err(GeoError::InvalidConfig { what: "shards", .. })
        ));
    }
    for split in [0, 1, 7] {
        let cfg = IndexConfig {
            split_cells_at: Some(split),
            ..IndexConfig::default()
        };
        assert!(matches!(
            GeoIndex::with_config(cfg),
            Err(GeoError::InvalidConfig { what: "split_cells_at", value, .. }) if value == split as u64
        ));
    }
    let cfg = IndexConfig {
        default_ttl: Duration::ZERO,
        ..IndexConfig::default()
    };
    assert!(matches!(
        GeoIndex::with_config(cfg),
        Err(GeoError::InvalidValue { what: "TTL", .. })
    ));
    assert!(matches!(
        index.add_fence(
            1,
            Fence::Circle {
                center: c,
                radius_m: -5.0
            }
        ),
        Err(GeoError::InvalidValue { .. })
    ));
    let line = geo::Polygon::new(geo::LineString::from(vec![(0.0, 0.0), (1.0, 1.0)]), vec![]);
    assert!(matches!(
        index.add_fence(2, Fence::Polygon(line)),
        Err(GeoError::InvalidFence(_))
    ));
    assert_eq!(index.remove_fence(77), Err(GeoError::UnknownFence(77)));
    index.check_invariants();
}

#[test]
fn expiry_default_override_and_purge() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let p = ll(-122.33, 47.61);
    let _ = index
        .upsert_at(DriverId::new(1).unwrap(), p, Attrs::default(), t0)
        .unwrap();
    let _ = index
        .update_at(
            DriverUpdate::new(DriverId::new(2).unwrap(), p, t0).with_ttl(Duration::from_secs(120)),
            t0,
        )
        .unwrap();
    let q = Search::radius(p, 1.0, Unit::Kilometers).asc();
    let s = |secs_ms: u64| {
        index
            .search_at(&q, t0 + Duration::from_millis(secs_ms))
            .unwrap()
            .len()
    };
    assert_eq!(s(29_999), 2);
    // Invisible from the moment it expires.
    assert_eq!(s(30_000), 1);
    assert_eq!(
        index.get_at(DriverId::new(1).unwrap(), t0 + Duration::from_secs(30)),
        Err(GeoError::UnknownDriver(DriverId::new(1).unwrap()))
    );
    assert_eq!(s(119_999), 1);
    assert_eq!(s(120_000), 0);
    let v = index.get_at(DriverId::new(2).unwrap(), t0).unwrap();
    assert_eq!(v.expires_at, t0 + Duration::from_secs(120));
    // The per-driver TTL survives a position-only update.
    let _ = index
        .move_at(
            DriverId::new(2).unwrap(),
            ll(-122.331, 47.61),
            t0 + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        index
            .get_at(DriverId::new(2).unwrap(), t0)
            .unwrap()
            .expires_at,
        t0 + Duration::from_secs(130)
    );
    assert_eq!(index.len(), 2);
    assert_eq!(index.purge_expired_at(t0 + Duration::from_secs(31)), 1);
    assert_eq!(index.len(), 1);
    assert_eq!(index.purge_expired_at(t0 + Duration::from_secs(31)), 0);
    index.check_invariants();
}

#[test]
fn the_amortised_sweep_reclaims_without_a_purge_call() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let batch: Vec<_> = (0..5_000u64)
        .map(|i| {
            DriverUpdate::new(
                DriverId::new(i).unwrap(),
                ll(
                    -122.3 + (i % 100) as f64 * 1e-3,
                    47.6 + (i / 100) as f64 * 1e-3,
                ),
                t0,
            )
        })
        .collect();
    let _ = index.upsert_batch_at(&batch, t0);
    assert_eq!(index.len(), 5_000);
    // A minute later, only drivers 0..100 keep reporting.
    let mut purged = 0;
    for k in 0..400u64 {
        let t = t0 + Duration::from_secs(60) + Duration::from_millis(k);
        purged += index
            .upsert_batch_at(
                &batch[..100]
                    .iter()
                    .map(|u| DriverUpdate { at: t, ..*u })
                    .collect::<Vec<_>>(),
                t,
            )
            .purged;
    }
    assert_eq!(purged, 4_900);
    assert_eq!(index.len(), 100);
    index.check_invariants();
}

#[test]
fn stale_updates_are_rejected_and_expired_drivers_start_afresh() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let (a, b) = (ll(1.0, 1.0), ll(1.001, 1.0));
    let busy = Attrs {
        status: Status::BUSY,
        ..Attrs::default()
    };
    assert_eq!(
        index
            .upsert_at(
                DriverId::new(1).unwrap(),
                a,
                busy,
                t0 + Duration::from_secs(5)
            )
            .unwrap(),
        Upsert::Inserted
    );
    // An older position arriving late is ignored.
    let late = DriverUpdate::new(DriverId::new(1).unwrap(), b, t0 + Duration::from_secs(4));
    assert_eq!(
        index.update_at(late, t0 + Duration::from_secs(6)).unwrap(),
        Upsert::Stale
    );
    assert_eq!(
        index
            .position_at(DriverId::new(1).unwrap(), t0 + Duration::from_secs(6))
            .unwrap(),
        a
    );
    // A position-only update keeps the attributes.
    let newer = DriverUpdate::new(DriverId::new(1).unwrap(), b, t0 + Duration::from_secs(7));
    assert_eq!(
        index.update_at(newer, t0 + Duration::from_secs(7)).unwrap(),
        Upsert::Moved
    );
    assert_eq!(
        index
            .get_at(DriverId::new(1).unwrap(), t0 + Duration::from_secs(7))
            .unwrap()
            .attrs
            .status,
        Status::BUSY
    );
    // After expiry the driver counts as absent: the next update starts it
    // afresh with default attributes, even if its time is older.
    let back = DriverUpdate::new(DriverId::new(1).unwrap(), a, t0 + Duration::from_secs(50));
    assert_eq!(
        index.update_at(back, t0 + Duration::from_secs(60)).unwrap(),
        Upsert::Inserted
    );
    let v = index
        .get_at(DriverId::new(1).unwrap(), t0 + Duration::from_secs(60))
        .unwrap();
    assert_eq!((v.pos, v.attrs), (a, Attrs::default()));
}

#[test]
fn geofence_enter_and_exit_events() {
    let t0 = Instant::now();
    let index = index_at(t0);
    let restaurant = ll(-122.3321, 47.6062);
    index
        .add_fence(
            10,
            Fence::Circle {
                center: restaurant,
                radius_m: 200.0,
            },
        )
        .unwrap();
    let square = geo::Polygon::new(
        geo::LineString::from(vec![
            (-122.35, 47.62),
            (-122.34, 47.62),
            (-122.34, 47.63),
            (-122.35, 47.63),
            (-122.35, 47.62),
        ]),
        vec![],
    );
    index.add_fence(20, Fence::Polygon(square)).unwrap();
    let step = |id: u64, p: LonLat, ms: u64| {
        let t = t0 + Duration::from_millis(ms);
        index
            .upsert_batch_at(&[DriverUpdate::new(DriverId::new(id).unwrap(), p, t)], t)
            .events
    };
    let ev = |fence, kind| {
        vec![FenceEvent {
            driver: DriverId::new(1).unwrap(),
            fence,
            kind,
        }]
    };
    assert_eq!(step(1, ll(-122.3400, 47.6062), 1), vec![]);
    assert_eq!(
        step(1, ll(-122.3330, 47.6062), 2),
        ev(10, FenceEventKind::Enter)
    );
    assert_eq!(step(1, ll(-122.3325, 47.6062), 3), vec![]);
    // Out of the circle and into the square in one move.
    assert_eq!(
        step(1, ll(-122.3450, 47.6250), 4),
        vec![
            FenceEvent {
                driver: DriverId::new(1).unwrap(),
                fence: 20,
                kind: FenceEventKind::Enter
            },
            FenceEvent {
                driver: DriverId::new(1).unwrap(),
                fence: 10,
                kind: FenceEventKind::Exit
            },
        ]
    );
    assert_eq!(
        step(1, ll(-122.3450, 47.6350), 5),
        ev(20, FenceEventKind::Exit)
    );
    // A new driver that appears inside a fence enters it.
    let e = step(2, restaurant, 6);
    assert_eq!(
        e,
        vec![FenceEvent {
            driver: DriverId::new(2).unwrap(),
            fence: 10,
            kind: FenceEventKind::Enter
        }]
    );
    // Far away: nothing.
    assert_eq!(step(3, ll(139.65, 35.67), 7), vec![]);
    index.remove_fence(10).unwrap();
    assert_eq!(step(2, ll(-122.3400, 47.6062), 8), vec![]);
}

#[test]
fn snapshot_round_trips_through_json() {
    let t0 = Instant::now();
    let index = index_at(t0);
    for i in 0..500u64 {
        let p = ll(
            -74.0 + (i % 25) as f64 * 2e-3,
            40.7 + (i / 25) as f64 * 2e-3,
        );
        let mut u = DriverUpdate::new(
            DriverId::new(i).unwrap(),
            p,
            t0 + Duration::from_millis(i * 10),
        )
        .with_attrs(Attrs {
            load: (i % 4) as u8,
            ..Attrs::default()
        });
        if i % 7 == 0 {
            u = u.with_ttl(Duration::from_secs(300));
        }
        let _ = index.update_at(u, t0).unwrap();
    }
    let now = t0 + Duration::from_secs(20);
    let snap = index.snapshot_at(now);
    let json = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    let later = Instant::now() + Duration::from_secs(5);
    let rebuilt = GeoIndex::restore_at(&back, IndexConfig::default(), later).unwrap();
    rebuilt.check_invariants();
    assert_eq!(rebuilt.snapshot_at(later), snap);
    let q = Search::radius(ll(-74.0, 40.7), 3.0, Unit::Kilometers).count(50);
    let a: Vec<_> = index
        .search_at(&q, now)
        .unwrap()
        .iter()
        .map(|h| (h.id, h.attrs))
        .collect();
    let b: Vec<_> = rebuilt
        .search_at(&q, later)
        .unwrap()
        .iter()
        .map(|h| (h.id, h.attrs))
        .collect();
    assert_eq!(a, b);
    // Expiry continues where it was: 30 s after its update, not after the restore.
    let gone = later + Duration::from_secs(11);
    assert!(rebuilt.get_at(DriverId::new(1).unwrap(), gone).is_err());
    assert!(rebuilt.get_at(DriverId::new(7).unwrap(), gone).is_ok());
    // Corrupt coordinates are refused on the way in.
    assert!(serde_json::from_str::<LonLat>("[0.0, 91.0]").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Replaying an update log in any order ends in the same state as
    /// replaying it in order (the stale rule makes updates commute).
    #[test]
    fn replay_in_any_order_converges(
        log in prop::collection::vec((0..12u64, -0.01f64..0.01, -0.01f64..0.01, 0..2_000u64, 0..3u8), 1..60),
        perm_seed in any::<u64>(),
    ) {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(5);
        let updates: Vec<DriverUpdate> = log
            .iter()
            .map(|&(id, dx, dy, ms, st)| {
                let attrs = Attrs { status: Status::new(st).unwrap(), ..Attrs::default() };
                DriverUpdate::new(DriverId::new(id).unwrap(), ll(10.0 + dx, 50.0 + dy), t0 + Duration::from_millis(ms)).with_attrs(attrs)
            })
            .collect();
        let in_order = index_at(t0);
        for u in &updates {
            let _ = in_order.update_at(*u, now).unwrap();
        }
        let mut shuffled = updates.clone();
        let mut x = perm_seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let any_order = index_at(t0);
        for chunk in shuffled.chunks(7) {
            let _ = any_order.upsert_batch_at(chunk, now);
        }
        any_order.check_invariants();
        prop_assert_eq!(in_order.snapshot_at(now), any_order.snapshot_at(now));
    }
}

#[test]
fn search_accessors_describe_the_query() {
    let q = Search::member_box(DriverId::new(3).unwrap(), 2.0, 1.0, Unit::Feet)
        .count(4)
        .any();
    assert_eq!(q.center(), Center::Member(DriverId::new(3).unwrap()));
    assert_eq!(q.shape(), Shape::Box(2.0, 1.0));
    assert_eq!(q.effective_order(), None);
    assert_eq!(
        Search::radius(ll(0.0, 0.0), 1.0, Unit::Meters)
            .count(1)
            .effective_order(),
        Some(dispatchkit_geo_index::Order::Asc)
    );
}

#[test]
fn for_each_matching_visits_live_filtered_drivers() {
    let t0 = Instant::now();
    let index = index_at(t0);
    for i in 0..50u64 {
        let status = if i % 2 == 0 {
            Status::AVAILABLE
        } else {
            Status::BUSY
        };
        let at = t0 + Duration::from_secs(i % 3 * 20);
        let _ = index
            .upsert_at(
                DriverId::new(i).unwrap(),
                ll(1.0 + i as f64 * 1e-3, 1.0),
                Attrs {
                    status,
                    ..Attrs::default()
                },
                at,
            )
            .unwrap();
    }
    let now = t0 + Duration::from_secs(35);
    let mut seen = Vec::new();
    index.for_each_matching_at(now, &Filter::available(), |id, pos, attrs| {
        assert_eq!(attrs.status, Status::AVAILABLE);
        assert_eq!(index.position_at(id, now).unwrap(), pos);
        seen.push(id.get());
    });
    seen.sort_unstable();
    // Updated at 0 s expired at 30 s; 20 s and 40 s ones are live.
    let want: Vec<u64> = (0..50).filter(|i| i % 2 == 0 && i % 3 != 0).collect();
    assert_eq!(seen, want);
    let mut all = 0;
    index.for_each_at(now, |_| all += 1);
    assert_eq!(all, (0..50).filter(|i| i % 3 != 0).count());
}

/// The shards partition a scan: visiting each shard
/// (`for_each_matching_in_shard_at`) sees every matching driver once, as
/// the whole scan does, and both equal the drivers put in; a shard beyond
/// the count is a typed error that visits nothing. A shard of thousands of
/// drivers is walked in several lock holds: a callback that writes to the
/// index (the same shard) does not deadlock, and no driver is lost or seen
/// twice.
#[test]
fn shards_partition_the_scan_and_callbacks_may_write() {
    let t0 = Instant::now();
    for shards in [1, 4, 256] {
        let index = GeoIndex::with_config(IndexConfig {
            epoch: Some(t0),
            shards,
            ..IndexConfig::default()
        })
        .unwrap();
        for i in 0..5_000u64 {
            let status = if i % 2 == 0 {
                Status::AVAILABLE
            } else {
                Status::BUSY
            };
            let pos = ll(1.0 + (i % 100) as f64 * 1e-3, 1.0 + (i / 100) as f64 * 1e-3);
            let attrs = Attrs {
                status,
                ..Attrs::default()
            };
            let _ = index
                .upsert_at(DriverId::new(i).unwrap(), pos, attrs, t0)
                .unwrap();
        }
        let want: Vec<u64> = (0..5_000).filter(|i| i % 2 == 0).collect();
        let available = Filter::available();
        let mut whole = Vec::new();
        index.for_each_matching_at(t0, &available, |id, _, _| whole.push(id.get()));
        whole.sort_unstable();
        assert_eq!(whole, want, "{shards} shards");
        assert_eq!(index.shard_count(), shards);
        let mut parts = Vec::new();
        for s in 0..index.shard_count() {
            index
                .for_each_matching_in_shard_at(s, t0, &available, |id, _, _| {
                    // Writes to the shard being walked: its lock is not held.
                    index
                        .update_attrs_at(id, |a| a.status = Status::BUSY, t0)
                        .unwrap();
                    parts.push(id.get());
                })
                .unwrap();
        }
        parts.sort_unstable();
        assert_eq!(parts, want, "{shards} shards");
        let mut left = 0;
        index.for_each_matching_at(t0, &available, |_, _, _| left += 1);
        assert_eq!(left, 0, "every visited driver was set busy");
        let mut visited = 0;
        let err = index
            .for_each_matching_in_shard_at(shards, t0, &Filter::default(), |_, _, _| visited += 1)
            .unwrap_err();
        assert_eq!(
            err,
            GeoError::UnknownShard {
                shard: shards,
                shards
            }
        );
        assert_eq!(
            err.to_string(),
            format!("unknown shard {shards}: the index has {shards} shards (0..{shards})")
        );
        assert_eq!(visited, 0);
    }
}
