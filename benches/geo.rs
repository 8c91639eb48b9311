//! geo_index beside its peers on the 1M-driver metro workload.
//!
//! - `geo_update`: location updates. dispatchkit applies batches of 4096
//!   through `upsert_batch_at` (1 thread, and 2 threads each owning half of
//!   the drivers, as a stream partitioned by driver id would); rstar removes
//!   and re-inserts the point in an `RTree` of 3-D unit vectors; Redis gets
//!   pipelines of 1000 `GEOADD`s on a local `redis-server`.
//! - `geo_search_5km_count10`: `GEOSEARCH … BYRADIUS 5 km ASC COUNT 10`,
//!   available drivers only. rstar walks `nearest_neighbor_iter` over unit
//!   vectors (chord length orders like great-circle distance) filtering on
//!   status; Redis searches a key that holds only available drivers, as
//!   the seed keeps one key per state.
//! - `geo_search_5km_all`: the same without `COUNT`.
//! - `geo_search_5km_count10`, `dispatchkit/10m_1t` and `10m_2t`: the
//!   k-nearest search over the seed's 10M drivers (the same metro, ten
//!   times denser), so the growth from 1M is measured here; the peers run
//!   at 1M only.
//! - `geo_update`, `dispatchkit/10m_1t`: location updates at 10M drivers
//!   (the big fleet's own stream, 2 updates a driver like the 1M one's,
//!   batches of 4096; run after its searches).
//!
//! The binary also prints the index's memory per driver at 1M and 10M drivers
//! (a counting global allocator, `cap::Cap`).

mod common;

#[path = "common/notes.rs"]
mod notes;

use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cap::Cap;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, Filter, GeoIndex, LonLat, Rating, Search, Status, Unit,
    VehicleType,
};
use dispatchkit::workload::{Fleet, MetroConfig, QueryStream, UpdateConfig};
use rstar::RTree;
use rstar::primitives::GeomWithData;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const DRIVERS: usize = 1_000_000;
/// The seed's fleet: the same metro, ten times denser.
const DRIVERS_10M: usize = 10_000_000;
const BATCH: usize = 4096;
/// Updates generated per driver of a world: the stream is replayed in a
/// loop, and with drivers chosen at random 2 updates a driver reach about
/// 86 % of the fleet. (A fixed 2M-update stream reached 18 % of the 10M
/// fleet: once the bench clock passed the 30 s TTL the other 8M drivers
/// expired and the batches' sweeps purged them, about 5.5M between the
/// 30th and the 35th simulated second, so the 10M figure measured purging
/// as much as updates, and how much of it depended on how long criterion
/// ran.)
const UPDATES_PER_DRIVER: usize = 2;
const QUERIES: usize = 20_000;
const RADIUS_M: f64 = 5_000.0;

/// 70% of drivers available, the rest busy; ratings 4.00..=5.00.
fn attrs_of(id: u64) -> Attrs {
    let status = if id % 10 < 7 {
        Status::AVAILABLE
    } else {
        Status::BUSY
    };
    Attrs {
        status,
        vehicle: VehicleType::new((id % 3) as u8).expect("0..3"),
        rating: Rating::from_hundredths(400 + (id % 101) as u16).expect("<= 500"),
        load: 0,
    }
}

fn lonlat(p: geo::Point<f64>) -> LonLat {
    LonLat::try_from(p).expect("the workload emits valid points")
}

struct World {
    fleet: Fleet,
    index: GeoIndex,
    t0: Instant,
    /// All updates in stream order.
    all_updates: Vec<(DriverId, LonLat)>,
    queries: Vec<LonLat>,
}

fn world(drivers: usize) -> World {
    let fleet = Fleet::generate(&MetroConfig {
        drivers,
        ..MetroConfig::default()
    })
    .expect("valid config");
    let t0 = Instant::now();
    let before = ALLOC.allocated();
    let index = GeoIndex::new();
    for chunk in fleet.drivers().chunks(BATCH) {
        let batch: Vec<DriverUpdate> = chunk
            .iter()
            .map(|d| {
                DriverUpdate::new(DriverId::new(d.id).unwrap(), lonlat(d.position), t0)
                    .with_attrs(attrs_of(d.id))
            })
            .collect();
        let r = index.upsert_batch_at(&batch, t0);
        assert_eq!(r.inserted, chunk.len());
    }
    let bytes = ALLOC.allocated() - before;
    notes::line(
        "geo",
        &format!(
            "geo_index memory: {} bytes for {} drivers = {:.1} bytes/driver",
            bytes,
            drivers,
            bytes as f64 / drivers as f64
        ),
    );
    let mut stream = fleet
        .update_stream(&UpdateConfig::default())
        .expect("valid config");
    let all_updates: Vec<(DriverId, LonLat)> = (0..drivers * UPDATES_PER_DRIVER)
        .map(|_| {
            let u = stream.next_update();
            (DriverId::new(u.driver).unwrap(), lonlat(u.position))
        })
        .collect();
    let queries = QueryStream::new(fleet.config(), 99)
        .expect("valid config")
        .pickups(QUERIES)
        .into_iter()
        .map(|p| lonlat(p.point))
        .collect();
    World {
        fleet,
        index,
        t0,
        all_updates,
        queries,
    }
}

/// Applies `batches` batches from `stream` starting at batch `*next`; each
/// batch is stamped with the next tick of the shared bench clock (ms after
/// `t0`), one clock read per batch, so no update is stale or expired.
fn apply_batches(
    index: &GeoIndex,
    t0: Instant,
    stream: &[(DriverId, LonLat)],
    next: &mut usize,
    clock: &AtomicU64,
    batches: u64,
    buf: &mut Vec<DriverUpdate>,
) {
    let per_pass = stream.len() / BATCH;
    for _ in 0..batches {
        let at = t0 + Duration::from_millis(clock.fetch_add(1, Relaxed) + 1);
        let start = (*next % per_pass) * BATCH;
        buf.clear();
        buf.extend(
            stream[start..start + BATCH]
                .iter()
                .map(|&(id, pos)| DriverUpdate::new(id, pos, at)),
        );
        let r = index.upsert_batch_at(buf, at);
        debug_assert_eq!(r.moved, BATCH);
        let _ = black_box(r);
        *next += 1;
    }
}

// ---------------------------------------------------------------- rstar peer

type Entry = GeomWithData<[f64; 3], (u64, bool)>;

fn unit_vector(p: LonLat) -> [f64; 3] {
    let (lon, lat) = (p.lon().to_radians(), p.lat().to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// Chord length on the unit sphere for a great-circle distance in metres.
fn chord(m: f64) -> f64 {
    2.0 * (m / dispatchkit::geo::EARTH_RADIUS_M / 2.0).sin()
}

struct RstarPeer {
    tree: RTree<Entry>,
    positions: Vec<LonLat>,
}

impl RstarPeer {
    fn new(fleet: &Fleet) -> Self {
        let positions: Vec<LonLat> = fleet.drivers().iter().map(|d| lonlat(d.position)).collect();
        let entries = positions
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                Entry::new(
                    unit_vector(p),
                    (i as u64, attrs_of(i as u64).status == Status::AVAILABLE),
                )
            })
            .collect();
        RstarPeer {
            tree: RTree::bulk_load(entries),
            positions,
        }
    }

    fn update(&mut self, id: DriverId, pos: LonLat) {
        let i = id.get() as usize;
        let data = (id.get(), attrs_of(id.get()).status == Status::AVAILABLE);
        let old = Entry::new(unit_vector(self.positions[i]), data);
        self.tree.remove(&old).expect("rstar peer lost a driver");
        self.tree.insert(Entry::new(unit_vector(pos), data));
        self.positions[i] = pos;
    }

    /// The 10 nearest available drivers within 5 km, nearest first.
    fn nearest10(&self, q: LonLat) -> Vec<(u64, f64)> {
        let max = chord(RADIUS_M).powi(2);
        self.tree
            .nearest_neighbor_iter_with_distance_2(unit_vector(q))
            .take_while(|(_, d2)| *d2 <= max)
            .filter(|(e, _)| e.data.1)
            .take(10)
            .map(|(e, _)| {
                let id = e.data.0;
                (
                    id,
                    dispatchkit::geo::haversine_m(q, self.positions[id as usize]),
                )
            })
            .collect()
    }

    /// Every available driver within 5 km, nearest first.
    fn all(&self, q: LonLat) -> Vec<(u64, f64)> {
        let mut v: Vec<(u64, f64)> = self
            .tree
            .locate_within_distance(unit_vector(q), chord(RADIUS_M).powi(2))
            .filter(|e| e.data.1)
            .map(|e| {
                (
                    e.data.0,
                    dispatchkit::geo::haversine_m(q, self.positions[e.data.0 as usize]),
                )
            })
            .filter(|(_, d)| *d <= RADIUS_M)
            .collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }
}

// ---------------------------------------------------------------- Redis peer

struct RedisPeer {
    _server: dispatchkit_test_support::redis_server::RedisServer,
    con: redis::Connection,
}

impl RedisPeer {
    /// Loads every driver into `drivers` and the available ones into
    /// `drivers:available`.
    fn new(w: &World) -> Option<Self> {
        let server = dispatchkit_test_support::redis_server::RedisServer::start()?;
        let mut con = server.connection().ok()?;
        for chunk in w.fleet.drivers().chunks(10_000) {
            let mut all = redis::cmd("GEOADD");
            all.arg("drivers");
            let mut avail = redis::cmd("GEOADD");
            avail.arg("drivers:available");
            for d in chunk {
                let p = lonlat(d.position);
                all.arg(p.lon()).arg(p.lat()).arg(d.id);
                if attrs_of(d.id).status == Status::AVAILABLE {
                    avail.arg(p.lon()).arg(p.lat()).arg(d.id);
                }
            }
            all.query::<i64>(&mut con).ok()?;
            avail.query::<i64>(&mut con).ok()?;
        }
        Some(RedisPeer {
            _server: server,
            con,
        })
    }

    fn geoadd_pipeline(&mut self, updates: &[(DriverId, LonLat)]) {
        let mut pipe = redis::pipe();
        for (id, p) in updates {
            pipe.cmd("GEOADD")
                .arg("drivers")
                .arg(p.lon())
                .arg(p.lat())
                .arg(id.get())
                .ignore();
        }
        pipe.query::<()>(&mut self.con).expect("GEOADD pipeline");
    }

    fn search(&mut self, q: LonLat, count: Option<usize>) -> Vec<String> {
        let mut c = redis::cmd("GEOSEARCH");
        c.arg("drivers:available")
            .arg("FROMLONLAT")
            .arg(q.lon())
            .arg(q.lat());
        c.arg("BYRADIUS").arg(5).arg("km").arg("ASC");
        if let Some(n) = count {
            c.arg("COUNT").arg(n);
        }
        c.query(&mut self.con).expect("GEOSEARCH")
    }
}

// ---------------------------------------------------------------- benches

fn benches(c: &mut Criterion) {
    let w = world(DRIVERS);
    let mut rstar = RstarPeer::new(&w.fleet);
    let mut redis = RedisPeer::new(&w);
    if redis.is_none() {
        eprintln!("note: no redis-server on PATH; the redis/* peers are skipped");
    }

    // Both peers must agree with dispatchkit before they are timed.
    let filter = Filter::available();
    for &q in w.queries.iter().take(200) {
        let hits = w
            .index
            .search_at(
                &Search::radius(q, RADIUS_M, Unit::Meters)
                    .count(10)
                    .filter(filter),
                w.t0,
            )
            .expect("valid query");
        let ours: Vec<u64> = hits.iter().map(|h| h.id.get()).collect();
        let theirs: Vec<u64> = rstar.nearest10(q).iter().map(|p| p.0).collect();
        assert_eq!(ours, theirs, "rstar peer disagrees at {q:?}");
    }

    let mut g = c.benchmark_group("geo_update");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(6));
    let clock = AtomicU64::new(0);
    let mut next = 0usize;
    let mut buf = Vec::with_capacity(BATCH);
    g.bench_function(BenchmarkId::new("dispatchkit", "1t"), |b| {
        b.iter(|| {
            apply_batches(
                &w.index,
                w.t0,
                &w.all_updates,
                &mut next,
                &clock,
                1,
                &mut buf,
            )
        })
    });
    // Per-thread streams (thread t moves the drivers with id % 2 == t),
    // split here: only this bench and only the 1M fleet needs them.
    let halves: [Vec<(DriverId, LonLat)>; 2] = [0, 1].map(|t| {
        w.all_updates
            .iter()
            .copied()
            .filter(|(id, _)| id.get() % 2 == t)
            .collect()
    });
    let mut nexts = [0usize; 2];
    g.bench_function(BenchmarkId::new("dispatchkit", "2t"), |b| {
        b.iter_custom(|iters| {
            // Each thread owns half of the drivers (a stream partitioned by
            // driver id) and continues its own stream where it stopped.
            let starts = nexts;
            let d = common::two_threads(iters, |t, n| {
                let mut buf = Vec::with_capacity(BATCH);
                let mut next = starts[t];
                apply_batches(&w.index, w.t0, &halves[t], &mut next, &clock, n, &mut buf);
            });
            nexts[0] += iters as usize / 2 + iters as usize % 2;
            nexts[1] += iters as usize / 2;
            d
        })
    });
    let mut ri = 0usize;
    g.bench_function(BenchmarkId::new("rstar", "1t"), |b| {
        b.iter(|| {
            let start = (ri % (w.all_updates.len() / BATCH)) * BATCH;
            for &(id, p) in &w.all_updates[start..start + BATCH] {
                rstar.update(id, p);
            }
            ri += 1;
        })
    });
    if let Some(r) = redis.as_mut() {
        g.sample_size(10);
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("redis", "pipelined"), |b| {
            b.iter(|| {
                // 4096 updates as pipelines of 1000 (and one of 96).
                let start = (i % (w.all_updates.len() / BATCH)) * BATCH;
                for chunk in w.all_updates[start..start + BATCH].chunks(1000) {
                    r.geoadd_pipeline(chunk);
                }
                i += 1;
            })
        });
    }
    g.finish();

    // Searches run on the index as the update benches left it; rstar's tree
    // was moved by the same stream up to where its bench stopped, so both
    // hold the same kind of data (the same fleet, moved by ≤ 60 m steps).
    let now = w.t0 + Duration::from_millis(clock.load(Relaxed));
    for (group, count) in [
        ("geo_search_5km_count10", Some(10)),
        ("geo_search_5km_all", None),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(5));
        let query = |p: LonLat| {
            let q = Search::radius(p, 5.0, Unit::Kilometers).filter(filter);
            match count {
                Some(n) => q.count(n),
                None => q.asc(),
            }
        };
        bench_dispatchkit_search(&mut g, "", &w, now, &query);
        let mut qi = 0usize;
        g.bench_function(BenchmarkId::new("rstar", "1t"), |b| {
            b.iter(|| {
                let q = w.queries[qi % QUERIES];
                qi += 1;
                black_box(
                    if count.is_some() {
                        rstar.nearest10(q)
                    } else {
                        rstar.all(q)
                    }
                    .len(),
                )
            })
        });
        if let Some(r) = redis.as_mut() {
            g.sample_size(10);
            let mut qi = 0usize;
            g.bench_function(BenchmarkId::new("redis", "1client"), |b| {
                b.iter(|| {
                    qi += 1;
                    black_box(r.search(w.queries[qi % QUERIES], count).len())
                })
            });
        }
        g.finish();
    }
    drop((rstar, redis, w));

    // The k-nearest search as the fleet grows to the seed's 10M drivers
    // (the same metro, ten times denser; no update stream has moved them).
    let big = world(DRIVERS_10M);
    let mut g = c.benchmark_group("geo_search_5km_count10");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    let query = |p: LonLat| {
        Search::radius(p, 5.0, Unit::Kilometers)
            .filter(filter)
            .count(10)
    };
    bench_dispatchkit_search(&mut g, "10m_", &big, big.t0, &query);
    g.finish();

    // Location updates at 10M drivers (after the searches above, so they
    // ran on the unmoved index): batches of 4096 from the big fleet's own
    // stream.
    let mut g = c.benchmark_group("geo_update");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(6));
    let clock = AtomicU64::new(0);
    let (mut next, mut buf) = (0usize, Vec::with_capacity(BATCH));
    g.bench_function(BenchmarkId::new("dispatchkit", "10m_1t"), |b| {
        b.iter(|| {
            apply_batches(
                &big.index,
                big.t0,
                &big.all_updates,
                &mut next,
                &clock,
                1,
                &mut buf,
            )
        })
    });
    g.finish();
}

/// dispatchkit's search benches (`{prefix}1t`, `{prefix}2t`) over `w`'s
/// queries at `now`.
fn bench_dispatchkit_search(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    prefix: &str,
    w: &World,
    now: Instant,
    query: &(dyn Fn(LonLat) -> Search + Sync),
) {
    let mut qi = 0usize;
    g.bench_function(
        BenchmarkId::new("dispatchkit", format!("{prefix}1t")),
        |b| {
            let mut out = Vec::new();
            b.iter(|| {
                w.index
                    .search_into_at(&query(w.queries[qi % QUERIES]), now, &mut out)
                    .expect("valid");
                qi += 1;
                black_box(out.len())
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("dispatchkit", format!("{prefix}2t")),
        |b| {
            b.iter_custom(|iters| {
                common::two_threads(iters, |t, n| {
                    let mut out = Vec::new();
                    for i in 0..n as usize {
                        let q = query(w.queries[(i * 2 + t) % QUERIES]);
                        w.index.search_into_at(&q, now, &mut out).expect("valid");
                        black_box(out.len());
                    }
                })
            })
        },
    );
}

criterion_group!(geo, benches);
criterion_main!(geo);
