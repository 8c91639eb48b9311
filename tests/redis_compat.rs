//! dispatchkit's GEOSEARCH against a real `redis-server` (started on a free
//! loopback port; skipped with a note when `redis-server` is not on PATH —
//! `.ci/run` installs it). Random members and queries, including the
//! antimeridian and the latitude limit, in every unit and shape.
//!
//! Redis stores a 52-bit geohash (positions ±0.6 m), dispatchkit stores
//! positions to 5 mm, so members within 1 m of the area's edge may fall on
//! either side; everything else must agree: the member sets, the order,
//! distances within 0.5 m, and the 52-bit hashes.

use dispatchkit_test_support::redis_server;

use std::collections::HashMap;
use std::time::Instant;

use dispatchkit::geo::{Attrs, EARTH_RADIUS_M};
use dispatchkit::geo::{DriverId, GeoIndex, LonLat, Search, Shape, Unit};
use dispatchkit::workload::{Fleet, MetroConfig, QueryStream};

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Meters => "m",
        Unit::Kilometers => "km",
        Unit::Feet => "ft",
        Unit::Miles => "mi",
    }
}

/// Redis's member/distance reply of `GEOSEARCH … WITHDIST WITHHASH`.
fn redis_search(con: &mut redis::Connection, q: &Search, c: LonLat) -> Vec<(u64, f64, u64)> {
    let mut cmd = redis::cmd("GEOSEARCH");
    cmd.arg("drivers")
        .arg("FROMLONLAT")
        .arg(c.lon())
        .arg(c.lat());
    match q.shape() {
        Shape::Radius(r) => cmd.arg("BYRADIUS").arg(r),
        Shape::Box(w, h) => cmd.arg("BYBOX").arg(w).arg(h),
    };
    cmd.arg(unit_name(q.unit()));
    match q.effective_order() {
        Some(dispatchkit::geo::Order::Asc) => {
            cmd.arg("ASC");
        }
        Some(dispatchkit::geo::Order::Desc) => {
            cmd.arg("DESC");
        }
        None => {}
    }
    if let Some(n) = q.count_limit() {
        cmd.arg("COUNT").arg(n);
    }
    cmd.arg("WITHDIST").arg("WITHHASH");
    let rows: Vec<(String, String, u64)> = cmd.query(con).expect("GEOSEARCH");
    rows.into_iter()
        .map(|(m, d, h)| {
            (
                m.parse().expect("numeric member"),
                d.parse().expect("numeric distance"),
                h,
            )
        })
        .collect()
}

/// A fresh server and a connection to it; `None` (with a note) where
/// redis-server is missing outside CI.
fn connect() -> Option<(redis_server::RedisServer, redis::Connection)> {
    let Some(server) = redis_server::RedisServer::start() else {
        eprintln!("note: redis-server not available; Redis comparison skipped");
        return None;
    };
    let con = server.connection().expect("connect");
    Some((server, con))
}

#[test]
fn geosearch_agrees_with_redis_server() {
    let Some((_server, mut con)) = connect() else {
        return;
    };
    let (t0, index) = (Instant::now(), GeoIndex::new());

    // 20k drivers of the metro workload plus clusters on the antimeridian
    // and at the latitude limit.
    let fleet = Fleet::generate(&MetroConfig {
        drivers: 20_000,
        seed: 3,
        ..MetroConfig::default()
    })
    .unwrap();
    let mut points: Vec<(f64, f64)> = fleet
        .drivers()
        .iter()
        .map(|d| (d.position.x(), d.position.y()))
        .collect();
    // (Not at exactly ±180: Redis encodes longitude 180 one step past its
    // 26-bit range and then misses the point in searches.)
    for i in 0..400 {
        let f = i as f64 / 400.0;
        let lon = if i % 2 == 0 {
            179.9999 - 0.04 * f
        } else {
            -179.9999 + 0.04 * f
        };
        points.push((lon, -16.5 + 0.02 * (f - 0.5)));
        points.push(((f - 0.5) * 350.0, 85.0 + 0.05 * f));
    }
    let mut redis_pos: HashMap<u64, (f64, f64)> = HashMap::new();
    for (chunk_no, chunk) in points.chunks(5_000).enumerate() {
        let mut cmd = redis::cmd("GEOADD");
        cmd.arg("drivers");
        for (i, &(lon, lat)) in chunk.iter().enumerate() {
            let id = (chunk_no * 5_000 + i) as u64;
            let lon = lon.clamp(-180.0, 180.0);
            let p = LonLat::new(lon, lat).expect("valid");
            let _ = index
                .upsert_at(DriverId::new(id).unwrap(), p, Attrs::default(), t0)
                .unwrap();
            cmd.arg(lon).arg(lat).arg(id);
            redis_pos.insert(id, (lon, lat));
        }
        let _: i64 = cmd.query(&mut con).expect("GEOADD");
    }

    let mut pickups = QueryStream::new(fleet.config(), 8).unwrap();
    let mut compared = 0;
    let mut hashes = (0, 0);
    for k in 0..300 {
        let c = match k % 10 {
            8 => LonLat::new(179.995 - (k % 3) as f64 * 0.005, -16.5).unwrap(),
            9 => LonLat::new(((k * 37) % 360) as f64 - 180.0, 84.9).unwrap(),
            _ => LonLat::try_from(pickups.next_pickup().point).unwrap(),
        };
        let unit = [Unit::Meters, Unit::Kilometers, Unit::Feet, Unit::Miles][k % 4];
        let size_m = [300.0, 2_000.0, 5_000.0, 40_000.0][(k / 4) % 4];
        let s = size_m / unit.metres();
        let mut q = if k % 3 == 0 {
            Search::boxed(c, 2.0 * s, s, unit)
        } else {
            Search::radius(c, s, unit)
        };
        q = match k % 5 {
            0 => q.count(10),
            1 => q.count(25).desc(),
            2 => q.asc(),
            3 => q.desc(),
            _ => q,
        }
        .with_hash();
        let ours = index.search_at(&q, t0).unwrap();
        let theirs = redis_search(&mut con, &q, c);

        // Members near the edge of the area may differ by Redis's 0.6 m
        // quantisation; every other member must be in both.
        let edge_m = 1.0;
        let near_edge = |id: u64| {
            let p = LonLat::new(redis_pos[&id].0, redis_pos[&id].1).unwrap();
            match q.shape() {
                Shape::Radius(r) => (c.distance_m(p) - r * unit.metres()).abs() < edge_m,
                Shape::Box(w, h) => {
                    let lat_d =
                        EARTH_RADIUS_M * (p.lat().to_radians() - c.lat().to_radians()).abs();
                    let on_parallel = LonLat::new(c.lon(), p.lat()).unwrap();
                    (lat_d - h * unit.metres() / 2.0).abs() < edge_m
                        || (p.distance_m(on_parallel) - w * unit.metres() / 2.0).abs() < edge_m
                }
            }
        };
        if q.count_limit().is_none() {
            let a: std::collections::HashSet<u64> = ours
                .iter()
                .map(|h| h.id.get())
                .filter(|&i| !near_edge(i))
                .collect();
            let b: std::collections::HashSet<u64> = theirs
                .iter()
                .map(|t| t.0)
                .filter(|&i| !near_edge(i))
                .collect();
            assert_eq!(a, b, "member sets differ for {q:?} at {c:?}");
        } else {
            assert_eq!(
                ours.len(),
                theirs.len(),
                "COUNT results differ in size for {q:?}"
            );
        }
        let dist: HashMap<u64, f64> = theirs.iter().map(|t| (t.0, t.1)).collect();
        for h in &ours {
            if let Some(&d) = dist.get(&h.id.get()) {
                // Redis prints 4 decimals of the unit.
                let tol = 0.5 / unit.metres() + 0.000_05;
                assert!(
                    (h.distance - d).abs() <= tol,
                    "{:?}: ours {} vs redis {d} {}",
                    h.id,
                    h.distance,
                    unit_name(unit)
                );
                compared += 1;
            }
        }
        for t in &theirs {
            if let Some(h) = ours.iter().find(|h| h.id.get() == t.0) {
                hashes.0 += 1;
                if h.hash == Some(t.2) {
                    hashes.1 += 1;
                }
            }
        }
        // Redis's order, read through our distances, is sorted to within 1 m.
        if let Some(order) = q.effective_order() {
            let ours_d: HashMap<u64, f64> = ours
                .iter()
                .map(|h| (h.id.get(), h.distance * unit.metres()))
                .collect();
            let seq: Vec<f64> = theirs
                .iter()
                .filter_map(|t| ours_d.get(&t.0).copied())
                .collect();
            for w in seq.windows(2) {
                match order {
                    dispatchkit::geo::Order::Asc => assert!(w[0] <= w[1] + 1.0, "{q:?}"),
                    dispatchkit::geo::Order::Desc => assert!(w[0] + 1.0 >= w[1], "{q:?}"),
                }
            }
        }
    }
    assert!(compared > 10_000, "too few members compared ({compared})");
    // WITHHASH: the stored point stays in the input's 52-bit cell, so every
    // hash is GEOADD's (issue 14, case 15).
    assert_eq!(
        hashes.1, hashes.0,
        "hashes agree for {} of {}",
        hashes.1, hashes.0
    );
}

/// Issue 14, case 14: `BYRADIUS 0` / `BYBOX 0 0` return the members of the
/// centre's 52-bit cell at distance 0 (the member, its duplicates and
/// same-cell neighbours), `BYRADIUS inf` / `BYBOX inf inf` every member —
/// compared with a real server, FROMMEMBER and FROMLONLAT.
#[test]
fn case_14_zero_and_infinite_shapes_agree_with_redis() {
    let Some((_server, mut con)) = connect() else {
        return;
    };
    let (t0, index) = (Instant::now(), GeoIndex::new());
    let base = (13.361389, 38.115556);
    // Duplicates, same-cell neighbours (1e-7 degree ≈ 1 cm), cells next
    // door (1e-5 degree ≈ 1 m) and far members.
    let mut points = vec![base, base, (base.0 + 1e-7, base.1), (base.0, base.1 + 1e-7)];
    points.extend([
        (base.0 + 1e-5, base.1),
        (base.0, base.1 - 1e-5),
        (15.0, 37.0),
        (-122.3, 47.6),
    ]);
    let mut cmd = redis::cmd("GEOADD");
    cmd.arg("drivers");
    for (i, &(lon, lat)) in points.iter().enumerate() {
        let p = LonLat::new(lon, lat).unwrap();
        let _ = index
            .upsert_at(DriverId::new(i as u64).unwrap(), p, Attrs::default(), t0)
            .unwrap();
        cmd.arg(lon).arg(lat).arg(i);
    }
    let _: i64 = cmd.query(&mut con).expect("GEOADD");
    let geopos: Vec<Option<(f64, f64)>> = redis::cmd("GEOPOS")
        .arg("drivers")
        .arg(0)
        .query(&mut con)
        .expect("GEOPOS");
    let (plon, plat) = geopos[0].expect("member 0 exists");
    let shapes: [(&str, Vec<f64>, Shape); 4] = [
        ("BYRADIUS", vec![0.0], Shape::Radius(0.0)),
        ("BYBOX", vec![0.0, 0.0], Shape::Box(0.0, 0.0)),
        (
            "BYRADIUS",
            vec![f64::INFINITY],
            Shape::Radius(f64::INFINITY),
        ),
        (
            "BYBOX",
            vec![f64::INFINITY, f64::INFINITY],
            Shape::Box(f64::INFINITY, f64::INFINITY),
        ),
    ];
    for member in [0u64, 2, 3, 4, 6] {
        // FROMLONLAT does not depend on the member: once.
        let froms: &[bool] = if member == 0 { &[true, false] } else { &[true] };
        for (from_member, (by, args, shape)) in froms
            .iter()
            .flat_map(|&m| shapes.iter().map(move |s| (m, s)))
        {
            let mut cmd = redis::cmd("GEOSEARCH");
            cmd.arg("drivers");
            let center = if from_member {
                cmd.arg("FROMMEMBER").arg(member);
                dispatchkit::geo::Center::Member(DriverId::new(member).unwrap())
            } else {
                // GEOPOS of member 0 passed back, as a client would.
                cmd.arg("FROMLONLAT").arg(plon).arg(plat);
                dispatchkit::geo::Center::Point(LonLat::new(plon, plat).unwrap())
            };
            cmd.arg(by);
            for a in args {
                cmd.arg(if a.is_infinite() {
                    "inf".to_string()
                } else {
                    a.to_string()
                });
            }
            cmd.arg("m").arg("ASC").arg("WITHDIST").arg("WITHHASH");
            let rows: Vec<(String, String, u64)> = cmd.query(&mut con).expect("GEOSEARCH");
            let q = Search::new(center, *shape, Unit::Meters).asc().with_hash();
            let ours = index.search_at(&q, t0).unwrap();
            let mut theirs: Vec<(u64, String, u64)> = rows
                .into_iter()
                .map(|(m, d, h)| (m.parse().unwrap(), d, h))
                .collect();
            let mut ours: Vec<(u64, String, u64)> = ours
                .iter()
                .map(|h| (h.id.get(), format!("{:.4}", h.distance), h.hash.unwrap()))
                .collect();
            if shape_is_infinite(shape) {
                // Every member; distances agree to Redis's 0.6 m.
                theirs.sort();
                ours.sort();
                let ids =
                    |v: &[(u64, String, u64)]| v.iter().map(|t| (t.0, t.2)).collect::<Vec<_>>();
                assert_eq!(ids(&ours), ids(&theirs), "{by} {args:?} from {member}");
                assert_eq!(ours.len(), points.len());
            } else {
                theirs.sort();
                ours.sort();
                assert_eq!(
                    ours, theirs,
                    "{by} {args:?} from member {member} ({from_member})"
                );
            }
            if !shape_is_infinite(shape) && member == 0 {
                // The member itself, its duplicate and two same-cell
                // neighbours, at distance 0.
                assert_eq!(ours.len(), 4, "{ours:?}");
                assert!(ours.iter().all(|t| t.1 == "0.0000"), "{ours:?}");
            }
        }
    }
}

fn shape_is_infinite(s: &Shape) -> bool {
    match *s {
        Shape::Radius(r) => r.is_infinite(),
        Shape::Box(w, h) => w.is_infinite() && h.is_infinite(),
    }
}
