//! The in-process `GeoIndex` and `RedisGeoIndex` given the same drivers,
//! updates, removals and queries give the same answers: the metro workload
//! plus clusters on the antimeridian and at the latitude limit, random
//! attributes, then 2,400 random `GEOSEARCH`es (radius and box, 0 m to
//! 40 km, every unit, ASC / DESC / COUNT / ANY / unordered, filters,
//! exclusions, `FROMMEMBER`) on a single Redis server, and 600 on a local
//! 3-master Redis Cluster. Ordered answers must be the same drivers in the
//! same order (near-ties within 1 m aside), unordered ones the same sets,
//! `ANY` answers the same size and all valid; distances within 1 m.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use dispatchkit::geo::{
    Attrs, DriverId, DriverIndex, DriverUpdate, Filter, GeoIndex, Hit, IndexConfig, LonLat, Order,
    Rating, RedisGeoConfig, RedisGeoIndex, Search, Status, Unit, VehicleSet, VehicleType,
};
use dispatchkit::workload::{Fleet, MetroConfig, QueryStream};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

// The tests' seeded stream (SplitMix64).
use dispatchkit_test_support::SplitMix64 as Rng;

fn id(n: u64) -> DriverId {
    DriverId::new(n).unwrap()
}

fn random_attrs(rng: &mut Rng) -> Attrs {
    Attrs {
        status: Status::new([0, 0, 0, 1, 2][rng.below(5) as usize]).unwrap(),
        vehicle: VehicleType::new([0, 1, 2, 31, 32, 63][rng.below(6) as usize]).unwrap(),
        rating: Rating::from_hundredths(350 + rng.below(151) as u16).unwrap(),
        load: rng.below(4) as u8,
    }
}

fn random_filter(rng: &mut Rng) -> Filter {
    let mut f = Filter::new();
    if rng.below(2) == 0 {
        f = f.status(Status::AVAILABLE);
    }
    if rng.below(3) == 0 {
        let pick = |n: u8| VehicleType::new(n).unwrap();
        f = f.vehicles(VehicleSet::of(&[pick(0), pick(31), pick(63)]));
    }
    if rng.below(3) == 0 {
        f = f.min_rating(Rating::new(4.5).unwrap());
    }
    if rng.below(4) == 0 {
        f = f.max_load(2);
    }
    f
}

/// Loads the same fleet into both indexes at `t0` (+ moves and removals at
/// `t0 + 1 s`); returns the ids present.
fn load(a: &GeoIndex, b: &RedisGeoIndex, t0: Instant, drivers: usize, rng: &mut Rng) -> Vec<u64> {
    let fleet = Fleet::generate(&MetroConfig {
        drivers,
        seed: 11,
        ..MetroConfig::default()
    })
    .unwrap();
    let mut points: Vec<(f64, f64)> = fleet
        .drivers()
        .iter()
        .map(|d| (d.position.x(), d.position.y()))
        .collect();
    for i in 0..400 {
        let f = f64::from(i) / 400.0;
        let lon = if i % 2 == 0 {
            179.9999 - 0.04 * f
        } else {
            -179.9999 + 0.04 * f
        };
        points.push((lon, -16.5 + 0.02 * (f - 0.5)));
        points.push(((f - 0.5) * 350.0, 85.0 + 0.05 * f));
    }
    let updates: Vec<DriverUpdate> = points
        .iter()
        .enumerate()
        .map(|(i, &(lon, lat))| {
            DriverUpdate::new(id(i as u64), LonLat::new(lon, lat).unwrap(), t0)
                .with_attrs(random_attrs(rng))
        })
        .collect();
    let t1 = t0 + Duration::from_secs(1);
    // Every 7th driver moves up to ~30 km (often into another tile); every
    // 50th is removed.
    let moves: Vec<DriverUpdate> = updates
        .iter()
        .step_by(7)
        .map(|u| {
            let (lon, lat) = (u.pos.lon(), u.pos.lat());
            let lon = (lon + (rng.unit() - 0.5) * 0.6).clamp(-180.0, 180.0);
            let lat = (lat + (rng.unit() - 0.5) * 0.4).clamp(-85.0, 85.0);
            DriverUpdate::new(u.id, LonLat::new(lon, lat).unwrap(), t1)
        })
        .collect();
    for chunk in updates.chunks(4096) {
        let ra = a.upsert_batch_at(chunk, t0);
        let rb = b.upsert_batch_at(chunk, t0).unwrap();
        assert_eq!(
            (ra.inserted, ra.moved, ra.stale),
            (rb.inserted, rb.moved, rb.stale)
        );
    }
    for chunk in moves.chunks(4096) {
        let ra = a.upsert_batch_at(chunk, t1);
        let rb = b.upsert_batch_at(chunk, t1).unwrap();
        assert_eq!(
            (ra.inserted, ra.moved, ra.stale),
            (rb.inserted, rb.moved, rb.stale)
        );
        assert_eq!(rb.moved, chunk.len());
    }
    let mut present = Vec::new();
    for u in &updates {
        if u.id.get() % 50 == 0 {
            let va = a.remove_at(u.id, t1).unwrap();
            let vb = b.remove_at(u.id, t1).unwrap();
            assert_eq!((va.pos, va.attrs), (vb.pos, vb.attrs));
        } else {
            present.push(u.id.get());
        }
    }
    present
}

/// Whether two answers agree; ordered answers may swap drivers whose
/// distances are within 1 m.
fn same(q: &Search, a: &[Hit], b: &[Hit]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} hits in-process, {} on Redis", a.len(), b.len()));
    }
    if q.is_any() {
        // ANY: any `COUNT` matches, near but not necessarily the nearest.
        return Ok(());
    }
    if q.effective_order().is_some() {
        for (x, y) in a.iter().zip(b) {
            if (x.distance - y.distance).abs() * q.unit().metres() > 1.0 {
                return Err(format!("distances {} vs {}", x.distance, y.distance));
            }
        }
    }
    let ids = |h: &[Hit]| h.iter().map(|h| h.id).collect::<Vec<_>>();
    if q.effective_order().is_some() && ids(a) != ids(b) {
        // Only near-ties may be ordered differently, and only the last
        // near-tie group may hold different drivers.
        let last = a.last().map_or(0.0, |h| h.distance);
        for (x, y) in a.iter().zip(b) {
            if x.id != y.id && (x.distance - y.distance).abs() * q.unit().metres() > 1.0 {
                return Err(format!("order differs at {:?} / {:?}", x.id, y.id));
            }
        }
        let sa: HashSet<_> = a
            .iter()
            .filter(|h| ((h.distance - last).abs() * q.unit().metres()) > 1.0)
            .map(|h| h.id)
            .collect();
        let sb: HashSet<_> = b
            .iter()
            .filter(|h| ((h.distance - last).abs() * q.unit().metres()) > 1.0)
            .map(|h| h.id)
            .collect();
        if sa != sb {
            return Err("different drivers".into());
        }
        return Ok(());
    }
    let by_id = |h: &[Hit]| {
        h.iter()
            .map(|h| (h.id, h.distance))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (ma, mb) = (by_id(a), by_id(b));
    if ma.keys().collect::<HashSet<_>>() != mb.keys().collect::<HashSet<_>>() {
        return Err("different sets".into());
    }
    if ma
        .iter()
        .any(|(id, d)| (d - mb[id]).abs() * q.unit().metres() > 1.0)
    {
        return Err("different distances".into());
    }
    Ok(())
}

/// Runs `n` random queries on both; returns how many hits were compared.
fn compare(
    a: &GeoIndex,
    b: &RedisGeoIndex,
    present: &[u64],
    now: Instant,
    n: usize,
    rng: &mut Rng,
) -> usize {
    let fleet_cfg = MetroConfig::default();
    let mut pickups = QueryStream::new(&fleet_cfg, 8).unwrap();
    let mut hits = 0;
    for k in 0..n {
        let c = match k % 10 {
            8 => LonLat::new(179.995 - (k % 3) as f64 * 0.005, -16.5).unwrap(),
            9 => LonLat::new(((k * 37) % 360) as f64 - 180.0, 84.9).unwrap(),
            _ => LonLat::try_from(pickups.next_pickup().point).unwrap(),
        };
        let unit = [Unit::Meters, Unit::Kilometers, Unit::Feet, Unit::Miles][rng.below(4) as usize];
        let size_m = [0.0, 5.0, 300.0, 2_000.0, 5_000.0, 40_000.0][rng.below(6) as usize];
        let s = size_m / unit.metres();
        let member = rng.below(8) == 0;
        let m = id(present[rng.below(present.len() as u64) as usize]);
        let mut q = match (rng.below(3) == 0, member) {
            (true, false) => Search::boxed(c, 2.0 * s, s, unit),
            (true, true) => Search::member_box(m, 2.0 * s, s, unit),
            (false, false) => Search::radius(c, s, unit),
            (false, true) => Search::member_radius(m, s, unit),
        };
        let count = [1, 3, 10, 25][rng.below(4) as usize];
        q = match rng.below(7) {
            0 | 1 => q.count(count),
            2 => q.count(count).desc(),
            3 => q.asc(),
            4 => q.desc(),
            5 => q.count(count).any(),
            _ => q,
        };
        if rng.below(2) == 0 {
            q = q.filter(random_filter(rng));
        }
        if rng.below(4) == 0 {
            q = q.with_hash();
        }
        let exclude: Vec<DriverId> = if rng.below(4) == 0 {
            // Exclude some of the full answer's first drivers.
            a.search_at(&q, now)
                .unwrap()
                .iter()
                .take(3)
                .map(|h| h.id)
                .collect()
        } else {
            Vec::new()
        };
        let ra = a.search_excluding_at(&q, &exclude, now).unwrap();
        let rb = b.search_excluding_at(&q, &exclude, now).unwrap();
        if let Err(why) = same(&q, &ra, &rb) {
            panic!("query {k}: {why}\n{q:?}\nexclude {exclude:?}\nin-process {ra:?}\nredis {rb:?}");
        }
        if q.is_any() {
            // Every ANY hit is a hit of the same query without ANY.
            let mut full = q;
            full = Search::new(full.center(), full.shape(), full.unit()).filter(*q.attr_filter());
            let all: HashSet<DriverId> = a
                .search_excluding_at(&full, &exclude, now)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            assert!(
                rb.iter().all(|h| all.contains(&h.id)),
                "ANY hit outside the query: {q:?}"
            );
        }
        for h in &rb {
            assert_eq!(h.hash.is_some(), q.wants_hash());
        }
        if let Some(Order::Asc) = q.effective_order() {
            assert!(rb.windows(2).all(|w| w[0].distance <= w[1].distance));
        }
        hits += rb.len();
    }
    hits
}

fn pair(url: String, cluster: bool, t0: Instant) -> (GeoIndex, RedisGeoIndex) {
    let a = GeoIndex::with_config(IndexConfig {
        epoch: Some(t0),
        ..IndexConfig::default()
    })
    .unwrap();
    let mut cfg = RedisGeoConfig::new(url);
    cfg.cluster = cluster;
    cfg.clock = Some((t0, SystemTime::now()));
    cfg.io_timeout = Duration::from_secs(10);
    (a, RedisGeoIndex::new(cfg).unwrap())
}

#[test]
fn redis_index_answers_like_the_in_process_index() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let t0 = Instant::now();
    let (a, b) = pair(server.url(), false, t0);
    let mut rng = Rng(17);
    let present = load(&a, &b, t0, 20_000, &mut rng);
    let now = t0 + Duration::from_secs(2);
    let hits = compare(&a, &b, &present, now, 2_400, &mut rng);
    assert!(hits > 20_000, "too few hits compared ({hits})");
    // The snapshots agree too.
    assert_eq!(a.snapshot_at(now), b.snapshot_at(now).unwrap());
}

#[test]
fn redis_cluster_index_answers_like_the_in_process_index() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let t0 = Instant::now();
    let (a, b) = pair(cluster.url(), true, t0);
    let mut rng = Rng(29);
    let present = load(&a, &b, t0, 8_000, &mut rng);
    let now = t0 + Duration::from_secs(2);
    let hits = compare(&a, &b, &present, now, 600, &mut rng);
    assert!(hits > 5_000, "too few hits compared ({hits})");
    assert_eq!(a.snapshot_at(now), b.snapshot_at(now).unwrap());
}
