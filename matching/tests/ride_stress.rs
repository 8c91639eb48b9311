//! Many riders on several threads racing for few drivers through one
//! shared index: no driver is ever assigned twice, and the races happen.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dispatchkit_geo_index::{
    Attrs, DriverId, GeoIndex, IndexConfig, LonLat, Rating, Status, VehicleSet, VehicleType,
};
use dispatchkit_matching::{
    HaversineEta, OfferMatcher, RideConfig, RideMatcher, RideRequest, RideStatus, RiderId,
};

const THREADS: usize = 4;
const RIDERS_PER_THREAD: usize = 150;
const DRIVERS: u64 = 120;

#[test]
fn riders_racing_for_few_drivers_never_double_book() {
    let t0 = Instant::now();
    let index = Arc::new(
        GeoIndex::with_config(IndexConfig {
            default_ttl: Duration::from_secs(3600),
            ..IndexConfig::default()
        })
        .unwrap(),
    );
    let car = VehicleType::new(0).unwrap();
    for i in 0..DRIVERS {
        // A 12 × 10 grid, ~300 m apart, around Paris.
        let pos = LonLat::new(
            2.33 + (i % 12) as f64 * 0.004,
            48.85 + (i / 12) as f64 * 0.0027,
        )
        .unwrap();
        let _ = index
            .upsert_at(
                DriverId::new(i).unwrap(),
                pos,
                Attrs::available(car, Rating::new(4.8).unwrap()),
                t0,
            )
            .unwrap();
    }
    let matcher =
        Arc::new(RideMatcher::new(RideConfig::default(), HaversineEta::default()).unwrap());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (index, matcher, barrier) = (index.clone(), matcher.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut assigned = Vec::new();
                let mut lost = 0u64;
                let mut unmatched = 0u64;
                for i in 0..RIDERS_PER_THREAD {
                    let now = t0 + Duration::from_millis(i as u64);
                    // Every thread's i-th rider stands at the same spot, so
                    // they are offered the same drivers at the same moment.
                    let pickup = LonLat::new(2.35 + (i % 5) as f64 * 0.002, 48.86).unwrap();
                    let req = RideRequest {
                        rider: RiderId((t * RIDERS_PER_THREAD + i) as u64),
                        pickup,
                        vehicles: VehicleSet::of(&[car]),
                    };
                    // All threads search before any accepts: the window
                    // between an offer and its accept, in which another
                    // rider's accept can take the driver.
                    barrier.wait();
                    let (mut m, _) = matcher.start_at(&index, req, now).unwrap();
                    barrier.wait();
                    // Every offered driver accepts, best ETA first, until one
                    // claim wins or the match gives up.
                    while let RideStatus::Offering = m.status() {
                        let first = m.open_offers()[0].driver;
                        let step = matcher.accept_at(&index, &mut m, first, now).unwrap();
                        lost += u64::from(step.lost_race.is_some());
                    }
                    match m.status() {
                        RideStatus::Assigned { driver, .. } => assigned.push(driver),
                        _ => unmatched += 1,
                    }
                }
                (assigned, lost, unmatched)
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut lost, mut unmatched) = (0, 0);
    for h in handles {
        let (a, l, u) = h.join().unwrap();
        all.extend(a);
        lost += l;
        unmatched += u;
    }
    let distinct: HashSet<DriverId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a driver was assigned twice");
    // Every driver within reach got exactly one rider; the rest gave up.
    assert_eq!(all.len() as u64, DRIVERS);
    assert_eq!(unmatched, (THREADS * RIDERS_PER_THREAD) as u64 - DRIVERS);
    let mut busy = 0;
    index.for_each_at(t0, |v| busy += usize::from(v.attrs.status == Status::BUSY));
    assert_eq!(busy, all.len(), "index status agrees with the assignments");
    // The races really happened: claims lost to another thread's rider.
    assert!(lost > 0, "no contention observed");
    eprintln!(
        "{} assigned, {unmatched} unmatched, {lost} lost races",
        all.len()
    );
    index.check_invariants();
}
