//! Unit tests of `ride.rs` (a child module, so they see its private items).
use super::*;
use crate::HaversineEta;
use dispatchkit_geo_index::GeoIndex;
use dispatchkit_geo_index::{Attrs, VehicleType};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const LAT: f64 = 52.52;
const LON: f64 = 13.40;

fn car() -> VehicleType {
    VehicleType::new(0).unwrap()
}

/// Longitude offset of `km` east of (LON, LAT).
fn east(km: f64) -> LonLat {
    let deg = km / (111.195 * LAT.to_radians().cos());
    LonLat::new(LON + deg, LAT).unwrap()
}

fn rating(x: f64) -> Rating {
    Rating::new(x).unwrap()
}

/// Drivers (id, km east, rating, vehicle) at t0, with a 10 min TTL so
/// that timeouts do not also expire them.
fn fleet(t0: Instant, drivers: &[(u64, f64, f64, u8)]) -> GeoIndex {
    let index = GeoIndex::with_config(dispatchkit_geo_index::IndexConfig {
        default_ttl: secs(600),
        ..Default::default()
    })
    .unwrap();
    for &(id, km, r, v) in drivers {
        let a = Attrs::available(VehicleType::new(v).unwrap(), rating(r));
        let _ = index
            .upsert_at(DriverId::new(id).unwrap(), east(km), a, t0)
            .unwrap();
    }
    index
}

fn matcher() -> RideMatcher<HaversineEta> {
    RideMatcher::new(RideConfig::default(), HaversineEta::default()).unwrap()
}

fn request(rider: u64) -> RideRequest {
    RideRequest {
        rider: RiderId(rider),
        pickup: east(0.0),
        vehicles: VehicleSet::of(&[car()]),
    }
}

fn ids(offers: &[RideOffer]) -> Vec<u64> {
    offers.iter().map(|o| o.driver.get()).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn accept_assigns_and_withdraws_the_other_offers() {
    let t0 = Instant::now();
    let index = fleet(
        t0,
        &[
            (1, 1.0, 4.9, 0),
            (2, 2.0, 4.9, 0),
            (3, 0.5, 4.9, 0),
            (4, 3.0, 4.9, 0),
        ],
    );
    let mx = matcher();
    let (mut m, step) = mx.start_at(&index, request(1), t0).unwrap();
    m.check_invariants();
    assert_eq!(ids(&step.offers), vec![3, 1, 2], "top 3 by ETA");
    assert!(step.offers.windows(2).all(|w| w[0].eta <= w[1].eta));
    assert_eq!(step.offers[0].expires_at, t0 + secs(30));
    let step = mx
        .accept_at(&index, &mut m, DriverId::new(1).unwrap(), t0 + secs(10))
        .unwrap();
    m.check_invariants();
    assert_eq!(
        step.withdrawn,
        vec![DriverId::new(3).unwrap(), DriverId::new(2).unwrap()]
    );
    assert!(matches!(
        step.status,
        RideStatus::Assigned { driver, .. } if driver == DriverId::from(1u32)
    ));
    assert_eq!(
        index
            .get_at(DriverId::new(1).unwrap(), t0)
            .unwrap()
            .attrs
            .status,
        Status::BUSY
    );
    assert_eq!(
        index
            .get_at(DriverId::new(3).unwrap(), t0)
            .unwrap()
            .attrs
            .status,
        Status::AVAILABLE
    );
    // The match is over: further events are refused, state unchanged.
    let before = m.clone();
    assert!(matches!(
        mx.accept_at(&index, &mut m, DriverId::new(3).unwrap(), t0 + secs(11)),
        Err(MatchingError::InvalidEvent { .. })
    ));
    assert!(mx.tick_at(&index, &mut m, t0 + secs(40)).is_err());
    assert_eq!(m, before);
}

#[test]
fn declines_move_to_the_next_candidates_at_the_same_radius() {
    let t0 = Instant::now();
    let drivers: Vec<_> = (1..=7).map(|i| (i, 0.5 * i as f64, 4.9, 0)).collect();
    let index = fleet(t0, &drivers);
    let mx = matcher();
    let (mut m, step) = mx.start_at(&index, request(1), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![1, 2, 3]);
    let s = mx
        .decline_at(&index, &mut m, DriverId::new(2).unwrap(), t0 + secs(1))
        .unwrap();
    m.check_invariants();
    assert!(s.offers.is_empty(), "other offers still open");
    let _ = mx
        .decline_at(&index, &mut m, DriverId::new(1).unwrap(), t0 + secs(2))
        .unwrap();
    let s = mx
        .decline_at(&index, &mut m, DriverId::new(3).unwrap(), t0 + secs(3))
        .unwrap();
    m.check_invariants();
    assert_eq!(ids(&s.offers), vec![4, 5, 6]);
    assert_eq!(s.offers[0].expires_at, t0 + secs(33), "a fresh deadline");
    assert_eq!(m.radius_step(), 0);
    for d in [4, 5, 6] {
        let _ = mx
            .decline_at(&index, &mut m, DriverId::new(d).unwrap(), t0 + secs(4))
            .unwrap();
        m.check_invariants();
    }
    assert_eq!(ids(&m.open_offers()), vec![7]);
    // Declining the last one within 10 km: nobody left.
    let s = mx
        .decline_at(&index, &mut m, DriverId::new(7).unwrap(), t0 + secs(5))
        .unwrap();
    m.check_invariants();
    assert_eq!(
        s.status,
        RideStatus::Unmatched {
            reason: UnmatchedReason::NobodyAccepted,
            offers_made: 7,
            radius_km: 10.0
        }
    );
}

#[test]
fn timeout_expands_the_radius_to_drivers_not_yet_offered() {
    let t0 = Instant::now();
    let index = fleet(
        t0,
        &[
            (1, 3.0, 4.9, 0),
            (2, 4.0, 4.9, 0),
            (3, 7.0, 4.9, 0),
            (4, 8.0, 4.9, 0),
            (5, 12.0, 4.9, 0),
        ],
    );
    let mx = matcher();
    let (mut m, step) = mx.start_at(&index, request(1), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![1, 2]);
    // Before the deadline a tick changes nothing.
    let s = mx.tick_at(&index, &mut m, t0 + secs(29)).unwrap();
    assert!(s.offers.is_empty() && s.withdrawn.is_empty());
    assert_eq!(s.status, RideStatus::Offering);
    let s = mx.tick_at(&index, &mut m, t0 + secs(30)).unwrap();
    m.check_invariants();
    assert_eq!(
        s.withdrawn,
        vec![DriverId::new(1).unwrap(), DriverId::new(2).unwrap()]
    );
    assert_eq!(
        ids(&s.offers),
        vec![3, 4],
        "10 km, only drivers not offered yet"
    );
    assert_eq!(m.radius_step(), 1);
    // An accept after the deadline is refused until the timeout is processed.
    assert!(matches!(
        mx.accept_at(&index, &mut m, DriverId::new(3).unwrap(), t0 + secs(60)),
        Err(MatchingError::InvalidEvent { .. })
    ));
    // Second timeout: the last step is over.
    let s = mx.tick_at(&index, &mut m, t0 + secs(60)).unwrap();
    m.check_invariants();
    assert_eq!(
        s.withdrawn,
        vec![DriverId::new(3).unwrap(), DriverId::new(4).unwrap()]
    );
    assert!(matches!(
        s.status,
        RideStatus::Unmatched {
            reason: UnmatchedReason::NobodyAccepted,
            offers_made: 4,
            ..
        }
    ));
    assert!(m.deadline().is_none());
}

#[test]
fn nobody_in_range_gives_up_at_once_and_radius_steps_are_configurable() {
    let t0 = Instant::now();
    let index = fleet(t0, &[(1, 12.0, 4.9, 0)]);
    let (m, step) = matcher().start_at(&index, request(1), t0).unwrap();
    m.check_invariants();
    assert_eq!(
        step.status,
        RideStatus::Unmatched {
            reason: UnmatchedReason::NoDriversInRange,
            offers_made: 0,
            radius_km: 10.0
        }
    );
    let cfg = RideConfig {
        radius_steps_km: vec![2.0, 6.0, 15.0],
        ..RideConfig::default()
    };
    let mx = RideMatcher::new(cfg, HaversineEta::default()).unwrap();
    let (m, step) = mx.start_at(&index, request(1), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![1]);
    assert_eq!(m.radius_step(), 2, "empty steps are skipped at once");
}

#[test]
fn eligibility_rating_strictly_above_vehicle_and_availability() {
    let t0 = Instant::now();
    let index = fleet(
        t0,
        &[
            (1, 1.0, 4.5, 0),
            (2, 1.1, 4.51, 0),
            (3, 1.2, 4.9, 1),
            (4, 1.3, 5.0, 0),
            (5, 0.1, 4.9, 0),
        ],
    );
    assert!(
        index
            .compare_and_set_status_at(
                DriverId::new(5).unwrap(),
                Status::AVAILABLE,
                Status::BUSY,
                t0
            )
            .unwrap()
    );
    let (_, step) = matcher().start_at(&index, request(1), t0).unwrap();
    assert_eq!(ids(&step.offers), vec![2, 4]);
    // Drivers whose location expired (TTL) are offline.
    let (_, step) = matcher()
        .start_at(&index, request(1), t0 + secs(601))
        .unwrap();
    assert!(matches!(
        step.status,
        RideStatus::Unmatched {
            reason: UnmatchedReason::NoDriversInRange,
            ..
        }
    ));
}

#[test]
fn racing_accepts_exactly_one_wins_the_other_goes_on() {
    let t0 = Instant::now();
    let index = fleet(
        t0,
        &[
            (1, 0.5, 4.9, 0),
            (2, 1.0, 4.9, 0),
            (3, 1.5, 4.9, 0),
            (4, 2.0, 4.9, 0),
        ],
    );
    let mx = matcher();
    let (mut a, sa) = mx.start_at(&index, request(1), t0).unwrap();
    let (mut b, sb) = mx.start_at(&index, request(2), t0).unwrap();
    assert_eq!(ids(&sa.offers), ids(&sb.offers));
    let wa = mx
        .accept_at(&index, &mut a, DriverId::new(1).unwrap(), t0 + secs(2))
        .unwrap();
    let wb = mx
        .accept_at(&index, &mut b, DriverId::new(1).unwrap(), t0 + secs(2))
        .unwrap();
    a.check_invariants();
    b.check_invariants();
    assert!(matches!(
        wa.status,
        RideStatus::Assigned { driver, .. } if driver == DriverId::from(1u32)
    ));
    assert_eq!(wb.lost_race, Some(DriverId::new(1).unwrap()));
    assert_eq!(wb.status, RideStatus::Offering);
    assert_eq!(
        ids(&b.open_offers()),
        vec![2, 3],
        "b keeps its other offers"
    );
    // b's other drivers accept in turn; 2 wins for b.
    let wb = mx
        .accept_at(&index, &mut b, DriverId::new(2).unwrap(), t0 + secs(3))
        .unwrap();
    assert!(matches!(
        wb.status,
        RideStatus::Assigned { driver, .. } if driver == DriverId::from(2u32)
    ));
    // When the lost race was the last open offer, the next candidate is offered.
    let (mut c, sc) = mx.start_at(&index, request(3), t0 + secs(4)).unwrap();
    assert_eq!(ids(&sc.offers), vec![3, 4]);
    let _ = mx
        .decline_at(&index, &mut c, DriverId::new(4).unwrap(), t0 + secs(5))
        .unwrap();
    assert!(
        index
            .compare_and_set_status_at(
                DriverId::new(3).unwrap(),
                Status::AVAILABLE,
                Status::BUSY,
                t0
            )
            .unwrap()
    );
    let s = mx
        .accept_at(&index, &mut c, DriverId::new(3).unwrap(), t0 + secs(6))
        .unwrap();
    c.check_invariants();
    assert_eq!(s.lost_race, Some(DriverId::new(3).unwrap()));
    assert!(matches!(
        s.status,
        RideStatus::Unmatched {
            reason: UnmatchedReason::NobodyAccepted,
            ..
        }
    ));
}

#[test]
fn bad_events_and_configs_are_typed_errors() {
    let t0 = Instant::now();
    let index = fleet(t0, &[(1, 0.5, 4.9, 0), (2, 1.0, 4.9, 0)]);
    let mx = matcher();
    let (mut m, _) = mx.start_at(&index, request(1), t0 + secs(5)).unwrap();
    let before = m.clone();
    // Unknown driver / not offered.
    assert!(
        mx.accept_at(&index, &mut m, DriverId::new(99).unwrap(), t0 + secs(6))
            .is_err()
    );
    assert!(
        mx.decline_at(&index, &mut m, DriverId::new(99).unwrap(), t0 + secs(6))
            .is_err()
    );
    // From the past.
    assert!(
        mx.decline_at(&index, &mut m, DriverId::new(1).unwrap(), t0)
            .is_err()
    );
    assert!(mx.tick_at(&index, &mut m, t0).is_err());
    assert_eq!(m, before);
    let bad = [
        RideConfig {
            radius_steps_km: vec![],
            ..RideConfig::default()
        },
        RideConfig {
            radius_steps_km: vec![5.0, 5.0],
            ..RideConfig::default()
        },
        RideConfig {
            radius_steps_km: vec![-1.0],
            ..RideConfig::default()
        },
        RideConfig {
            radius_steps_km: vec![f64::NAN],
            ..RideConfig::default()
        },
        RideConfig {
            candidates: 0,
            ..RideConfig::default()
        },
        RideConfig {
            offers_per_round: 0,
            ..RideConfig::default()
        },
        RideConfig {
            offers_per_round: 11,
            ..RideConfig::default()
        },
        RideConfig {
            offer_timeout: Duration::ZERO,
            ..RideConfig::default()
        },
        RideConfig {
            min_rating: Rating::MAX,
            ..RideConfig::default()
        },
        RideConfig {
            assigned_status: Status::AVAILABLE,
            ..RideConfig::default()
        },
    ];
    for c in bad {
        assert!(
            RideMatcher::new(c.clone(), HaversineEta::default()).is_err(),
            "{c:?}"
        );
    }
    assert!(
        mx.candidates_at(&index, &request(1), -5.0, &[], t0)
            .is_err()
    );
    assert!(
        mx.candidates_at(&index, &request(1), f64::NAN, &[], t0)
            .is_err()
    );
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

fn drivers() -> impl Strategy<Value = Vec<(u64, f64, f64, u8)>> {
    prop::collection::vec((0.0..12.0f64, 4.0..=5.0f64, 0u8..2), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (km, r, veh))| (i as u64, km, (r * 100.0).round() / 100.0, veh))
            .collect()
    })
}

proptest! {
    #![proptest_config(config(128))]

    /// The naive twin of state 1: a linear scan of every live driver,
    /// filtered and ranked by ETA, equals `candidates_at`.
    #[test]
    fn candidates_match_a_linear_scan(ds in drivers(), radius in 0.5..12.0f64, exclude in prop::collection::vec(0u64..40, 0..5)) {
        let t0 = Instant::now();
        let index = fleet(t0, &ds);
        let mx = matcher();
        let req = request(1);
        let exclude: Vec<DriverId> = exclude.into_iter().map(|i| DriverId::new(i).unwrap()).collect();
        let got = mx.candidates_at(&index, &req, radius, &exclude, t0).unwrap();
        let eta = HaversineEta::default();
        let mut want: Vec<(f64, f64, u64)> = Vec::new();
        index.for_each_at(t0, |v| {
            let d = v.pos.distance_m(req.pickup);
            if d <= radius * 1000.0 && v.attrs.rating.hundredths() > 450 && v.attrs.vehicle == car()
                && v.attrs.status == Status::AVAILABLE && !exclude.contains(&v.id) {
                want.push((d, eta.pickup_eta_secs(v.pos, req.pickup, v.attrs.vehicle), v.id.get()));
            }
        });
        // The 10 nearest (the index's COUNT), then ranked by ETA.
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        want.truncate(10);
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)));
        prop_assert_eq!(ids(&got), want.iter().map(|w| w.2).collect::<Vec<_>>());
    }

    /// Random event sequences over two competing riders: invariants hold
    /// after every step, no driver is assigned twice, every assigned
    /// driver is busy in the index, and a finished match stays finished.
    #[test]
    fn random_event_sequences_keep_the_invariants(
        ds in drivers(),
        events in prop::collection::vec((0usize..2, 0u8..3, 0usize..3, 0u64..20), 1..40),
    ) {
        let t0 = Instant::now();
        let index = fleet(t0, &ds);
        let mx = matcher();
        let mut ms: Vec<RideMatch> = (0..2).map(|r| mx.start_at(&index, request(r), t0).unwrap().0).collect();
        let mut now = t0;
        for (who, kind, pick, dt) in events {
            now += secs(dt);
            let m = &mut ms[who];
            if m.status().is_final() {
                let before = m.clone();
                prop_assert!(mx.tick_at(&index, m, now).is_err());
                prop_assert_eq!(&*m, &before);
                continue;
            }
            let open = m.open_offers();
            let driver = open[pick % open.len()].driver;
            let res = match kind {
                0 => mx.accept_at(&index, m, driver, now),
                1 => mx.decline_at(&index, m, driver, now),
                _ => mx.tick_at(&index, m, now),
            };
            if res.is_err() {
                // Only an expired offer may refuse an accept / decline.
                prop_assert!(kind < 2 && m.deadline().is_some_and(|d| now >= d));
                let _ = mx.tick_at(&index, m, now).unwrap();
            }
            m.check_invariants();
        }
        let assigned: Vec<DriverId> = ms.iter().filter_map(|m| match m.status() {
            RideStatus::Assigned { driver, .. } => Some(driver),
            _ => None,
        }).collect();
        if assigned.len() == 2 {
            prop_assert_ne!(assigned[0], assigned[1]);
        }
        for d in assigned {
            prop_assert_eq!(index.get_at(d, t0).unwrap().attrs.status, Status::BUSY);
        }
    }
}
