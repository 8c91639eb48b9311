//! Pricing benchmarks.
//!
//! There is no external peer for pricing, so each group puts a naive
//! baseline beside dispatchkit in the same run:
//!
//! | group | `dispatchkit/…` | baseline beside it |
//! |---|---|---|
//! | `pricing_quote` | rate-card lookup + exact upfront quote (integer money, explicit rounding, receipt lines) | `naive_f64/1t`: the seed's Lambda formula `(base + d × per_km + t × per_min) × surge` in `f64`, rounded to cents once — what a float implementation costs |
//! | `pricing_surge_recompute` | `SurgeEngine::recompute_at` over a `GeoIndex` of 1M (`1m_drivers`) or 10M (`10m_drivers`: the seed's fleet, the same 20 metros 10× denser) drivers with 100k requests in the window, warm (the binary prints the first, cold, recompute beside it); `dispatchkit/…` uses the default 2 threads, `dispatchkit_1thread/…` one | `naive/…`: brute force — one `h3o` conversion per driver and per request, `HashMap` counts, the curve per cell (no smoothing) |
//! | `pricing_order_total` | price a delivery order (items, tiered delivery fee with surge, service fee, small-order fee, tax, two stacked promos, tip) and split its capture | `naive_f64/1t`: the same formula in `f64` with a float split (restaurant = 80 % of subtotal, platform = the rest) |
//!
//! Throughput is elements (quotes, drivers, orders) per second. The 2-thread
//! surge figure is the engine's own `std::thread::scope` split of the driver
//! scan, measured as wall time of one `recompute_at`.

#[path = "common/notes.rs"]
mod notes;

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dispatchkit::geo::{Attrs, DriverId, DriverUpdate, GeoIndex, LonLat, Rating, VehicleType};
use dispatchkit::pricing::{
    Bps, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate, DistanceTier,
    LineItem, Money, Multiplier, OrderRequest, Promo, PromoBook, PromoKind, RateBook, RateCardSpec,
    Rounding, RouteEstimate, ServiceFee, SmallOrderFee, Stacking, SurgeConfig, SurgeCurve,
    SurgeEngine, TaxRule, UserId,
};
use dispatchkit::workload::{Fleet, MetroConfig, OrderConfig, OrderStream, QueryStream};
use geo::{Distance, Haversine};

const CITIES: [&str; 4] = ["seattle", "london", "tokyo", "paris"];

fn rate_book() -> RateBook {
    let mut book = RateBook::new();
    for (i, city) in CITIES.iter().enumerate() {
        for (j, vehicle) in ["economy", "xl", "black"].iter().enumerate() {
            let k = (i * 3 + j) as i64;
            book.insert(
                city,
                vehicle,
                RateCardSpec {
                    currency: Currency::USD,
                    base: 200 + 25 * k,
                    distance: if j == 1 {
                        DistanceRate::PerMile(150 + k)
                    } else {
                        DistanceRate::PerKm(90 + k)
                    },
                    per_minute: 25 + k,
                    minimum_fare: 700,
                    booking_fee: 250,
                    cancellation_fee: 500,
                    rounding: Rounding::HalfEven,
                },
            )
            .expect("valid card");
        }
    }
    book
}

fn bench_quote(c: &mut Criterion) {
    let book = rate_book();
    let vehicles = ["economy", "xl", "black"];
    let n = 1024;
    let routes: Vec<(usize, usize, RouteEstimate, Multiplier)> = (0..n)
        .map(|i| {
            let d = 800.0 + ((i * 7919) % 25_000) as f64 + 0.37;
            let t = Duration::from_millis(120_000 + ((i * 104_729) % 2_400_000) as u64);
            let m = Multiplier::from_milli(1_000 + 100 * (i % 8) as u32).unwrap();
            (
                i % CITIES.len(),
                i % 3,
                RouteEstimate {
                    distance_m: d,
                    duration: t,
                },
                m,
            )
        })
        .collect();
    let mut g = c.benchmark_group("pricing_quote");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("dispatchkit", "1t"), |b| {
        b.iter(|| {
            let mut sum = 0_i64;
            for (city, v, route, m) in &routes {
                let card = book.card(CITIES[*city], vehicles[*v]).expect("known");
                sum += card.quote(route, *m).expect("valid").total().minor();
            }
            black_box(sum)
        })
    });
    // The float baseline: same cards, flattened to f64 dollars.
    let cards: HashMap<(&str, &str), [f64; 5]> = CITIES
        .iter()
        .flat_map(|city| vehicles.iter().map(move |v| (*city, *v)))
        .map(|(city, v)| {
            let s = book.card(city, v).expect("known").spec();
            let per_km = match s.distance {
                DistanceRate::PerKm(r) => r as f64,
                DistanceRate::PerMile(r) => r as f64 / 1.609_344,
            };
            (
                (city, v),
                [
                    s.base as f64 / 100.0,
                    per_km / 100.0,
                    s.per_minute as f64 / 100.0,
                    s.minimum_fare as f64 / 100.0,
                    s.booking_fee as f64 / 100.0,
                ],
            )
        })
        .collect();
    g.bench_function(BenchmarkId::new("naive_f64", "1t"), |b| {
        b.iter(|| {
            let mut sum = 0_i64;
            for (city, v, route, m) in &routes {
                let [base, per_km, per_min, min, fee] = cards[&(CITIES[*city], vehicles[*v])];
                let fare = (base
                    + route.distance_m / 1000.0 * per_km
                    + route.duration.as_secs_f64() / 60.0 * per_min)
                    * (f64::from(m.milli()) / 1000.0);
                sum += ((fare.max(min) + fee) * 100.0).round() as i64;
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// `drivers` drivers of the reference fleet (20 metros) in a `GeoIndex`, all available.
fn fleet_index(drivers: usize, t0: Instant) -> (MetroConfig, GeoIndex) {
    let cfg = MetroConfig {
        drivers,
        ..MetroConfig::default()
    };
    let fleet = Fleet::generate(&cfg).expect("fleet");
    let index = GeoIndex::new();
    let car = VehicleType::new(0).expect("vehicle");
    let rating = Rating::new(4.8).expect("rating");
    let updates: Vec<DriverUpdate> = fleet
        .drivers()
        .iter()
        .map(|d| {
            let pos = LonLat::new(d.position.x(), d.position.y()).expect("workload in range");
            DriverUpdate::new(DriverId::new(d.id).unwrap(), pos, t0)
                .with_attrs(Attrs::available(car, rating))
        })
        .collect();
    for chunk in updates.chunks(100_000) {
        let _ = index.upsert_batch_at(chunk, t0);
    }
    (cfg, index)
}

fn bench_surge(c: &mut Criterion) {
    let mut g = c.benchmark_group("pricing_surge_recompute");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    // The reference fleet (1M) and the seed's (10M, the same 20 metros 10×
    // denser), each with 100k requests in the window.
    for (drivers, param) in [(1_000_000, "1m_drivers"), (10_000_000, "10m_drivers")] {
        surge_at_scale(&mut g, drivers, param);
    }
    g.finish();
}

fn surge_at_scale(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    drivers: usize,
    param: &str,
) {
    let t0 = Instant::now();
    // Requests arrive over the 4 minutes before `now`; drivers reported at
    // `now` (the index's TTL is 30 s).
    let now = t0 + Duration::from_secs(240);
    let (cfg, index) = fleet_index(drivers, now);
    assert_eq!(index.live_len_at(now), drivers);
    let requests = QueryStream::new(&cfg, 9).expect("queries").pickups(100_000);
    let engine = |threads| {
        let e = SurgeEngine::new(SurgeConfig {
            threads,
            ..SurgeConfig::default()
        })
        .expect("config");
        for (i, p) in requests.iter().enumerate() {
            // Spread over the 5-minute window.
            let at = t0 + Duration::from_millis(i as u64 % 240_000);
            e.record_request_at(p.point, at).expect("valid pickup");
        }
        e
    };
    g.throughput(Throughput::Elements(drivers as u64));
    let e2 = engine(2);
    // The first recompute also learns the cells' geometry (the locator's
    // cache); the benches below measure the warm ones.
    let cold = Instant::now();
    let first = e2.recompute_at(&index, now);
    let cold = cold.elapsed();
    assert_eq!((first.drivers, first.requests), (drivers, requests.len()));
    let warm = Instant::now();
    let second = e2.recompute_at(&index, now);
    let warm = warm.elapsed();
    assert_eq!(second.cells, first.cells);
    notes::line(
        "pricing",
        &format!(
            "surge recompute, {drivers} drivers, 2 threads: first (cold cell cache) {:.1} ms, second {:.1} ms; {} cells, {} located without h3o",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            second.cells,
            second.fast_path,
        ),
    );
    g.bench_function(BenchmarkId::new("dispatchkit", param), |b| {
        b.iter(|| black_box(e2.recompute_at(&index, now)))
    });
    let e1 = engine(1);
    e1.recompute_at(&index, now);
    g.bench_function(BenchmarkId::new("dispatchkit_1thread", param), |b| {
        b.iter(|| black_box(e1.recompute_at(&index, now)))
    });
    let curve = SurgeCurve::default();
    let res = SurgeConfig::default().resolution;
    g.bench_function(BenchmarkId::new("naive", param), |b| {
        b.iter(|| {
            let mut supply: HashMap<u64, u32> = HashMap::new();
            index.for_each_at(now, |v| {
                let cell = dispatchkit::pricing::h3o::LatLng::new(v.pos.lat(), v.pos.lon())
                    .expect("valid")
                    .to_cell(res);
                *supply.entry(u64::from(cell)).or_insert(0) += 1;
            });
            let mut demand: HashMap<u64, u32> = HashMap::new();
            for p in &requests {
                let cell = dispatchkit::pricing::h3o::LatLng::new(p.point.y(), p.point.x())
                    .expect("valid")
                    .to_cell(res);
                *demand.entry(u64::from(cell)).or_insert(0) += 1;
            }
            let mut surging = 0;
            for (cell, d) in &demand {
                let s = supply.get(cell).copied().unwrap_or(0).max(1);
                let ratio = u64::from(*d) * 1000 / u64::from(s);
                surging += usize::from(curve.multiplier(ratio, false) > Multiplier::ONE);
            }
            black_box(surging)
        })
    });
}

fn delivery_pricing() -> DeliveryPricing {
    DeliveryPricing::new(DeliveryPricingSpec {
        currency: Currency::USD,
        tiers: vec![
            DistanceTier {
                up_to_m: 2_000,
                fee: 99,
            },
            DistanceTier {
                up_to_m: 5_000,
                fee: 299,
            },
            DistanceTier {
                up_to_m: 10_000,
                fee: 499,
            },
        ],
        service_fee: ServiceFee {
            rate: Bps(1_500),
            min: 200,
            max: 800,
        },
        small_order: SmallOrderFee {
            below: 1_200,
            fee: 250,
        },
        taxes: BTreeMap::from([(
            "default".to_string(),
            TaxRule {
                rate: Bps(875),
                on_fees: true,
            },
        )]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: 300,
            per_km: 60,
            per_minute: 12,
        },
        rounding: Rounding::HalfEven,
    })
    .expect("valid pricing")
}

fn bench_order(c: &mut Criterion) {
    let pricing = delivery_pricing();
    let mut promos = PromoBook::new();
    let mut pct = Promo::new(
        "SAVE15",
        PromoKind::PercentOff {
            off: Bps(1_500),
            cap: Some(Money::new(600, Currency::USD)),
        },
    );
    pct.stacking = Stacking::Stackable;
    promos.insert(pct).expect("valid promo");
    let mut free = Promo::new("FREEDEL", PromoKind::FreeDelivery);
    free.stacking = Stacking::Stackable;
    promos.insert(free).expect("valid promo");
    let selection = promos
        .check_at(&["SAVE15", "FREEDEL"], UserId(1), Instant::now())
        .expect("stackable");
    let mut stream =
        OrderStream::new(&MetroConfig::default(), &OrderConfig::default()).expect("orders");
    let n = 1024;
    let orders: Vec<(Vec<LineItem>, u32, u32, Multiplier, Money)> = (0..n)
        .map(|i| {
            let o = stream.next_order();
            let items = (0..o.items)
                .map(|k| LineItem {
                    unit_price: Money::new(
                        450 + 137 * i64::from(k) + (i as i64 % 900),
                        Currency::USD,
                    ),
                    quantity: 1 + u32::from(k % 2),
                })
                .collect();
            let d = Haversine.distance(o.pickup, o.dropoff) as u32;
            (
                items,
                d,
                d / 6 + 300,
                Multiplier::from_milli(1_000 + 100 * (i % 4) as u32).unwrap(),
                Money::new(100 * (i as i64 % 6), Currency::USD),
            )
        })
        .collect();
    let mut g = c.benchmark_group("pricing_order_total");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("dispatchkit", "1t"), |b| {
        b.iter(|| {
            let mut platform = 0_i64;
            for (items, d, secs, surge, tip) in &orders {
                let req = OrderRequest {
                    items,
                    distance_m: *d,
                    duration_s: *secs,
                    jurisdiction: "default",
                    surge: *surge,
                    tip: *tip,
                };
                let total = pricing.price(&req, &selection).expect("priceable");
                platform += total.capture().expect("split").split().platform.minor();
            }
            black_box(platform)
        })
    });
    g.bench_function(BenchmarkId::new("naive_f64", "1t"), |b| {
        b.iter(|| {
            let mut platform = 0.0_f64;
            for (items, d, secs, surge, tip) in &orders {
                let sub: f64 = items
                    .iter()
                    .map(|it| it.unit_price.minor() as f64 / 100.0 * f64::from(it.quantity))
                    .sum();
                let tier = if *d <= 2_000 {
                    0.99
                } else if *d <= 5_000 {
                    2.99
                } else {
                    4.99
                };
                let delivery = tier * f64::from(surge.milli()) / 1000.0;
                let service = (sub * 0.15).clamp(2.0, 8.0);
                let small = if sub < 12.0 { 2.5 } else { 0.0 };
                let discount = (sub * 0.15).min(6.0);
                let tax = (sub - discount + service + small) * 0.0875;
                let tip = tip.minor() as f64 / 100.0;
                let waived = delivery; // FREEDEL
                let total = sub - discount + delivery - waived + service + small + tax + tip;
                let restaurant = sub * 0.8;
                let dasher =
                    3.0 + f64::from(*d) / 1000.0 * 0.6 + f64::from(*secs) / 60.0 * 0.12 + tip;
                platform += ((total - restaurant - dasher).max(0.0) * 100.0).round() / 100.0;
            }
            black_box(platform)
        })
    });
    g.finish();
}

fn bench_all(c: &mut Criterion) {
    bench_quote(c);
    bench_order(c);
    bench_surge(c);
}

criterion_group!(benches, bench_all);
criterion_main!(benches);
