//! Issue 14, acceptance: hostile JSON for every `Deserialize` type of every
//! module, and arbitrary arguments for the public constructors and `_at`
//! calls. Nothing may panic or hang; whatever a type accepts must work
//! when used and serialise back to itself exactly.
//!
//! Each type is fed (1) mutations of the JSON of valid values (a field
//! replaced by an extreme number, a string, `null`; a field removed or
//! added; an array shortened or repeated) and (2) arbitrary JSON. Cases
//! per type: `HOSTILE_CASES` (default 48 here; the release-mode
//! run is `HOSTILE_CASES=10000 cargo test --release --test hostile`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use dispatchkit::cache::{self, Cache, SharedTier, Store, TierConfig, WriteMode};
use dispatchkit::geo::{
    Attrs, DriverId, DriverUpdate, FenceEvent, FenceEventKind, GeoIndex, IndexConfig, LonLat,
    Rating, Search, Snapshot, Status, Unit, VehicleSet, VehicleType,
};
use dispatchkit::matching::routing::{
    Construction, DistanceMatrix, GeoPoints, Moves, PlanarMetric, PlanarPoints, Route, RouteShape,
    SolveOptions, TsplibInstance, route_length, solve,
};
use dispatchkit::matching::{
    BatchingConfig, CostMatrix, DasherConfig, DasherMatcher, DriverSpot, Earnings, EtaModel,
    HaversineEta, Leg, Order, OrderId, RideConfig, RideMatcher, RideRequest, RiderId, StopKind,
    assign_greedy, assign_optimal, assign_optimal_penalized, batch_orders,
};
use dispatchkit::pricing::{
    Bps, Capture, CellSurge, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec,
    DistanceRate, DistanceTier, FareComponent, LineItem, Money, Multiplier, OrderRequest,
    PromoKind, PromoSelection, RateCard, RateCardSpec, Rounding, RouteEstimate, ServiceFee,
    SmallOrderFee, Stacking, SurgeConfig, SurgeCurve, SurgeEngine, TaxRule, TracePoint, TraceRules,
    TraceSummary, UserId, measure_trace,
};
use dispatchkit::ratelimit::{
    AlgorithmKind, FailMode, FixedWindow, Gcra, KeyKind, Limit, PolicyLimiter, Quota, RateLimiter,
    Request, RuleSet, RuleTable, SlidingCounter, SlidingLog, Tier, Window,
};
use dispatchkit::workload::{MetroConfig, OrderConfig, UpdateConfig};

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

// ------------------------------------------------------------ JSON mutation

/// A leaf a mutation writes into the JSON: the values that break naive
/// code (extremes, wrong types, the reserved id, zero, negative zero).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(|n| json!(n)),
        prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()].prop_map(|n| json!(n)),
        prop_oneof![
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            Just(-0.0),
            Just(0.5),
            Just(1.5),
            any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite())
        ]
        .prop_map(|f| json!(f)),
        prop_oneof![
            Just(""),
            Just("inf"),
            Just("NaN"),
            Just("-1"),
            Just("0ms"),
            Just("hour"),
            Just("USD"),
            Just("ZZZ"),
            Just("\u{1F695}"),
        ]
        .prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Fully arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    Repeat,
    AddField(Value),
    Stringify,
}

fn edit() -> impl Strategy<Value = (u64, Edit)> {
    (
        any::<u64>(),
        prop_oneof![
            6 => leaf().prop_map(Edit::Replace),
            2 => Just(Edit::Remove),
            2 => Just(Edit::Repeat),
            1 => leaf().prop_map(Edit::AddField),
            1 => Just(Edit::Stringify),
        ],
    )
}

/// Applies `edit` at a node chosen by the bits of `path` (each level takes
/// a child, or stops there).
fn apply(v: &mut Value, mut path: u64, edit: &Edit) {
    let n = match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    let stop = n == 0 || path.is_multiple_of(4);
    if !stop {
        let i = ((path >> 2) % n as u64) as usize;
        path >>= 8;
        let child = match v {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).expect("i < len"),
            _ => unreachable!(),
        };
        // Edit the child itself one level up when the path ends here, so
        // that Remove / Repeat act on a container.
        if !path.is_multiple_of(3) || !matches!(edit, Edit::Remove | Edit::Repeat) {
            return apply(child, path, edit);
        }
        match (v, edit) {
            (Value::Array(a), Edit::Remove) => {
                a.remove(i);
            }
            (Value::Array(a), Edit::Repeat) => {
                let c = a[i].clone();
                a.insert(i, c);
            }
            (Value::Object(o), Edit::Remove) => {
                let k = o.keys().nth(i).expect("i < len").clone();
                o.remove(&k);
            }
            _ => {}
        }
        return;
    }
    match edit {
        Edit::Replace(x) => *v = x.clone(),
        Edit::AddField(x) => {
            if let Value::Object(o) = v {
                o.insert("unexpected".into(), x.clone());
            }
        }
        Edit::Stringify => *v = Value::String(v.to_string()),
        Edit::Repeat => {
            if let Value::Array(a) = v
                && let Some(last) = a.last().cloned()
            {
                a.push(last);
            }
        }
        Edit::Remove => {
            if let Value::Array(a) = v {
                a.pop();
            }
        }
    }
}

/// Feeds `T` mutated and arbitrary JSON; `exercise` uses every value that
/// loads. Values that load must serialise back to themselves.
fn fuzz<T>(name: &str, samples: Vec<T>, exercise: impl Fn(&T))
where
    T: Serialize + DeserializeOwned + Debug + PartialEq,
{
    assert!(!samples.is_empty(), "{name}: no samples");
    let jsons: Vec<Value> = samples
        .iter()
        .map(|s| serde_json::to_value(s).expect("serialisable"))
        .collect();
    for (s, j) in samples.iter().zip(&jsons) {
        let back: T = serde_json::from_value(j.clone())
            .unwrap_or_else(|e| panic!("{name}: a valid value does not load back: {e}\n{j}"));
        assert_eq!(&back, s, "{name}: round trip changed the value");
        exercise(s);
    }
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = prop_oneof![
        4 => (0..jsons.len(), prop::collection::vec(edit(), 1..4)).prop_map({
            let jsons = jsons.clone();
            move |(i, edits)| {
                let mut v = jsons[i].clone();
                for (path, e) in &edits {
                    apply(&mut v, *path, e);
                }
                v
            }
        }),
        1 => any_json(),
    ];
    let loaded = std::cell::Cell::new(0u32);
    let result = runner.run(&strategy, |v| {
        if let Ok(t) = serde_json::from_value::<T>(v.clone()) {
            loaded.set(loaded.get() + 1);
            exercise(&t);
            let again = serde_json::to_value(&t).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: T = serde_json::from_value(again.clone()).map_err(|e| {
                TestCaseError::fail(format!("{name}: accepted {v} but not its own {again}: {e}"))
            })?;
            prop_assert_eq!(&back, &t, "{}: round trip of {}", name, v);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {} cases, {} loaded", cases(), loaded.get());
}

// ------------------------------------------------------------------ samples

fn ll(lon: f64, lat: f64) -> LonLat {
    LonLat::new(lon, lat).unwrap()
}

fn t0() -> Instant {
    Instant::now()
}

fn a_index(t: Instant) -> GeoIndex {
    let index = GeoIndex::with_config(IndexConfig {
        epoch: Some(t),
        ..IndexConfig::default()
    })
    .unwrap();
    for i in 0..20u64 {
        let a = Attrs::available(VehicleType::new((i % 3) as u8).unwrap(), Rating::MAX);
        let _ = index
            .upsert_at(
                DriverId::new(i).unwrap(),
                ll(13.4 + i as f64 * 1e-3, 52.52),
                a,
                t,
            )
            .unwrap();
    }
    index
}

#[test]
fn every_geo_type_survives_hostile_json() {
    let t = t0();
    let index = a_index(t);
    fuzz(
        "DriverId",
        vec![DriverId::new(0).unwrap(), DriverId::MAX],
        |d| {
            let _ = index.get_at(*d, t);
            let _ = index.search_at(&Search::member_radius(*d, 1.0, Unit::Kilometers), t);
        },
    );
    fuzz("Status", vec![Status::AVAILABLE, Status::BUSY], |_| {});
    fuzz(
        "VehicleType",
        vec![VehicleType::new(0).unwrap(), VehicleType::new(63).unwrap()],
        |_| {},
    );
    fuzz(
        "VehicleSet",
        vec![VehicleSet::of(&[VehicleType::new(3).unwrap()])],
        |_| {},
    );
    fuzz(
        "Rating",
        vec![Rating::MAX, Rating::new(4.5).unwrap()],
        |_| {},
    );
    fuzz("Attrs", vec![Attrs::default()], |a| {
        let _ = index.set_attrs_at(DriverId::new(1).unwrap(), *a, t);
    });
    fuzz(
        "LonLat",
        vec![ll(0.0, 0.0), ll(-180.0, -85.05112878), ll(13.4, 52.52)],
        |p| {
            let _ = index.search_at(&Search::radius(*p, 5.0, Unit::Kilometers).count(3), t);
            let _ = p.redis_geohash();
        },
    );
    fuzz("Unit", vec![Unit::Meters, Unit::Miles], |_| {});
    let snapshot = index.snapshot_at(t);
    fuzz("SnapshotDriver", snapshot.drivers.clone(), |_| {});
    fuzz("Snapshot", vec![snapshot.clone()], |s: &Snapshot| {
        if let Ok(ix) = GeoIndex::restore_at(s, IndexConfig::default(), t) {
            ix.check_invariants();
            let _ = ix.search_at(&Search::radius(ll(13.4, 52.52), 50.0, Unit::Kilometers), t);
        }
    });
    fuzz(
        "FenceEventKind",
        vec![FenceEventKind::Enter, FenceEventKind::Exit],
        |_| {},
    );
    fuzz(
        "FenceEvent",
        vec![FenceEvent {
            driver: DriverId::new(3).unwrap(),
            fence: 7,
            kind: FenceEventKind::Enter,
        }],
        |_| {},
    );
    index.check_invariants();
}

#[test]
fn every_ratelimit_type_survives_hostile_json() {
    let t = t0();
    fuzz("FailMode", vec![FailMode::Open, FailMode::Closed], |_| {});
    fuzz("Tier", vec![Tier::Free, Tier::Premium], |_| {});
    fuzz("KeyKind", vec![KeyKind::User, KeyKind::Ip], |_| {});
    fuzz(
        "AlgorithmKind",
        vec![AlgorithmKind::TokenBucket, AlgorithmKind::SlidingLog],
        |_| {},
    );
    let hour: Window = "hour".parse().unwrap();
    fuzz(
        "Window",
        vec![hour, Window::new(Duration::from_nanos(1_500)).unwrap()],
        |_| {},
    );
    let limit = Limit::new(1_000, hour).with_burst(50);
    fuzz("Limit", vec![limit.clone()], |_| {});
    let set = RuleSet {
        kind: Some(KeyKind::User),
        endpoint: Some("/v1/rides".into()),
        limits: vec![limit, Limit::new(10_000, "day".parse().unwrap())],
        ..RuleSet::default()
    };
    fuzz("RuleSet", vec![set.clone()], |_| {});
    fuzz("RuleTable", vec![RuleTable { rules: vec![set] }], |table| {
        if let Ok(lim) = PolicyLimiter::<u64>::new_at(table, t) {
            for (k, kind) in [
                (1u64, KeyKind::User),
                (2, KeyKind::Ip),
                (3, KeyKind::ApiKey),
            ] {
                let req = Request {
                    tier: Some(Tier::Free),
                    endpoint: "/v1/rides",
                    kind,
                    key: &k,
                };
                for cost in [1, 3, u32::MAX] {
                    let _ = lim.check_at(&req, cost, t + Duration::from_secs(k));
                }
            }
        }
    });
}

#[derive(Default)]
struct Nothing;
impl Store<u64, u64> for Nothing {
    type Error = std::io::Error;
    fn get(&self, _: &u64) -> Result<Option<u64>, Self::Error> {
        Ok(None)
    }
    fn put(&self, _: &u64, _: &u64) -> Result<(), Self::Error> {
        Ok(())
    }
    fn delete(&self, _: &u64) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn every_cache_type_survives_hostile_json() {
    fuzz(
        "EvictionCause",
        vec![cache::EvictionCause::Capacity],
        |_| {},
    );
    let c = Cache::<u64, u64>::new(16).unwrap();
    c.insert(1, 1).unwrap();
    fuzz("CacheStats", vec![c.stats()], |_| {});
    fuzz("Evictions", vec![c.stats().evictions], |_| {});
    fuzz(
        "WriteMode",
        vec![WriteMode::Through, WriteMode::Behind { queue_capacity: 8 }],
        |_| {},
    );
    fuzz("TierConfig", vec![TierConfig::default()], |config| {
        let tier = SharedTier::new(Cache::new(16).unwrap(), Nothing, *config)
            .expect("a config that loads builds a tier");
        let a = tier.instance(Cache::new(4).unwrap());
        a.set(1, 2).unwrap();
        let _ = tier.flush();
    });
    let tier = SharedTier::new(
        Cache::<u64, u64>::new(16).unwrap(),
        Nothing,
        TierConfig::default(),
    )
    .unwrap();
    let a = tier.instance(Cache::new(4).unwrap());
    fuzz("TierStats", vec![a.stats()], |_| {});
    fuzz(
        "Policy",
        vec![
            cache::Policy::S3Fifo,
            cache::Policy::Lru,
            cache::Policy::WTinyLfu,
        ],
        |p| {
            let c = Cache::<u64, u64>::builder(64).policy(*p).build().unwrap();
            (0..200).for_each(|k| c.insert(k, k).unwrap());
        },
    );
    fuzz(
        "Admission",
        vec![cache::Admission::AdmitAll, cache::Admission::TinyLfu],
        |a| {
            let c = Cache::<u64, u64>::builder(64)
                .admission(*a)
                .build()
                .unwrap();
            (0..200).for_each(|k| c.insert(k, k).unwrap());
        },
    );
}

fn small_solve<D: dispatchkit::matching::routing::Distances + ?Sized>(d: &D) {
    if d.len() <= 64 {
        let opts = SolveOptions {
            max_iterations: 20,
            time_budget: None,
            ..SolveOptions::default()
        };
        if let Ok(s) = solve(d, RouteShape::Closed, &opts) {
            assert!(s.route.length.is_finite());
        }
    }
}

fn orders() -> Vec<Order> {
    (0..6u64)
        .map(|i| Order {
            id: OrderId(i),
            pickup: ll(13.40 + i as f64 * 1e-3, 52.52),
            dropoff: ll(13.42, 52.53 + i as f64 * 1e-3),
        })
        .collect()
}

#[test]
fn every_matching_type_survives_hostile_json() {
    let t = t0();
    let index = a_index(t);
    let eta = HaversineEta::default();
    let leg = Leg {
        metres: 100.0,
        secs: 10.0,
    };
    fuzz("Leg", vec![leg], |l| {
        let _ = l.is_usable();
    });
    fuzz("HaversineEta", vec![eta.clone()], |e| {
        let v = VehicleType::new(2).unwrap();
        assert!(e.leg(ll(13.4, 52.5), ll(13.5, 52.6), v).is_usable());
    });
    fuzz("Moves", vec![Moves::default()], |_| {});
    fuzz("Construction", vec![Construction::Greedy], |_| {});
    fuzz(
        "PlanarMetric",
        vec![PlanarMetric::Euc2d, PlanarMetric::Att],
        |_| {},
    );
    let dm = DistanceMatrix::new(3, vec![0.0, 2.0, 9.0, 2.0, 0.0, 4.0, 9.0, 4.0, 0.0]).unwrap();
    fuzz("DistanceMatrix", vec![dm], small_solve);
    let pts = PlanarPoints::new(
        vec![(0.0, 0.0), (3.0, 4.0), (6.0, 0.0)],
        PlanarMetric::Euc2d,
    )
    .unwrap();
    fuzz("PlanarPoints", vec![pts], small_solve);
    let geo = GeoPoints::new(vec![
        geo::Point::new(13.4, 52.5),
        geo::Point::new(2.35, 48.85),
        geo::Point::new(-0.12, 51.5),
    ])
    .unwrap();
    fuzz("GeoPoints", vec![geo], small_solve);
    fuzz(
        "RouteShape",
        vec![
            RouteShape::Closed,
            RouteShape::Open {
                start: Some(0),
                end: None,
            },
        ],
        |s| {
            let pts = PlanarPoints::new(
                vec![(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)],
                PlanarMetric::Euclidean,
            )
            .unwrap();
            let _ = route_length(&pts, *s, &[0, 1, 2]);
        },
    );
    fuzz(
        "Route",
        vec![Route {
            order: vec![0, 1, 2],
            length: 3.0,
        }],
        |_| {},
    );
    let tsp = TsplibInstance::parse(
        "NAME: t\nTYPE: TSP\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n1 0 0\n2 3 4\n3 6 0\nEOF\n",
    )
    .unwrap();
    fuzz("TsplibInstance", vec![tsp], |i| {
        if let Ok(d) = i.distances() {
            small_solve(&d);
        }
    });
    fuzz("SolveOptions", vec![SolveOptions::default()], |o| {
        // Bounded here: a caller may ask for a billion kicks, a test not.
        let o = SolveOptions {
            max_iterations: o.max_iterations.min(50),
            time_budget: Some(Duration::from_millis(50)),
            ..*o
        };
        let pts = PlanarPoints::new(
            (0..20)
                .map(|i| ((i * 7 % 20) as f64, (i * 3 % 20) as f64))
                .collect(),
            PlanarMetric::Euclidean,
        )
        .unwrap();
        let _ = solve(&pts, RouteShape::Closed, &o);
    });
    fuzz("Earnings", vec![Earnings::default()], |_| {});
    fuzz("DasherConfig", vec![DasherConfig::default()], |c| {
        assert!(DasherMatcher::new(c.clone(), &eta).is_ok());
    });
    fuzz("BatchingConfig", vec![BatchingConfig::default()], |c| {
        let _ = batch_orders(&eta, &orders(), c);
    });
    let batches = batch_orders(&eta, &orders(), &BatchingConfig::default()).unwrap();
    fuzz("Batch", batches, |_| {});
    let cm = CostMatrix::from_fn(2, 3, |r, c| (r != c).then_some((r + c) as f64)).unwrap();
    fuzz("CostMatrix", vec![cm.clone()], |m| {
        let _ = assign_optimal(m);
        let _ = assign_greedy(m);
        let _ = assign_optimal_penalized(m, 1e6);
    });
    fuzz("Assignment", vec![assign_optimal(&cm)], |_| {});
    fuzz(
        "DriverSpot",
        vec![DriverSpot {
            id: DriverId::new(7).unwrap(),
            pos: ll(13.4, 52.5),
            vehicle: VehicleType::new(1).unwrap(),
        }],
        |_| {},
    );
    fuzz("RiderId", vec![RiderId(3)], |_| {});
    let req = RideRequest {
        rider: RiderId(1),
        pickup: ll(13.4, 52.52),
        vehicles: VehicleSet::of(&[VehicleType::new(0).unwrap()]),
    };
    fuzz("RideRequest", vec![req], |r| {
        let m = RideMatcher::new(RideConfig::default(), &eta).unwrap();
        let _ = m.start_at(&index, *r, t);
    });
    fuzz("RideConfig", vec![RideConfig::default()], |c| {
        let m = RideMatcher::new(c.clone(), &eta).expect("a config that loads is valid");
        let _ = m.start_at(&index, req, t);
    });
    fuzz("OrderId", vec![OrderId(9)], |_| {});
    fuzz("Order", orders(), |_| {});
    fuzz(
        "StopKind",
        vec![StopKind::Pickup, StopKind::Dropoff],
        |_| {},
    );
}

fn spec() -> DeliveryPricingSpec {
    DeliveryPricingSpec {
        currency: Currency::USD,
        tiers: vec![
            DistanceTier {
                up_to_m: 2_000,
                fee: 199,
            },
            DistanceTier {
                up_to_m: 10_000,
                fee: 599,
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
            "wa".to_string(),
            TaxRule {
                rate: Bps(1_025),
                on_fees: true,
            },
        )]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: 300,
            per_km: 50,
            per_minute: 10,
        },
        rounding: Rounding::HalfEven,
    }
}

fn card() -> RateCardSpec {
    RateCardSpec {
        currency: Currency::USD,
        base: 250,
        distance: DistanceRate::PerKm(100),
        per_minute: 30,
        minimum_fare: 800,
        booking_fee: 275,
        cancellation_fee: 500,
        rounding: Rounding::HalfEven,
    }
}

#[test]
fn every_pricing_type_survives_hostile_json() {
    let usd = |m| Money::new(m, Currency::USD);
    fuzz("Rounding", vec![Rounding::HalfEven, Rounding::Up], |_| {});
    let points = Currency::new("PTS", 0).unwrap();
    fuzz(
        "Currency",
        vec![Currency::USD, Currency::JPY, points],
        |_| {},
    );
    fuzz(
        "Money",
        vec![
            usd(1_234),
            usd(-5),
            Money::new(7, Currency::JPY),
            Money::new(9, points),
        ],
        |m| {
            let _ = m.checked_add(*m);
            let _ = m.mul_bps(Bps(12_345), Rounding::HalfEven);
            let _ = m.allocate(&[1, 2, 3]);
            let _ = m.to_string();
        },
    );
    fuzz("Bps", vec![Bps(875)], |b| {
        let _ = usd(i64::MAX).mul_bps(*b, Rounding::Up);
    });
    fuzz("Multiplier", vec![Multiplier::ONE, Multiplier::MAX], |m| {
        assert!(*m >= Multiplier::ONE && *m <= Multiplier::MAX);
        let _ = usd(i64::MAX / 2).mul_multiplier(*m, Rounding::Up);
    });
    let s = Duration::from_secs;
    let trace = vec![
        TracePoint::new(13.4, 52.52, s(0)),
        TracePoint::new(13.41, 52.52, s(60)),
    ];
    fuzz("TracePoint", trace.clone(), |_| {});
    fuzz("TraceRules", vec![TraceRules::default()], |r| {
        let _ = measure_trace(&trace, r);
    });
    fuzz(
        "TraceSummary",
        vec![measure_trace(&trace, &TraceRules::default()).unwrap()],
        |_: &TraceSummary| {},
    );
    let items = [LineItem {
        unit_price: usd(1_050),
        quantity: 2,
    }];
    fuzz("LineItem", items.to_vec(), |_| {});
    fuzz("DistanceTier", spec().tiers, |_| {});
    fuzz("ServiceFee", vec![spec().service_fee], |_| {});
    fuzz("SmallOrderFee", vec![spec().small_order], |_| {});
    fuzz("TaxRule", spec().taxes.into_values().collect(), |_| {});
    fuzz("DasherPay", vec![spec().dasher], |_| {});
    fuzz("DeliveryPricingSpec", vec![spec()], |_| {});
    let pricing = DeliveryPricing::new(spec()).unwrap();
    let order = |p: &DeliveryPricing| {
        let req = OrderRequest {
            items: &items,
            distance_m: 3_000,
            duration_s: 900,
            jurisdiction: "wa",
            surge: Multiplier::ONE,
            tip: usd(300),
        };
        p.price(&req, &PromoSelection::none())
    };
    fuzz("DeliveryPricing", vec![pricing.clone()], |p| {
        let _ = order(p);
    });
    let total = order(&pricing).unwrap();
    fuzz("OrderTotal", vec![total], |t| {
        t.check_invariants();
        if let Ok(mut c) = t.capture() {
            let _ = c.refund(usd(100));
            c.check_invariants();
        }
    });
    let mut capture = Capture::new(usd(3_699), usd(2_000), usd(600), usd(300)).unwrap();
    let _ = capture.refund(usd(1_000)).unwrap();
    fuzz("Split", vec![capture.split()], |_| {});
    fuzz("Capture", vec![capture], |c| {
        c.check_invariants();
        let mut c = *c;
        let _ = c.refund(usd(1));
        let _ = c.refund_all();
        c.check_invariants();
    });
    fuzz("SurgeCurve", vec![SurgeCurve::default()], |c| {
        for r in [0, 1_000, 5_000, u64::MAX] {
            let m = c.multiplier(r, false);
            assert!(m >= Multiplier::ONE && m <= Multiplier::MAX);
        }
    });
    fuzz("SurgeConfig", vec![SurgeConfig::default()], |c| {
        let c = SurgeConfig {
            threads: c.threads.min(2),
            ..*c
        };
        let _ = SurgeEngine::new(c);
    });
    fuzz("UserId", vec![UserId(4)], |_| {});
    fuzz(
        "PromoKind",
        vec![
            PromoKind::FreeDelivery,
            PromoKind::FixedOff { off: usd(500) },
        ],
        |_| {},
    );
    fuzz(
        "Stacking",
        vec![Stacking::Exclusive, Stacking::Stackable],
        |_| {},
    );
    let route = RouteEstimate {
        distance_m: 8_000.0,
        duration: s(1_200),
    };
    fuzz("RouteEstimate", vec![route], |r| {
        let card = RateCard::new(card()).unwrap();
        if let Ok(f) = card.quote(r, Multiplier::MAX) {
            f.check_invariants();
        }
    });
    fuzz("DistanceRate", vec![DistanceRate::PerKm(100)], |_| {});
    fuzz("RateCardSpec", vec![card()], |_| {});
    let rc = RateCard::new(card()).unwrap();
    fuzz("RateCard", vec![rc], |c| {
        let _ = c.quote(&route, Multiplier::from_milli(1_500).unwrap());
    });
    let fare = rc
        .quote(&route, Multiplier::from_milli(1_500).unwrap())
        .unwrap();
    fuzz("Fare", vec![fare, rc.cancellation()], |f| {
        f.check_invariants();
        let _ = f.with_promos(&PromoSelection::none());
        let _ = f.to_string();
    });
    fuzz(
        "FareComponent",
        vec![FareComponent::Base, FareComponent::Surge],
        |_| {},
    );
    fuzz("FareLine", fare.lines().collect(), |_| {});
    let engine = SurgeEngine::new(SurgeConfig::default()).unwrap();
    let _ = engine;
    fuzz(
        "CellSurge",
        vec![CellSurge {
            demand: 3,
            supply: 1,
            ratio_milli: 3_000,
            multiplier: Multiplier::from_milli(2_000).unwrap(),
        }],
        |_| {},
    );
}

/// Every struct with public fields and a check deserialises through that
/// check: the defaults load, and one invalid field makes each refuse.
#[test]
fn configs_with_public_fields_refuse_invalid_json() {
    fn refuses<T: Serialize + DeserializeOwned + Debug>(
        name: &str,
        valid: T,
        field: &[&str],
        bad: Value,
    ) {
        let mut v = serde_json::to_value(&valid).unwrap();
        assert!(
            serde_json::from_value::<T>(v.clone()).is_ok(),
            "{name}: defaults load"
        );
        let mut at = &mut v;
        for f in &field[..field.len() - 1] {
            at = &mut at[*f];
        }
        at[field[field.len() - 1]] = bad.clone();
        assert!(
            serde_json::from_value::<T>(v).is_err(),
            "{name}: {field:?} = {bad} was accepted"
        );
    }
    refuses("Attrs", Attrs::default(), &["load"], json!(9));
    refuses(
        "RideConfig",
        RideConfig::default(),
        &["candidates"],
        json!(0),
    );
    refuses(
        "RideConfig",
        RideConfig::default(),
        &["radius_steps_km"],
        json!([10.0, 5.0]),
    );
    refuses(
        "DasherConfig",
        DasherConfig::default(),
        &["offers_per_round"],
        json!(0),
    );
    refuses(
        "BatchingConfig",
        BatchingConfig::default(),
        &["max_orders"],
        json!(0),
    );
    refuses(
        "BatchingConfig",
        BatchingConfig::default(),
        &["max_pickup_gap_m"],
        json!(5e-324),
    );
    refuses(
        "SolveOptions",
        SolveOptions::default(),
        &["neighbours"],
        json!(0),
    );
    refuses(
        "SurgeCurve",
        SurgeCurve::default(),
        &["step_milli"],
        json!(0),
    );
    refuses(
        "SurgeConfig",
        SurgeConfig::default(),
        &["curve", "step_milli"],
        json!(0),
    );
    refuses(
        "TraceRules",
        TraceRules::default(),
        &["max_speed_mps"],
        json!(1e9),
    );
    refuses(
        "TierConfig",
        TierConfig::default(),
        &["store_attempts"],
        json!(0),
    );
}

#[test]
fn every_workload_config_survives_hostile_json() {
    fuzz(
        "MetroConfig",
        vec![MetroConfig {
            drivers: 100,
            ..MetroConfig::default()
        }],
        |c| {
            if c.drivers <= 2_000 {
                let _ = dispatchkit::workload::Fleet::generate(c);
            } else {
                // Validation is checked without generating the fleet.
                let _ = c.validate();
            }
        },
    );
    fuzz("UpdateConfig", vec![UpdateConfig::default()], |_| {});
    fuzz("OrderConfig", vec![OrderConfig::default()], |_| {});
}

// ------------------------------------------------- arbitrary constructor args

/// An instant at `offset_s` seconds from `t` (either way), when `Instant`
/// can represent it.
fn at(t: Instant, offset_s: i64) -> Option<Instant> {
    let d = Duration::from_secs(offset_s.unsigned_abs());
    if offset_s >= 0 {
        t.checked_add(d)
    } else {
        t.checked_sub(d)
    }
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        -100i64..100,
        Just(400 * 365 * 86_400),
        Just(-(200 * 365 * 86_400)),
        any::<i64>(),
    ]
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        -200.0f64..200.0,
        any::<f64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() * 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The geo index under arbitrary coordinates, ids, sizes, counts, TTLs,
    /// skews and instants.
    #[test]
    fn geo_calls_with_arbitrary_arguments(
        lon in any_f64(), lat in any_f64(), size in any_f64(), size2 in any_f64(),
        id in any::<u64>(), count in prop_oneof![Just(0usize), Just(usize::MAX), 0usize..50],
        ttl_ms in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 1u64..100_000],
        shards in prop_oneof![Just(0usize), Just(3), Just(256), any::<usize>()],
        split in prop::option::of(prop_oneof![Just(0usize), Just(7), Just(8), any::<usize>()]),
        skew_ms in any::<u64>(), at_off in offset(), now_off in offset(),
        rating in any_f64(), load in any::<u8>(), status in any::<u8>(), vehicle in any::<u8>(),
    ) {
        let t = Instant::now();
        let index = a_index(t);
        let cfg = IndexConfig {
            shards,
            default_ttl: Duration::from_millis(ttl_ms),
            epoch: Some(t),
            max_future_skew: Duration::from_millis(skew_ms),
            split_cells_at: split,
        };
        let _ = GeoIndex::with_config(cfg);
        let p = LonLat::new(lon, lat);
        let id = DriverId::new(id);
        let attrs = match (Rating::new(rating), VehicleType::new(vehicle), Status::new(status)) {
            (Ok(r), Ok(v), Ok(s)) => Some(Attrs { status: s, vehicle: v, rating: r, load }),
            _ => None,
        };
        if let (Ok(p), Ok(id), Some(now), Some(when)) = (p, id, at(t, now_off), at(t, at_off)) {
            let mut u = DriverUpdate::new(id, p, when).with_ttl(Duration::from_millis(ttl_ms));
            u.attrs = attrs;
            let before = index.snapshot_at(t);
            match index.update_at(u, now) {
                Ok(_) => {}
                Err(_) => prop_assert_eq!(index.snapshot_at(t), before, "a refused update changed the index"),
            }
            let _ = index.upsert_batch_at(&[u, u], now);
            let _ = index.move_at(id, p, now);
            let _ = index.compare_and_set_status_at(id, Status::AVAILABLE, Status::BUSY, now);
            let _ = index.get_at(id, now);
            for q in [
                Search::radius(p, size, Unit::Kilometers).count(count.max(1)),
                Search::radius(p, size, Unit::Meters).count(count.max(1)).any(),
                Search::boxed(p, size, size2, Unit::Miles).desc(),
                Search::member_radius(id, size, Unit::Feet).count(count.max(1)).with_hash(),
            ] {
                if let Ok(hits) = index.search_at(&q, now) {
                    prop_assert!(hits.iter().all(|h| !h.distance.is_nan()));
                }
            }
            let _ = index.remove_at(id, now);
            let _ = index.purge_expired_at(now);
        }
        index.check_invariants();
    }

    /// Limiters under arbitrary quotas, costs and instants.
    #[test]
    fn limiter_calls_with_arbitrary_arguments(
        limit in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>(), 1u32..100],
        period_ns in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 1u64..10_000_000_000],
        burst in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        costs in prop::collection::vec((any::<u32>(), offset()), 1..8),
    ) {
        let t = Instant::now();
        let Ok(q) = Quota::new(limit, Duration::from_nanos(period_ns)) else { return Ok(()); };
        let q = q.with_burst(burst).unwrap_or(q);
        let gcra = RateLimiter::new_at(Gcra::new(q), t);
        let fixed = RateLimiter::new_at(FixedWindow::new(q), t);
        let log = RateLimiter::new_at(SlidingLog::new(q), t);
        let counter = RateLimiter::new_at(SlidingCounter::new(q), t);
        for (cost, off) in costs {
            let Some(now) = at(t, off) else { continue };
            let _ = gcra.check_n_at(cost, now);
            let _ = fixed.check_n_at(cost, now);
            let _ = log.check_n_at(cost, now);
            let _ = counter.check_n_at(cost, now);
            let d = gcra.peek_at(now);
            let _ = (d.retry_after(), d.reset_after(), d.remaining());
        }
    }

    /// Caches under arbitrary capacities, TTLs and instants.
    #[test]
    fn cache_calls_with_arbitrary_arguments(
        capacity in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 1u64..1_000],
        ttl_ns in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 1u64..10_000_000_000],
        shards in prop_oneof![Just(0usize), Just(3), any::<usize>(), 1usize..64],
        offs in prop::collection::vec(offset(), 1..8),
        queue in prop_oneof![Just(0usize), Just(usize::MAX), 1usize..16],
    ) {
        let t = Instant::now();
        let built = Cache::<u64, u64>::builder(capacity.min(1 << 20))
            .time_to_live(Duration::from_nanos(ttl_ns))
            .shards(shards)
            .build();
        let _ = Cache::<u64, u64>::builder(capacity).time_to_idle(Duration::from_nanos(ttl_ns)).build();
        if let Ok(c) = built {
            for (k, off) in offs.iter().enumerate() {
                let Some(now) = at(t, *off) else { continue };
                let _ = c.insert_at(k as u64, k as u64, now);
                let _ = c.get_at(&(k as u64), now);
                let _ = c.get_or_load_at(&1_000, now, || 5);
                let _ = c.insert_with_ttl_at(7, 7, Duration::from_nanos(ttl_ns), now);
            }
            c.check_invariants();
        }
        let config = TierConfig { write_mode: WriteMode::Behind { queue_capacity: queue }, store_attempts: (queue % 4) as u32 };
        if let Ok(tier) = SharedTier::new(Cache::new(16).unwrap(), Nothing, config) {
            let a = tier.instance(Cache::new(4).unwrap());
            for (k, off) in offs.iter().enumerate() {
                let Some(now) = at(t, *off) else { continue };
                let _ = a.set_at(k as u64, 1, now);
                let _ = a.get_at(&(k as u64), now);
            }
            let _ = tier.flush();
            tier.check_invariants();
        }
    }

    /// Money, rates, fares and traces under arbitrary amounts.
    #[test]
    fn pricing_calls_with_arbitrary_arguments(
        a in any::<i64>(), b in any::<i64>(), milli in any::<u32>(), bps in any::<u32>(),
        parts in prop::collection::vec(any::<u64>(), 0..6),
        metres in any_f64(), secs in any::<u64>(),
        fixes in prop::collection::vec((any_f64(), any_f64(), any::<u64>()), 0..6),
    ) {
        let usd = |m| Money::new(m, Currency::USD);
        let _ = usd(a).checked_add(usd(b));
        let _ = usd(a).checked_mul(b);
        let _ = usd(a).mul_ratio(a, b, Rounding::HalfUp);
        let _ = usd(a).mul_bps(Bps(bps), Rounding::Down);
        let _ = usd(a).allocate(&parts);
        let _ = Capture::new(usd(a), usd(b), usd(a / 2), usd(b / 3));
        let card = RateCard::new(card()).unwrap();
        if let Ok(m) = Multiplier::from_milli(milli) {
            let route = RouteEstimate { distance_m: metres, duration: Duration::from_secs(secs) };
            if let Ok(f) = card.quote(&route, m) {
                f.check_invariants();
            }
            let trace: Vec<TracePoint> = fixes
                .iter()
                .map(|&(lon, lat, t)| TracePoint::new(lon, lat, Duration::from_millis(t)))
                .collect();
            if let Ok(f) = card.final_fare(&trace, &TraceRules::default(), m) {
                f.check_invariants();
            }
        }
    }

    /// Matching and routing under arbitrary sizes and costs.
    #[test]
    fn matching_calls_with_arbitrary_arguments(
        rows in prop_oneof![Just(usize::MAX), any::<usize>(), 0usize..6],
        cols in prop_oneof![Just(usize::MAX), any::<usize>(), 0usize..6],
        cost in any_f64(),
        n in 0usize..8,
        circuity in any_f64(), speed in any_f64(), overhead in any::<u64>(),
    ) {
        let m = CostMatrix::from_fn(rows, cols, |r, c| ((r + c) % 3 != 0).then_some(cost));
        if let Ok(m) = m {
            let a = assign_optimal(&m);
            prop_assert!(a.total_cost.is_finite());
            let _ = assign_greedy(&m);
        }
        let d = DistanceMatrix::from_fn(n, |i, j| cost.abs() * (i + j) as f64);
        if let Ok(d) = d {
            small_solve(&d);
        }
        if let Ok(e) = HaversineEta::new(circuity, speed, Duration::from_secs(overhead)) {
            prop_assert!(e.leg(ll(0.0, 0.0), ll(1.0, 1.0), VehicleType::new(0).unwrap()).is_usable());
        }
    }
}
