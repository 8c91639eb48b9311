//! One conformance suite for every backend of `DriverIndex`, written
//! against the trait: upserts and stale updates, batches, reads, distances,
//! removal, expiry, `GEOSEARCH` with and without exclusions, and the two
//! atomic claims. It runs on the in-process `GeoIndex`, an `Arc` of it, and
//! `RedisGeoIndex` on a single Redis server and on a local 3-master Redis
//! Cluster (both started by the tests; under `CI=true` a missing
//! `redis-server` fails them).

use std::time::{Duration, Instant, SystemTime};

use dispatchkit_geo_index::{
    Attrs, DriverId, DriverIndex, DriverUpdate, GeoError, GeoIndex, IndexConfig, LonLat, Rating,
    RedisGeoConfig, RedisGeoIndex, Search, Status, Unit, Upsert, VehicleType,
};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

fn id(n: u64) -> DriverId {
    DriverId::new(n).unwrap()
}

fn ll(lon: f64, lat: f64) -> LonLat {
    LonLat::new(lon, lat).unwrap()
}

fn attrs() -> Attrs {
    Attrs::available(VehicleType::new(0).unwrap(), Rating::new(4.8).unwrap())
}

/// The suite; `t0` is the index's time origin, `ttl` its driver TTL.
fn suite(index: &impl DriverIndex, t0: Instant, ttl: Duration) {
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    // Upserts: new, moved, stale.
    assert_eq!(
        index
            .upsert_at(id(1), ll(13.40, 52.52), attrs(), s(1))
            .unwrap(),
        Upsert::Inserted
    );
    assert_eq!(
        index
            .upsert_at(id(1), ll(13.41, 52.52), attrs(), s(2))
            .unwrap(),
        Upsert::Moved
    );
    let stale = DriverUpdate::new(id(1), ll(13.0, 52.0), s(1)).with_attrs(attrs());
    let report = index.upsert_batch_at(&[stale], s(2)).unwrap();
    assert_eq!((report.inserted, report.moved, report.stale), (0, 0, 1));
    assert_eq!(index.position_at(id(1), s(2)).unwrap(), ll(13.41, 52.52));
    // A batch of new drivers along one street, 100 m apart.
    let batch: Vec<DriverUpdate> = (2..12u64)
        .map(|i| {
            DriverUpdate::new(id(i), ll(13.40 + 0.00147 * (i as f64 - 2.0), 52.50), s(3))
                .with_attrs(attrs())
        })
        .collect();
    let report = index.upsert_batch_at(&batch, s(3)).unwrap();
    assert_eq!((report.inserted, report.moved, report.stale), (10, 0, 0));
    // One driver twice in a batch: applied in batch order (the second,
    // later one moves it; an older one after it is stale).
    let ms = Duration::from_millis(1);
    let twice = [
        DriverUpdate::new(id(20), ll(13.30, 52.40), s(3)).with_attrs(attrs()),
        DriverUpdate::new(id(20), ll(13.31, 52.40), s(3) + ms),
        DriverUpdate::new(id(20), ll(13.32, 52.40), s(3)),
    ];
    let report = index.upsert_batch_at(&twice, s(3) + ms).unwrap();
    assert_eq!((report.inserted, report.moved, report.stale), (1, 1, 1));
    assert_eq!(
        index.position_at(id(20), s(3) + ms).unwrap(),
        ll(13.31, 52.40)
    );
    assert_eq!(
        index.remove_at(id(20), s(3) + ms).unwrap().pos,
        ll(13.31, 52.40)
    );
    // Distance between drivers 2 and 3: about 100 m.
    let d = index.distance_at(id(2), id(3), Unit::Meters, s(3)).unwrap();
    assert!((d - 100.0).abs() < 1.0, "{d}");
    // GEOSEARCH: the 3 nearest to driver 2's spot, ascending; with driver 2
    // and 3 excluded, the next 3.
    let q = Search::radius(ll(13.40, 52.50), 2.0, Unit::Kilometers).count(3);
    let ids = |hits: Vec<dispatchkit_geo_index::Hit>| hits.iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(
        ids(index.search_at(&q, s(3)).unwrap()),
        [id(2), id(3), id(4)]
    );
    assert_eq!(
        ids(index
            .search_excluding_at(&q, &[id(2), id(3)], s(3))
            .unwrap()),
        [id(4), id(5), id(6)]
    );
    // The status claim: one winner.
    assert!(
        index
            .compare_and_set_status_at(id(4), Status::AVAILABLE, Status::BUSY, s(4))
            .unwrap()
    );
    assert!(
        !index
            .compare_and_set_status_at(id(4), Status::AVAILABLE, Status::BUSY, s(4))
            .unwrap()
    );
    assert_eq!(
        index.get_at(id(4), s(4)).unwrap().attrs.status,
        Status::BUSY
    );
    // The load claim: fits, fills (status full), then refuses.
    assert!(
        index
            .claim_load_at(id(5), Status::AVAILABLE, 2, 3, Status::BUSY, s(4))
            .unwrap()
    );
    assert!(
        !index
            .claim_load_at(id(5), Status::AVAILABLE, 2, 3, Status::BUSY, s(4))
            .unwrap()
    );
    assert!(
        index
            .claim_load_at(id(5), Status::AVAILABLE, 1, 3, Status::BUSY, s(4))
            .unwrap()
    );
    let v = index.get_at(id(5), s(4)).unwrap();
    assert_eq!((v.attrs.load, v.attrs.status), (3, Status::BUSY));
    // Releasing: load down (not below 0), full -> available.
    index
        .release_load_at(id(5), 2, Status::BUSY, Status::AVAILABLE, s(4))
        .unwrap();
    let v = index.get_at(id(5), s(4)).unwrap();
    assert_eq!((v.attrs.load, v.attrs.status), (1, Status::AVAILABLE));
    index
        .release_load_at(id(5), 5, Status::BUSY, Status::AVAILABLE, s(4))
        .unwrap();
    assert_eq!(index.get_at(id(5), s(4)).unwrap().attrs.load, 0);
    assert!(
        index
            .claim_load_at(id(5), Status::AVAILABLE, 3, 3, Status::BUSY, s(4))
            .unwrap()
    );
    // A search sees the claimed state (the Redis tiles follow the claim).
    let busy = Search::radius(ll(13.40, 52.50), 2.0, Unit::Kilometers)
        .filter(dispatchkit_geo_index::Filter::new().status(Status::BUSY));
    assert_eq!(ids(index.search_at(&busy, s(4)).unwrap()), [id(4), id(5)]);
    assert!(matches!(
        index.claim_load_at(id(6), Status::AVAILABLE, 1, 8, Status::BUSY, s(4)),
        Err(GeoError::InvalidAttribute { .. })
    ));
    // Unknown and removed drivers.
    assert!(matches!(
        index.get_at(id(99), s(4)),
        Err(GeoError::UnknownDriver(_))
    ));
    assert!(matches!(
        index.compare_and_set_status_at(id(99), Status::AVAILABLE, Status::BUSY, s(4)),
        Err(GeoError::UnknownDriver(_))
    ));
    assert!(matches!(
        index.release_load_at(id(99), 1, Status::BUSY, Status::AVAILABLE, s(4)),
        Err(GeoError::UnknownDriver(_))
    ));
    assert_eq!(index.remove_at(id(6), s(5)).unwrap().id, id(6));
    assert!(matches!(
        index.get_at(id(6), s(5)),
        Err(GeoError::UnknownDriver(_))
    ));
    // Expiry: past the TTL nothing is returned, searched or claimed.
    let late = s(3) + ttl + Duration::from_secs(1);
    assert!(matches!(
        index.get_at(id(2), late),
        Err(GeoError::UnknownDriver(_))
    ));
    assert!(index.search_at(&q, late).unwrap().is_empty());
    assert!(
        index
            .compare_and_set_status_at(id(3), Status::AVAILABLE, Status::BUSY, late)
            .is_err()
    );
}

#[test]
fn in_process_index_conforms() {
    let t0 = Instant::now();
    let config = IndexConfig {
        epoch: Some(t0),
        ..IndexConfig::default()
    };
    let ttl = config.default_ttl;
    let index = GeoIndex::with_config(config).unwrap();
    suite(&index, t0, ttl);
}

/// Servers share the index through an `Arc`: that is an index too.
#[test]
fn an_arc_of_an_index_conforms() {
    let t0 = Instant::now();
    let config = IndexConfig {
        epoch: Some(t0),
        ..IndexConfig::default()
    };
    let ttl = config.default_ttl;
    let index = std::sync::Arc::new(GeoIndex::with_config(config).unwrap());
    suite(&index, t0, ttl);
}

fn redis_config(url: String, cluster: bool, t0: Instant) -> RedisGeoConfig {
    let mut cfg = RedisGeoConfig::new(url);
    cfg.cluster = cluster;
    cfg.clock = Some((t0, SystemTime::now()));
    cfg
}

#[test]
fn redis_index_conforms() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let t0 = Instant::now();
    let index = RedisGeoIndex::new(redis_config(server.url(), false, t0)).unwrap();
    suite(&index, t0, Duration::from_millis(index.default_ttl_ms()));
}

#[test]
fn redis_cluster_index_conforms() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let t0 = Instant::now();
    let index = RedisGeoIndex::new(redis_config(cluster.url(), true, t0)).unwrap();
    suite(&index, t0, Duration::from_millis(index.default_ttl_ms()));
}
