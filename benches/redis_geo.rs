//! The driver index on Redis beside what a user would otherwise write on
//! the same server, in the same run (1M drivers of the metro workload,
//! half of them available):
//!
//! - `redis_geo_update`: `RedisGeoIndex::upsert_batch_at` (batches of
//!   4,096 moves from the metro update stream: stale check, TTL, attributes,
//!   tile moves) beside the seed's raw write, a pipeline of 4,096 `GEOADD`
//!   into one key; and the same index on a local 3-master Redis Cluster.
//! - `redis_geo_search_5km_count10`: the 10 nearest drivers within 5 km of
//!   a pickup. `half_filtered`: only available drivers — the index filters
//!   inside its per-tile script; the raw approach is `GEOSEARCH … COUNT n`
//!   then `HMGET` of the candidates' statuses from a hash, asking again
//!   with 4× the count until 10 pass (what a client must do to get 10).
//!   `unfiltered`: the index's search beside one `GEOSEARCH … COUNT 10`.
//!
//! Client and servers share the machine's two cores over loopback; every
//! figure is one client issuing requests back to back. Without
//! `redis-server` the bench prints a note and measures nothing.

#[path = "common/notes.rs"]
mod notes;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use dispatchkit::geo::{
    Attrs, DriverId, DriverIndex, DriverUpdate, Filter, LonLat, RedisGeoConfig, RedisGeoIndex,
    Search, Status, Unit,
};
use dispatchkit::workload::{Fleet, MetroConfig, QueryStream, UpdateConfig};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

const DRIVERS: usize = 1_000_000;
const BATCH: usize = 4096;
/// Long enough that neither side wraps around within a run: a repeated
/// batch would be a no-op for raw `GEOADD` (same score, nothing to move)
/// while the index still writes its newer timestamps.
const UPDATES: usize = 1024 * BATCH;
const QUERIES: usize = 4_000;

/// Half the drivers available, half busy.
fn attrs_of(id: u64) -> Attrs {
    Attrs {
        status: if id.is_multiple_of(2) {
            Status::AVAILABLE
        } else {
            Status::BUSY
        },
        ..Attrs::default()
    }
}

struct World {
    fleet: Fleet,
    updates: Vec<(DriverId, LonLat)>,
    queries: Vec<LonLat>,
}

fn world() -> World {
    let fleet = Fleet::generate(&MetroConfig {
        drivers: DRIVERS,
        ..MetroConfig::default()
    })
    .expect("valid config");
    let mut stream = fleet
        .update_stream(&UpdateConfig::default())
        .expect("valid config");
    let updates = (0..UPDATES)
        .map(|_| {
            let u = stream.next_update();
            (
                DriverId::new(u.driver).unwrap(),
                LonLat::try_from(u.position).unwrap(),
            )
        })
        .collect();
    let queries = QueryStream::new(fleet.config(), 99)
        .expect("valid config")
        .pickups(QUERIES)
        .into_iter()
        .map(|p| LonLat::try_from(p.point).unwrap())
        .collect();
    World {
        fleet,
        updates,
        queries,
    }
}

fn redis_index(url: String, cluster: bool, t0: Instant) -> RedisGeoIndex {
    let mut cfg = RedisGeoConfig::new(url);
    cfg.cluster = cluster;
    cfg.clock = Some((t0, SystemTime::now()));
    // Long enough that nothing expires during the run.
    cfg.default_ttl = Duration::from_secs(3600);
    cfg.io_timeout = Duration::from_secs(30);
    RedisGeoIndex::new(cfg).expect("valid config")
}

/// Loads the fleet; returns the load rate (drivers per second).
fn load(index: &RedisGeoIndex, w: &World, t0: Instant) -> f64 {
    let start = Instant::now();
    for chunk in w.fleet.drivers().chunks(BATCH) {
        let batch: Vec<DriverUpdate> = chunk
            .iter()
            .map(|d| {
                DriverUpdate::new(
                    DriverId::new(d.id).unwrap(),
                    LonLat::try_from(d.position).unwrap(),
                    t0,
                )
                .with_attrs(attrs_of(d.id))
            })
            .collect();
        let r = index.upsert_batch_at(&batch, t0).expect("redis answers");
        assert_eq!(r.inserted, chunk.len());
    }
    DRIVERS as f64 / start.elapsed().as_secs_f64()
}

/// The raw peer's data: one GEO set `drivers` and a status hash.
fn raw_load(con: &mut redis::Connection, w: &World) {
    for chunk in w.fleet.drivers().chunks(1000) {
        let mut geo = redis::cmd("GEOADD");
        geo.arg("drivers");
        let mut status = redis::cmd("HSET");
        status.arg("driver_status");
        for d in chunk {
            geo.arg(d.position.x()).arg(d.position.y()).arg(d.id);
            status.arg(d.id).arg(attrs_of(d.id).status.get());
        }
        let _: () = redis::pipe()
            .add_command(geo)
            .ignore()
            .add_command(status)
            .ignore()
            .query(con)
            .expect("load");
    }
}

fn raw_geoadd(con: &mut redis::Connection, updates: &[(DriverId, LonLat)]) {
    let mut pipe = redis::pipe();
    for (id, p) in updates {
        pipe.cmd("GEOADD")
            .arg("drivers")
            .arg(p.lon())
            .arg(p.lat())
            .arg(id.get())
            .ignore();
    }
    pipe.query::<()>(con).expect("GEOADD pipeline");
}

/// `GEOSEARCH … COUNT n`, then the candidates' statuses, until 10
/// available ones (or the area is exhausted).
fn raw_search(con: &mut redis::Connection, q: LonLat, filtered: bool) -> usize {
    let mut n = if filtered { 20 } else { 10 };
    loop {
        let ids: Vec<u64> = redis::cmd("GEOSEARCH")
            .arg("drivers")
            .arg("FROMLONLAT")
            .arg(q.lon())
            .arg(q.lat())
            .arg("BYRADIUS")
            .arg(5)
            .arg("km")
            .arg("ASC")
            .arg("COUNT")
            .arg(n)
            .query(con)
            .expect("GEOSEARCH");
        if !filtered || ids.is_empty() {
            return ids.len();
        }
        let statuses: Vec<Option<u8>> = redis::cmd("HMGET")
            .arg("driver_status")
            .arg(&ids)
            .query(con)
            .expect("HMGET");
        let ok = statuses
            .iter()
            .filter(|s| **s == Some(Status::AVAILABLE.get()))
            .count();
        if ok >= 10 || ids.len() < n {
            return ok.min(10);
        }
        n *= 4;
    }
}

/// Applies batch number `i` of the update stream at tick `i + 1` ms.
fn apply(index: &RedisGeoIndex, w: &World, t0: Instant, i: usize) {
    let at = t0 + Duration::from_millis(i as u64 + 1);
    let start = (i % (UPDATES / BATCH)) * BATCH;
    let batch: Vec<DriverUpdate> = w.updates[start..start + BATCH]
        .iter()
        .map(|&(id, p)| DriverUpdate::new(id, p, at))
        .collect();
    let r = index.upsert_batch_at(&batch, at).expect("redis answers");
    let _ = black_box(r);
}

fn main() {
    let Some(server) = RedisServer::start() else {
        eprintln!("note: no redis-server on PATH; the Redis geo benches are skipped");
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let w = world();
    let t0 = Instant::now();
    let single = redis_index(server.url(), false, t0);
    let mut con = server.connection().expect("connect");
    if !quick {
        let rate = load(&single, &w, t0);
        raw_load(&mut con, &w);
        notes::line(
            "redis_geo",
            &format!("RedisGeoIndex load of 1M drivers, one node: {rate:.0} drivers/s"),
        );
    }
    let cluster = RedisCluster::start();
    let clustered = cluster.as_ref().map(|cl| {
        let index = redis_index(cl.url(), true, t0);
        if !quick {
            let rate = load(&index, &w, t0);
            notes::line(
                "redis_geo",
                &format!("RedisGeoIndex load of 1M drivers, 3-master cluster: {rate:.0} drivers/s"),
            );
        }
        index
    });

    let mut g = c.benchmark_group("redis_geo_update");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let mut tick = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit_redis", "1node"), |b| {
        b.iter(|| {
            apply(&single, &w, t0, tick);
            tick += 1;
        })
    });
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("raw_geoadd", "1node"), |b| {
        b.iter(|| {
            let start = (i % (UPDATES / BATCH)) * BATCH;
            raw_geoadd(&mut con, &w.updates[start..start + BATCH]);
            i += 1;
        })
    });
    if let Some(index) = &clustered {
        let mut tick = 0usize;
        g.bench_function(BenchmarkId::new("dispatchkit_redis", "cluster3"), |b| {
            b.iter(|| {
                apply(index, &w, t0, tick);
                tick += 1;
            })
        });
    }
    g.finish();

    // After every update tick (1 ms each), well within the 1 h TTL.
    let now = t0 + Duration::from_secs(600);
    let mut g = c.benchmark_group("redis_geo_search_5km_count10");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    for (param, filtered) in [("half_filtered", true), ("unfiltered", false)] {
        let filter = if filtered {
            Filter::available()
        } else {
            Filter::new()
        };
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("dispatchkit_redis", param), |b| {
            b.iter(|| {
                let q = Search::radius(w.queries[k % QUERIES], 5.0, Unit::Kilometers)
                    .count(10)
                    .filter(filter);
                k += 1;
                black_box(single.search_at(&q, now).expect("redis answers"))
            })
        });
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("raw_geosearch", param), |b| {
            b.iter(|| {
                k += 1;
                black_box(raw_search(&mut con, w.queries[k % QUERIES], filtered))
            })
        });
        if let Some(index) = &clustered {
            let mut k = 0usize;
            g.bench_function(BenchmarkId::new("dispatchkit_redis_cluster3", param), |b| {
                b.iter(|| {
                    let q = Search::radius(w.queries[k % QUERIES], 5.0, Unit::Kilometers)
                        .count(10)
                        .filter(filter);
                    k += 1;
                    black_box(index.search_at(&q, now).expect("redis answers"))
                })
            });
        }
    }
    g.finish();
    c.final_summary();
}
