//! Unit tests of `dasher.rs` (a child module, so they see its private items).
use super::*;
use crate::{HaversineEta, OrderId};
use dispatchkit_geo_index::GeoIndex;
use dispatchkit_geo_index::{IndexConfig, LonLat, VehicleType};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(km_east: f64) -> LonLat {
    LonLat::new(
        2.35 + km_east / (111.195 * 48.85f64.to_radians().cos()),
        48.85,
    )
    .unwrap()
}

/// Dashers (id, km east, rating, vehicle, load).
fn fleet(t0: Instant, ds: &[(u64, f64, f64, u8, u8)]) -> GeoIndex {
    let index = GeoIndex::with_config(IndexConfig {
        default_ttl: secs(600),
        ..IndexConfig::default()
    })
    .unwrap();
    for &(id, km, r, v, load) in ds {
        let mut a = Attrs::available(VehicleType::new(v).unwrap(), Rating::new(r).unwrap());
        a.load = load;
        let _ = index
            .upsert_at(DriverId::new(id).unwrap(), at(km), a, t0)
            .unwrap();
    }
    index
}

fn orders(k: usize) -> Vec<Order> {
    (0..k)
        .map(|i| Order {
            id: OrderId(i as u64),
            pickup: at(0.0),
            dropoff: at(1.0 + i as f64 * 0.3),
        })
        .collect()
}

fn ids(o: &[DasherOffer]) -> Vec<u64> {
    o.iter().map(|o| o.dasher.get()).collect()
}

fn matcher() -> DasherMatcher<HaversineEta> {
    DasherMatcher::new(DasherConfig::default(), HaversineEta::default()).unwrap()
}

#[test]
fn offers_top_five_with_pay_distance_and_time() {
    let t0 = Instant::now();
    let ds: Vec<_> = (1..=8).map(|i| (i, -0.3 * i as f64, 4.8, 0, 0)).collect();
    let index = fleet(t0, &ds);
    let (mut m, step) = matcher().start_at(&index, &orders(2), t0).unwrap();
    m.check_invariants();
    assert_eq!(ids(&step.offers), vec![1, 2, 3, 4, 5]);
    for w in step.offers.windows(2) {
        assert!(w[0].duration <= w[1].duration);
        assert!(w[0].metres <= w[1].metres);
        assert!(w[0].earnings_cents <= w[1].earnings_cents);
    }
    let o = &step.offers[0];
    assert_eq!(o.earnings_cents, Earnings::default().pay_cents(2, o.metres));
    assert!(o.first_pickup < o.duration);
    assert_eq!(o.expires_at, t0 + secs(20));
    assert_eq!(o.route.stops.len(), 4);
    // 20 s timeout: the next dashers, never those already offered.
    let s = matcher().tick_at(&index, &mut m, t0 + secs(20)).unwrap();
    m.check_invariants();
    assert_eq!(s.withdrawn.len(), 5);
    assert_eq!(ids(&s.offers), vec![6, 7, 8]);
    let s = matcher().tick_at(&index, &mut m, t0 + secs(40)).unwrap();
    m.check_invariants();
    assert_eq!(
        s.status,
        DasherStatus::Unmatched {
            reason: DasherUnmatched::NobodyAccepted,
            offers_made: 8
        }
    );
}

#[test]
fn eligibility_load_rating_vehicle_radius() {
    let t0 = Instant::now();
    let index = fleet(
        t0,
        &[
            (1, 0.1, 4.8, 0, 0),
            (2, 0.2, 4.8, 0, 2), // load 2 + 2 orders > 3
            (3, 0.3, 4.5, 0, 0), // not above 4.5
            (4, 0.4, 4.8, 2, 0), // unsuitable vehicle
            (5, 0.5, 4.8, 0, 1), // room for 2
            (6, 6.0, 4.8, 0, 0), // beyond 5 km
        ],
    );
    let cfg = DasherConfig {
        vehicles: VehicleSet::of(&[VehicleType::new(0).unwrap(), VehicleType::new(1).unwrap()]),
        ..DasherConfig::default()
    };
    let mx = DasherMatcher::new(cfg, HaversineEta::default()).unwrap();
    let (_, step) = mx.start_at(&index, &orders(2), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![1, 5]);
    let (_, step) = mx.start_at(&index, &orders(1), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![1, 2, 5]);
}

#[test]
fn accept_adds_the_load_and_racing_batches_cannot_overfill() {
    let t0 = Instant::now();
    let index = fleet(t0, &[(1, 0.1, 4.8, 0, 1), (2, 0.4, 4.8, 0, 0)]);
    let mx = matcher();
    let (mut a, sa) = mx.start_at(&index, &orders(2), t0).unwrap();
    let (mut b, sb) = mx.start_at(&index, &orders(2), t0).unwrap();
    assert_eq!(ids(&sa.offers), vec![1, 2]);
    assert_eq!(ids(&sb.offers), vec![1, 2]);
    let s = mx
        .accept_at(&index, &mut a, DriverId::new(1).unwrap(), t0 + secs(1))
        .unwrap();
    a.check_invariants();
    assert!(
        matches!(&s.status, DasherStatus::Assigned(o) if o.dasher == DriverId::new(1).unwrap())
    );
    assert_eq!(s.withdrawn, vec![DriverId::new(2).unwrap()]);
    let v = index.get_at(DriverId::new(1).unwrap(), t0).unwrap();
    assert_eq!((v.attrs.load, v.attrs.status), (3, Status::BUSY));
    // The same dasher accepts the other batch: it is full, race lost.
    let s = mx
        .accept_at(&index, &mut b, DriverId::new(1).unwrap(), t0 + secs(2))
        .unwrap();
    b.check_invariants();
    assert_eq!(s.lost_race, Some(DriverId::new(1).unwrap()));
    assert_eq!(s.status, DasherStatus::Offering);
    let s = mx
        .accept_at(&index, &mut b, DriverId::new(2).unwrap(), t0 + secs(3))
        .unwrap();
    assert!(
        matches!(&s.status, DasherStatus::Assigned(o) if o.dasher == DriverId::new(2).unwrap())
    );
    let v = index.get_at(DriverId::new(2).unwrap(), t0).unwrap();
    assert_eq!((v.attrs.load, v.attrs.status), (2, Status::AVAILABLE));
    assert!(
        mx.decline_at(&index, &mut b, DriverId::new(2).unwrap(), t0 + secs(4))
            .is_err()
    );
}

#[test]
fn declines_then_nobody_left_and_no_dashers_at_all() {
    let t0 = Instant::now();
    let index = fleet(t0, &[(1, 0.1, 4.8, 0, 0)]);
    let mx = matcher();
    let (mut m, _) = mx.start_at(&index, &orders(3), t0).unwrap();
    let s = mx
        .decline_at(&index, &mut m, DriverId::new(1).unwrap(), t0 + secs(1))
        .unwrap();
    m.check_invariants();
    assert!(matches!(
        s.status,
        DasherStatus::Unmatched {
            reason: DasherUnmatched::NobodyAccepted,
            ..
        }
    ));
    let empty = fleet(t0, &[]);
    let (m, s) = mx.start_at(&empty, &orders(1), t0).unwrap();
    m.check_invariants();
    assert!(matches!(
        s.status,
        DasherStatus::Unmatched {
            reason: DasherUnmatched::NoDashersInRange,
            ..
        }
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    let t0 = Instant::now();
    let index = fleet(t0, &[(1, 0.1, 4.8, 0, 0)]);
    let mx = matcher();
    assert!(matches!(
        mx.start_at(&index, &[], t0),
        Err(MatchingError::Empty { .. })
    ));
    assert!(matches!(
        mx.start_at(&index, &orders(4), t0),
        Err(MatchingError::TooLarge {
            size: 4,
            limit: 3,
            ..
        })
    ));
    let two = DasherMatcher::new(
        DasherConfig {
            max_orders: 2,
            ..DasherConfig::default()
        },
        HaversineEta::default(),
    )
    .unwrap();
    assert!(matches!(
        two.start_at(&index, &orders(3), t0),
        Err(MatchingError::TooLarge { limit: 2, .. })
    ));
    for bad in [
        DasherConfig {
            max_orders: 0,
            ..DasherConfig::default()
        },
        DasherConfig {
            max_orders: 8,
            ..DasherConfig::default()
        },
        DasherConfig {
            candidates: 0,
            ..DasherConfig::default()
        },
        DasherConfig {
            offers_per_round: 21,
            ..DasherConfig::default()
        },
        DasherConfig {
            radius_steps_km: vec![],
            ..DasherConfig::default()
        },
        DasherConfig {
            min_rating: Rating::MAX,
            ..DasherConfig::default()
        },
        DasherConfig {
            full_status: Status::AVAILABLE,
            ..DasherConfig::default()
        },
    ] {
        assert!(DasherMatcher::new(bad, HaversineEta::default()).is_err());
    }
    let (mut m, _) = mx.start_at(&index, &orders(1), t0 + secs(5)).unwrap();
    let before = m.clone();
    assert!(
        mx.accept_at(&index, &mut m, DriverId::new(9).unwrap(), t0 + secs(6))
            .is_err()
    );
    assert!(mx.tick_at(&index, &mut m, t0).is_err());
    assert_eq!(m, before);
    assert!(mx.candidates_at(&index, &orders(1), 0.0, &[], t0).is_err());
}

fn config(default_cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}

proptest::proptest! {
    #![proptest_config(config(64))]

    /// The naive twin of state 1: every live dasher, filtered by a
    /// linear scan, routed exactly from its position, the k nearest
    /// kept and ranked by route time, equals `candidates_at`.
    #[test]
    fn candidates_match_a_linear_scan(
        ds in proptest::collection::vec((-7.0..7.0f64, 4.0..=5.0f64, 0u8..3, 0u8..4), 0..30),
        k in 1usize..=3,
    ) {
        let t0 = Instant::now();
        let ds: Vec<(u64, f64, f64, u8, u8)> = ds
            .into_iter()
            .enumerate()
            .map(|(i, (km, r, v, l))| (i as u64, km, (r * 100.0).round() / 100.0, v, l))
            .collect();
        let index = fleet(t0, &ds);
        let cfg = DasherConfig { candidates: 6, ..DasherConfig::default() };
        let mx = DasherMatcher::new(cfg, HaversineEta::default()).unwrap();
        let os = orders(k);
        let got = mx.candidates_at(&index, &os, 5.0, &[], t0).unwrap();
        let eta = HaversineEta::default();
        let mut near: Vec<(f64, u64, f64)> = Vec::new();
        index.for_each_at(t0, |v| {
            let d = v.pos.distance_m(os[0].pickup);
            if d <= 5_000.0 && v.attrs.rating.hundredths() > 450 && v.attrs.load as usize + k <= 3
                && v.attrs.status == Status::AVAILABLE {
                let r = batch_route(&eta, v.attrs.vehicle, Some(v.pos), &os).unwrap();
                near.push((d, v.id.get(), r.secs));
            }
        });
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        near.truncate(6);
        near.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)));
        proptest::prop_assert_eq!(ids(&got), near.iter().map(|n| n.1).collect::<Vec<_>>());
    }
}

#[test]
fn earnings_are_integer_cents() {
    let e = Earnings::default();
    assert_eq!(e.pay_cents(1, 0.0), 400);
    assert_eq!(e.pay_cents(3, 2_508.0), 300 + 300 + 150);
    assert_eq!(e.pay_cents(3, f64::NAN), 600);
    let huge = Earnings {
        base_cents: i64::MAX,
        ..e
    };
    assert_eq!(huge.pay_cents(3, 1e30), i64::MAX);
}
