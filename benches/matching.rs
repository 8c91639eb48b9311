//! matching beside its references.
//!
//! - `matching_tsp`: the iterated local search on the 12 shared TSPLIB
//!   instances (`matching/tests/data/tsplib`), one function per instance,
//!   parameter `1s`: each iteration is a full solve (set-up included) with
//!   `SolveOptions::default()` (1 s budget, stall rule) on one core, the
//!   seed cycling through 1–5. The peer is the proven optimum: after the
//!   groups the binary prints a gap table (instance, n, optimum, mean and
//!   worst length found, gaps, slowest solve) over every solve criterion
//!   ran.
//! - `matching_assign_1000x1000`: 1000 waiting riders × 1000 available
//!   drivers of one metro (New York cloud of the reference workload), cost
//!   = pickup ETA, no edge beyond 5 km. `hungarian/1t` is the exact
//!   Jonker–Volgenant assignment, `greedy/1t` the cheapest-edge-first
//!   baseline; the binary prints both totals (the exact total never exceeds
//!   greedy's at equal cardinality).
//! - `matching_ride`: state 1–2 of ride matching (candidate search within
//!   5 km, COUNT 10, available + rating > 4.5 + vehicle type, ETA for
//!   each, ranking, top-3 offers) against a 1M-driver index.
//!   `dispatchkit/1t` is `RideMatcher::start_at` on `GeoIndex`; `rstar/1t`
//!   does the same search with rstar's nearest-neighbour iterator over
//!   3-D unit vectors, the same filters, ETA model and ranking.
//! - `matching_batch_route`: the exact route for 3 orders from a dasher's
//!   position (90 valid stop orders); `brute_force_3orders/1t` is the naive
//!   twin (all 720 permutations, legs computed per permutation).
//!
//! All single-threaded (`1t`); elements are solves, riders, requests and
//! routes respectively.

#[path = "common/notes.rs"]
mod notes;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, GeoIndex, LonLat, Rating, Status, VehicleSet, VehicleType,
};
use dispatchkit::matching::routing::{RouteShape, SolveOptions, TsplibInstance, solve};
use dispatchkit::matching::{
    DriverSpot, EtaModel, HaversineEta, Order, OrderId, RideConfig, RideMatcher, RideRequest,
    RiderId, assign_greedy, assign_optimal, assign_optimal_penalized, batch_route, eta_costs,
};
use dispatchkit::workload::{Fleet, MetroConfig, OrderConfig, OrderStream, QueryStream};
use rstar::RTree;
use rstar::primitives::GeomWithData;

fn lonlat(p: geo::Point<f64>) -> LonLat {
    LonLat::try_from(p).expect("the workload emits valid points")
}

// ------------------------------------------------------------------ TSP

/// Seeds the solves cycle through.
const TSP_SEEDS: u64 = 5;

/// (instance, n, optimum) → every solve's (length, seconds).
type GapRuns = BTreeMap<(usize, String), (usize, f64, Vec<(f64, f64)>)>;
static GAPS: Mutex<GapRuns> = Mutex::new(BTreeMap::new());

fn tsplib_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("matching/tests/data/tsplib")
}

fn tsp(c: &mut Criterion) {
    let dir = tsplib_dir();
    let optima = std::fs::read_to_string(dir.join("OPTIMA.tsv")).expect("OPTIMA.tsv");
    let mut g = c.benchmark_group("matching_tsp");
    // Each iteration takes the whole budget: 10 one-second samples per
    // instance, about 2.5 minutes for the group.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    for (order, line) in optima
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, optimum): (String, f64) = (f[0].to_string(), f[3].parse().expect("optimum"));
        let text = std::fs::read_to_string(dir.join(format!("{name}.tsp"))).expect("instance");
        let inst = TsplibInstance::parse(&text).expect("valid TSPLIB");
        let d = inst.distances().expect("finite coordinates");
        let n = inst.dimension();
        // The default options (1 s budget, stall rule), the seed cycling
        // through 1..=TSP_SEEDS over the runs.
        let mut run = 0u64;
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new(name.as_str(), "1s"), |b| {
            b.iter(|| {
                run += 1;
                let opts = SolveOptions {
                    seed: 1 + run % TSP_SEEDS,
                    ..SolveOptions::default()
                };
                let t = Instant::now();
                let s = solve(&d, RouteShape::Closed, &opts).expect("valid instance");
                let secs = t.elapsed().as_secs_f64();
                GAPS.lock()
                    .expect("not poisoned")
                    .entry((order, name.clone()))
                    .or_insert((n, optimum, Vec::new()))
                    .2
                    .push((s.route.length, secs));
                black_box(s)
            })
        });
    }
    g.finish();
}

fn print_gap_table() {
    let gaps = GAPS.lock().expect("not poisoned");
    if gaps.is_empty() {
        return;
    }
    notes::line(
        "matching",
        &format!(
            "\nTSP gap table (SolveOptions::default(): {} s budget, stall {} x n kicks; seeds 1-{TSP_SEEDS} cycled; 1 core; time = slowest solve)",
            SolveOptions::default()
                .time_budget
                .map_or(0.0, |b| b.as_secs_f64()),
            SolveOptions::default().stall_per_stop
        ),
    );
    notes::line(
        "matching",
        &format!(
            "{:<10} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>6}",
            "instance", "n", "optimum", "found", "worst", "gap %", "worst %", "time s", "runs"
        ),
    );
    let (mut sum, mut worst_all) = (0.0, 0.0f64);
    for ((_, name), (n, opt, runs)) in gaps.iter() {
        let mean = runs.iter().map(|r| r.0).sum::<f64>() / runs.len() as f64;
        let worst = runs.iter().map(|r| r.0).fold(0.0, f64::max);
        let time = runs.iter().map(|r| r.1).fold(0.0, f64::max);
        let gap = (mean / opt - 1.0) * 100.0;
        let wgap = (worst / opt - 1.0) * 100.0;
        sum += gap;
        worst_all = worst_all.max(wgap);
        notes::line(
            "matching",
            &format!(
                "{name:<10} {n:>5} {opt:>9} {mean:>9.1} {worst:>9} {gap:>8.3} {wgap:>8.3} {time:>7.3} {:>6}",
                runs.len()
            ),
        );
    }
    notes::line(
        "matching",
        &format!(
            "mean gap {:.3} % over {} instances; worst single run {:.3} %",
            sum / gaps.len() as f64,
            gaps.len(),
            worst_all
        ),
    );
}

// ----------------------------------------------------------- assignment

fn assign(c: &mut Criterion) {
    const N: usize = 1000;
    let metros = MetroConfig {
        drivers: 200_000,
        ..MetroConfig::default()
    };
    let fleet = Fleet::generate(&metros).expect("valid config");
    let car = VehicleType::new(0).expect("0 is valid");
    let drivers: Vec<DriverSpot> = fleet
        .drivers()
        .iter()
        .filter(|d| d.metro == 0)
        .take(N)
        .map(|d| DriverSpot {
            id: DriverId::new(d.id).unwrap(),
            pos: lonlat(d.position),
            vehicle: car,
        })
        .collect();
    let riders: Vec<RideRequest> = QueryStream::new(&metros, 7)
        .expect("valid config")
        .filter(|p| p.metro == 0)
        .take(N)
        .enumerate()
        .map(|(i, p)| RideRequest {
            rider: RiderId(i as u64),
            pickup: lonlat(p.point),
            vehicles: VehicleSet::of(&[car]),
        })
        .collect();
    let costs = eta_costs(&HaversineEta::default(), &riders, &drivers, 5.0).expect("valid radius");
    let (o, gr) = (assign_optimal(&costs), assign_greedy(&costs));
    notes::line(
        "matching",
        &format!(
            "assignment {N}x{N} (pickup ETA, 5 km radius, {} edges): exact {} riders, total ETA {:.0} s (mean {:.1} s); greedy {} riders, total {:.0} s (mean {:.1} s)",
            costs.edges(),
            o.pairs.len(),
            o.total_cost,
            o.total_cost / o.pairs.len().max(1) as f64,
            gr.pairs.len(),
            gr.total_cost,
            gr.total_cost / gr.pairs.len().max(1) as f64,
        ),
    );
    assert!(o.pairs.len() >= gr.pairs.len());
    if o.pairs.len() == gr.pairs.len() {
        assert!(o.total_cost <= gr.total_cost + 1e-6, "exact above greedy");
    }
    // Pricing an unserved rider at 15 min (above any ETA within 5 km):
    // the exact optimum of that objective is never above greedy's.
    let penalty = 900.0;
    let p = assign_optimal_penalized(&costs, penalty).expect("valid penalty");
    let obj = |a: &dispatchkit::matching::Assignment| {
        a.total_cost + penalty * a.unassigned_rows.len() as f64
    };
    notes::line(
        "matching",
        &format!(
            "  with unserved riders at {penalty:.0} s: exact {:.0} s ({} riders) vs greedy {:.0} s ({} riders)",
            obj(&p),
            p.pairs.len(),
            obj(&gr),
            gr.pairs.len()
        ),
    );
    assert!(obj(&p) <= obj(&gr) + 1e-6, "exact above greedy");
    let mut g = c.benchmark_group("matching_assign_1000x1000");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("hungarian", "1t"), |b| {
        b.iter(|| black_box(assign_optimal(&costs)))
    });
    g.bench_function(BenchmarkId::new("greedy", "1t"), |b| {
        b.iter(|| black_box(assign_greedy(&costs)))
    });
    g.finish();
}

// ------------------------------------------------------------ ride match

const DRIVERS: usize = 1_000_000;
const REQUESTS: usize = 20_000;
const CHUNK: usize = 1_000;

/// 70 % available; vehicle types 0..3; ratings 4.00..=5.00 (as the geo
/// bench).
fn attrs_of(id: u64) -> Attrs {
    Attrs {
        status: if id % 10 < 7 {
            Status::AVAILABLE
        } else {
            Status::BUSY
        },
        vehicle: VehicleType::new((id % 3) as u8).expect("0..3"),
        rating: Rating::from_hundredths(400 + (id % 101) as u16).expect("<= 500"),
        load: 0,
    }
}

struct RideWorld {
    index: GeoIndex,
    rstar: RTree<GeomWithData<[f64; 3], (u64, Attrs, LonLat)>>,
    requests: Vec<RideRequest>,
    t0: Instant,
}

fn unit_vector(p: LonLat) -> [f64; 3] {
    let (lon, lat) = (p.lon().to_radians(), p.lat().to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn ride_world() -> &'static RideWorld {
    static W: OnceLock<RideWorld> = OnceLock::new();
    W.get_or_init(|| {
        let metros = MetroConfig {
            drivers: DRIVERS,
            ..MetroConfig::default()
        };
        let fleet = Fleet::generate(&metros).expect("valid config");
        let t0 = Instant::now();
        let index = GeoIndex::new();
        for chunk in fleet.drivers().chunks(4096) {
            let batch: Vec<DriverUpdate> = chunk
                .iter()
                .map(|d| {
                    DriverUpdate::new(DriverId::new(d.id).unwrap(), lonlat(d.position), t0)
                        .with_attrs(attrs_of(d.id))
                })
                .collect();
            let _ = index.upsert_batch_at(&batch, t0);
        }
        let rstar = RTree::bulk_load(
            fleet
                .drivers()
                .iter()
                .map(|d| {
                    let p = lonlat(d.position);
                    GeomWithData::new(unit_vector(p), (d.id, attrs_of(d.id), p))
                })
                .collect(),
        );
        let requests = QueryStream::new(&metros, 99)
            .expect("valid config")
            .pickups(REQUESTS)
            .into_iter()
            .enumerate()
            .map(|(i, p)| RideRequest {
                rider: RiderId(i as u64),
                pickup: lonlat(p.point),
                vehicles: VehicleSet::of(&[VehicleType::new((i % 3) as u8).expect("0..3")]),
            })
            .collect();
        RideWorld {
            index,
            rstar,
            requests,
            t0,
        }
    })
}

/// The peer: the same state 1–2 with rstar (10 nearest eligible within
/// 5 km, ETA, ranked, top 3).
fn rstar_offers(w: &RideWorld, eta: &HaversineEta, req: &RideRequest) -> Vec<(u64, f64)> {
    let max = (2.0 * (5_000.0 / dispatchkit::geo::EARTH_RADIUS_M / 2.0).sin()).powi(2);
    let mut c: Vec<(u64, f64)> = w
        .rstar
        .nearest_neighbor_iter_with_distance_2(unit_vector(req.pickup))
        .take_while(|(_, d2)| *d2 <= max)
        .filter(|(e, _)| {
            let a = e.data.1;
            a.status == Status::AVAILABLE
                && a.rating.hundredths() > 450
                && req.vehicles.contains(a.vehicle)
        })
        .filter(|(e, _)| e.data.2.distance_m(req.pickup) <= 5_000.0)
        .take(10)
        .map(|(e, _)| {
            (
                e.data.0,
                eta.pickup_eta_secs(e.data.2, req.pickup, e.data.1.vehicle),
            )
        })
        .collect();
    c.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    c.truncate(3);
    c
}

fn ride(c: &mut Criterion) {
    let mut g = c.benchmark_group("matching_ride");
    g.throughput(Throughput::Elements(CHUNK as u64));
    let matcher =
        RideMatcher::new(RideConfig::default(), HaversineEta::default()).expect("valid config");
    let mut next = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit", "1t"), |b| {
        let w = ride_world();
        b.iter(|| {
            for _ in 0..CHUNK {
                let req = w.requests[next % REQUESTS];
                next += 1;
                let _ = black_box(
                    matcher
                        .start_at(&w.index, req, w.t0)
                        .expect("valid request"),
                );
            }
        })
    });
    let eta = HaversineEta::default();
    let mut next = 0usize;
    g.bench_function(BenchmarkId::new("rstar", "1t"), |b| {
        let w = ride_world();
        // The peer ranks exactly like dispatchkit.
        for req in w.requests.iter().take(200) {
            let (_, step) = matcher
                .start_at(&w.index, *req, w.t0)
                .expect("valid request");
            let ours: Vec<u64> = step.offers.iter().map(|o| o.driver.get()).collect();
            let theirs: Vec<u64> = rstar_offers(w, &eta, req).iter().map(|x| x.0).collect();
            assert_eq!(ours, theirs, "peer disagrees");
        }
        b.iter(|| {
            for _ in 0..CHUNK {
                let req = &w.requests[next % REQUESTS];
                next += 1;
                black_box(rstar_offers(w, &eta, req));
            }
        })
    });
    g.finish();
}

// ------------------------------------------------------------ batch route

/// The naive twin: every permutation of the 6 stops, precedence checked,
/// legs computed per permutation.
fn brute_force_route(
    eta: &HaversineEta,
    v: VehicleType,
    start: LonLat,
    orders: &[Order; 3],
) -> f64 {
    let pts = |n: usize| {
        if n < 3 {
            orders[n].pickup
        } else {
            orders[n - 3].dropoff
        }
    };
    let mut best = f64::INFINITY;
    let mut perm = [0usize, 1, 2, 3, 4, 5];
    let mut c = [0usize; 6];
    let mut eval = |p: &[usize; 6]| {
        let pos = |n: usize| p.iter().position(|&x| x == n).unwrap_or(0);
        if (0..3).any(|i| pos(i) > pos(i + 3)) {
            return;
        }
        let mut t = 3.0 * eta.pickup_overhead_secs(v);
        let mut at = start;
        for &n in p {
            t += eta.leg(at, pts(n), v).secs;
            at = pts(n);
        }
        best = best.min(t);
    };
    eval(&perm);
    let mut i = 0;
    while i < 6 {
        if c[i] < i {
            if i % 2 == 0 {
                perm.swap(0, i);
            } else {
                perm.swap(c[i], i);
            }
            eval(&perm);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    best
}

fn batch(c: &mut Criterion) {
    const CASES: usize = 1000;
    let metros = MetroConfig::default();
    let mut stream = OrderStream::new(&metros, &OrderConfig::default()).expect("valid config");
    let orders: Vec<Order> = (0..CASES * 4)
        .map(|i| {
            let o = stream.next_order();
            Order {
                id: OrderId(i as u64),
                pickup: lonlat(o.pickup),
                dropoff: lonlat(o.dropoff),
            }
        })
        .collect();
    // Case i: 3 orders of consecutive arrivals, the dasher at a 4th
    // order's restaurant.
    let cases: Vec<(LonLat, [Order; 3])> = orders
        .chunks(4)
        .map(|o| (o[3].pickup, [o[0], o[1], o[2]]))
        .collect();
    let eta = HaversineEta::default();
    let v = VehicleType::new(0).expect("0 is valid");
    for (start, os) in cases.iter().take(100) {
        let exact = batch_route(&eta, v, Some(*start), os)
            .expect("3 orders")
            .secs;
        let bf = brute_force_route(&eta, v, *start, os);
        assert!(
            (exact - bf).abs() <= 1e-6 * bf,
            "exact route differs from brute force"
        );
    }
    let mut g = c.benchmark_group("matching_batch_route");
    g.throughput(Throughput::Elements(CASES as u64));
    g.bench_function(BenchmarkId::new("exact_3orders", "1t"), |b| {
        b.iter(|| {
            for (start, os) in &cases {
                black_box(batch_route(&eta, v, Some(*start), os).expect("3 orders"));
            }
        })
    });
    g.bench_function(BenchmarkId::new("brute_force_3orders", "1t"), |b| {
        b.iter(|| {
            for (start, os) in &cases {
                black_box(brute_force_route(&eta, v, *start, os));
            }
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    tsp(&mut c);
    assign(&mut c);
    ride(&mut c);
    batch(&mut c);
    c.final_summary();
    print_gap_table();
}
