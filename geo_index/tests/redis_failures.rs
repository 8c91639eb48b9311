//! `RedisGeoIndex` under bad input and failures: bad configurations and
//! arguments are typed errors that leave Redis unchanged; a server that is
//! down is `GeoError::Unavailable` naming the part; after the server lost
//! its data the index is rebuilt from the in-process twin's snapshot in one
//! call (and an in-process index from Redis's), answering as before; a
//! Cluster node down mid-search fails the search naming the tile, or
//! returns the other tiles' drivers flagged as partial when asked to.

use std::time::{Duration, Instant, SystemTime};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverIndex, DriverUpdate, Filter, GeoError, GeoIndex, Hit, IndexConfig,
    LonLat, RedisGeoConfig, RedisGeoIndex, Search, Status, Unit,
};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

fn id(n: u64) -> DriverId {
    DriverId::new(n).unwrap()
}

fn config(url: String, t0: Instant) -> RedisGeoConfig {
    let mut cfg = RedisGeoConfig::new(url);
    cfg.clock = Some((t0, SystemTime::now()));
    cfg
}

/// Drivers on a 5 km grid over ~100 km around Berlin.
fn grid(t: Instant) -> Vec<DriverUpdate> {
    (0..400u64)
        .map(|k| {
            let (x, y) = ((k % 20) as f64, (k / 20) as f64);
            let p = LonLat::new(12.6 + x * 0.073, 52.1 + y * 0.045).unwrap();
            let mut a = Attrs::default();
            if k % 3 == 0 {
                a.status = Status::BUSY;
            }
            DriverUpdate::new(id(k), p, t).with_attrs(a)
        })
        .collect()
}

fn queries() -> Vec<Search> {
    let c = LonLat::new(13.3, 52.5).unwrap();
    vec![
        Search::radius(c, 10.0, Unit::Kilometers).count(10),
        Search::radius(c, 30.0, Unit::Kilometers)
            .filter(Filter::available())
            .asc(),
        Search::boxed(c, 40.0, 20.0, Unit::Kilometers)
            .desc()
            .count(7),
        Search::member_radius(id(42), 8.0, Unit::Miles).asc(),
    ]
}

fn answers(index: &impl DriverIndex, now: Instant) -> Vec<Vec<Hit>> {
    queries()
        .iter()
        .map(|q| index.search_at(q, now).unwrap())
        .collect()
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let t0 = Instant::now();
    let bad = |f: fn(&mut RedisGeoConfig)| {
        let mut cfg = config(server.url(), t0);
        f(&mut cfg);
        RedisGeoIndex::new(cfg).unwrap_err()
    };
    assert!(matches!(
        bad(|c| c.prefix = "a{b}".into()),
        GeoError::InvalidConfig { what: "prefix", .. }
    ));
    assert!(matches!(
        bad(|c| c.tile_cells = 3),
        GeoError::InvalidConfig {
            what: "tile_cells",
            value: 3,
            ..
        }
    ));
    assert!(matches!(
        bad(|c| c.tile_cells = 2048),
        GeoError::InvalidConfig {
            what: "tile_cells",
            ..
        }
    ));
    assert!(matches!(
        bad(|c| c.dir_buckets = 1000),
        GeoError::InvalidConfig {
            what: "dir_buckets",
            ..
        }
    ));
    assert!(matches!(
        bad(|c| c.default_ttl = Duration::ZERO),
        GeoError::InvalidValue { what: "TTL", .. }
    ));
    assert!(matches!(
        bad(|c| c.io_timeout = Duration::ZERO),
        GeoError::InvalidConfig {
            what: "io_timeout",
            ..
        }
    ));
    assert!(matches!(
        bad(|c| c.url = "http://x".into()),
        GeoError::InvalidConfig { what: "url", .. }
    ));

    let index = RedisGeoIndex::new(config(server.url(), t0)).unwrap();
    let r = index.upsert_batch_at(&grid(t0), t0).unwrap();
    assert_eq!(r.inserted, 400);
    let before = index.snapshot_at(t0).unwrap();
    let p = LonLat::new(13.0, 52.0).unwrap();
    let overloaded = Attrs {
        load: 8,
        ..Attrs::default()
    };
    assert!(matches!(
        index.upsert_at(id(1), p, overloaded, t0),
        Err(GeoError::InvalidAttribute { what: "load", .. })
    ));
    // A batch: the bad updates are reported, the good one applied.
    let batch = [
        DriverUpdate::new(id(2), p, t0 + Duration::from_secs(60)),
        DriverUpdate::new(id(3), p, t0).with_ttl(Duration::ZERO),
        DriverUpdate::new(id(4), p, t0).with_attrs(overloaded),
        DriverUpdate::new(id(1000), p, t0),
    ];
    let r = index.upsert_batch_at(&batch, t0).unwrap();
    let reasons: Vec<_> = r.rejected.iter().map(|(i, e)| (*i, e.clone())).collect();
    assert!(matches!(
        reasons[0],
        (
            0,
            GeoError::FutureUpdate {
                ahead_ms: 60_000,
                max_skew_ms: 5_000
            }
        )
    ));
    assert!(matches!(
        reasons[1],
        (1, GeoError::InvalidValue { what: "TTL", .. })
    ));
    assert!(matches!(
        reasons[2],
        (2, GeoError::InvalidAttribute { what: "load", .. })
    ));
    assert_eq!((r.inserted, reasons.len()), (1, 3));
    index.remove_at(id(1000), t0).unwrap();
    let c = LonLat::new(13.3, 52.5).unwrap();
    for q in [
        Search::radius(c, 1.0, Unit::Kilometers).count(0),
        Search::radius(c, 1.0, Unit::Kilometers).any(),
        Search::radius(c, f64::NAN, Unit::Kilometers),
        Search::boxed(c, -1.0, 1.0, Unit::Kilometers),
    ] {
        assert!(
            matches!(
                index.search_at(&q, t0),
                Err(GeoError::InvalidCount { .. } | GeoError::InvalidValue { .. })
            ),
            "{q:?}"
        );
    }
    assert_eq!(
        index.search_at(&Search::member_radius(id(9999), 1.0, Unit::Meters), t0),
        Err(GeoError::UnknownDriver(id(9999)))
    );
    assert!(matches!(
        index.claim_load_at(id(1), Status::AVAILABLE, 1, 8, Status::BUSY, t0),
        Err(GeoError::InvalidAttribute { what: "load", .. })
    ));
    for e in [
        index.get_at(id(9999), t0).map(drop),
        index.remove_at(id(9999), t0).map(drop),
        index
            .compare_and_set_status_at(id(9999), Status::AVAILABLE, Status::BUSY, t0)
            .map(drop),
        index
            .claim_load_at(id(9999), Status::AVAILABLE, 1, 3, Status::BUSY, t0)
            .map(drop),
        index
            .distance_at(id(1), id(9999), Unit::Meters, t0)
            .map(drop),
    ] {
        assert_eq!(e, Err(GeoError::UnknownDriver(id(9999))));
    }
    assert_eq!(index.snapshot_at(t0).unwrap(), before, "state changed");
}

#[test]
fn a_lost_server_is_unavailable_then_rebuilt_from_a_snapshot() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let t0 = Instant::now();
    let cfg = config(server.url(), t0);
    let redis_index = RedisGeoIndex::new(cfg.clone()).unwrap();
    // The in-process twin: the seed's durable copy (DynamoDB) to replay.
    let twin = GeoIndex::with_config(IndexConfig {
        epoch: Some(t0),
        ..IndexConfig::default()
    })
    .unwrap();
    let updates = grid(t0);
    let _ = redis_index.upsert_batch_at(&updates, t0).unwrap();
    let _ = twin.upsert_batch_at(&updates, t0);
    let now = t0 + Duration::from_secs(5);
    let before = answers(&redis_index, now);
    assert_eq!(before, answers(&twin, now));
    assert!(before.iter().all(|a| !a.is_empty()));

    // Down: every operation is a typed error naming the part.
    server.stop();
    let started = Instant::now();
    match redis_index.upsert_at(
        id(1),
        LonLat::new(13.0, 52.0).unwrap(),
        Attrs::default(),
        now,
    ) {
        Err(GeoError::Unavailable { part, .. }) => assert_eq!(part, "directory"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        redis_index.search_at(&queries()[0], now),
        Err(GeoError::Unavailable { .. })
    ));
    assert!(matches!(
        redis_index.get_at(id(1), now),
        Err(GeoError::Unavailable { .. })
    ));
    assert!(matches!(
        redis_index.snapshot_at(now),
        Err(GeoError::Unavailable { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failures must not hang"
    );

    // Back, empty (no persistence): rebuilt from the twin in one call.
    server.restart();
    assert!(
        redis_index
            .search_at(&queries()[0], now)
            .unwrap()
            .is_empty()
    );
    let rebuilt = RedisGeoIndex::restore_at(&twin.snapshot_at(now), cfg, now).unwrap();
    assert_eq!(answers(&rebuilt, now), before);
    // And the other way: an in-process index from Redis's snapshot.
    let back = GeoIndex::restore_at(
        &rebuilt.snapshot_at(now).unwrap(),
        IndexConfig {
            epoch: Some(t0),
            ..IndexConfig::default()
        },
        now,
    )
    .unwrap();
    assert_eq!(answers(&back, now), before);
    // Expiry continues where it was: past the TTL, nothing on either.
    let late = t0 + Duration::from_secs(31);
    for q in &queries()[..3] {
        assert!(rebuilt.search_at(q, late).unwrap().is_empty());
    }
    assert_eq!(
        rebuilt.get_at(id(42), late),
        Err(GeoError::UnknownDriver(id(42)))
    );
}

#[test]
fn a_cluster_node_down_fails_the_search_or_flags_it_partial() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let t0 = Instant::now();
    let mut cfg = config(cluster.url(), t0);
    cfg.cluster = true;
    // Small tiles: the area spreads over many slots on every node.
    cfg.tile_cells = 8;
    let index = RedisGeoIndex::new(cfg).unwrap();
    let _ = index.upsert_batch_at(&grid(t0), t0).unwrap();
    let q = Search::radius(LonLat::new(13.3, 52.5).unwrap(), 12.0, Unit::Kilometers);
    let full = index.search_at(&q, t0).unwrap();
    assert!(full.len() > 10);

    cluster.kill_node(2);
    let started = Instant::now();
    match index.search_at(&q, t0) {
        Err(GeoError::Unavailable { part, .. }) => assert!(part.starts_with("tile "), "{part}"),
        other => panic!("a short answer instead of an error: {other:?}"),
    }
    let partial = index.search_partial_at(&q, t0).unwrap();
    assert!(!partial.is_complete());
    assert!(
        partial
            .missing
            .iter()
            .all(|e| matches!(e, GeoError::Unavailable { part, .. } if part.starts_with("tile ")))
    );
    assert!(
        !partial.hits.is_empty() && partial.hits.len() < full.len(),
        "{} of {} hits, {} tiles missing: {:?}",
        partial.hits.len(),
        full.len(),
        partial.missing.len(),
        partial.missing.first()
    );
    assert!(partial.hits.iter().all(|h| full.contains(h)));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failures must not hang"
    );
}
