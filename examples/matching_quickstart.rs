//! dispatchkit::matching in one page: match a ride, assign a batch window
//! globally, batch delivery orders and offer them to dashers, route a
//! courier (TSP).
//!
//! ```text
//! cargo run --release --example matching_quickstart
//! ```

use std::time::{Duration, Instant};

use dispatchkit::geo::{Attrs, DriverId, GeoIndex, LonLat, Rating, VehicleSet, VehicleType};
use dispatchkit::matching::routing::{GeoPoints, RouteShape, SolveOptions, solve};
use dispatchkit::matching::{
    BatchingConfig, DasherConfig, DasherMatcher, DasherStatus, DriverSpot, HaversineEta,
    OfferMatcher, Order, OrderId, RideConfig, RideMatcher, RideRequest, RideStatus, RiderId,
    assign_greedy, assign_optimal, batch_orders, eta_costs,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let car = VehicleType::new(0)?;
    // Drivers on a 10 × 10 grid (~400 m apart) around Paris' Hôtel de Ville.
    let index = GeoIndex::new();
    for i in 0..100u64 {
        let pos = LonLat::new(
            2.33 + (i % 10) as f64 * 0.0055,
            48.84 + (i / 10) as f64 * 0.0036,
        )?;
        let rating = Rating::from_hundredths(440 + (i % 60) as u16)?;
        let _ = index.upsert_at(
            DriverId::new(i).unwrap(),
            pos,
            Attrs::available(car, rating),
            t0,
        )?;
    }
    let eta = HaversineEta::default(); // 1.3 circuity, 30 km/h, 60 s at pickup

    // 1. One ride: offers to the 3 best ETAs within 5 km; the second accepts.
    let matcher = RideMatcher::new(RideConfig::default(), eta.clone())?;
    let request = RideRequest {
        rider: RiderId(1),
        pickup: LonLat::new(2.3522, 48.8566)?,
        vehicles: VehicleSet::of(&[car]),
    };
    let (mut ride, step) = matcher.start_at(&index, request, t0)?;
    for o in &step.offers {
        println!(
            "offer to driver {}: ETA {:.0} s, {:.0} m away",
            o.driver,
            o.eta.as_secs_f64(),
            o.distance_m
        );
    }
    let chosen = step.offers[1].driver;
    let step = matcher.accept_at(&index, &mut ride, chosen, t0 + Duration::from_secs(4))?;
    if let RideStatus::Assigned { driver, eta } = step.status {
        println!(
            "ride assigned to driver {driver} (ETA {:.0} s); {} offers withdrawn",
            eta.as_secs_f64(),
            step.withdrawn.len()
        );
    }

    // 2. A batch window: 60 riders crowding the centre, every available
    //    driver within 1 km; exact minimum total ETA against greedy.
    let riders: Vec<RideRequest> = (0..60u64)
        .map(|i| {
            let (a, r) = (i as f64 * 2.4, 0.0004 * i as f64);
            Ok(RideRequest {
                rider: RiderId(100 + i),
                pickup: LonLat::new(2.355 + r * a.cos() * 1.5, 48.856 + r * a.sin())?,
                vehicles: VehicleSet::of(&[car]),
            })
        })
        .collect::<Result<_, dispatchkit::geo::GeoError>>()?;
    let mut drivers = Vec::new();
    index.for_each_at(t0, |v| {
        if v.attrs.status == dispatchkit::geo::Status::AVAILABLE {
            drivers.push(DriverSpot::from(v));
        }
    });
    let costs = eta_costs(&eta, &riders, &drivers, 1.0)?;
    let (exact, greedy) = (assign_optimal(&costs), assign_greedy(&costs));
    println!(
        "global assignment of {} riders: exact serves {} (mean ETA {:.0} s), greedy {} (mean ETA {:.0} s)",
        riders.len(),
        exact.pairs.len(),
        exact.total_cost / exact.pairs.len().max(1) as f64,
        greedy.pairs.len(),
        greedy.total_cost / greedy.pairs.len().max(1) as f64,
    );

    // 3. Delivery: batch 6 orders from two restaurants, offer each batch to
    //    the top 5 dashers with pay, distance and time; the best accepts.
    let p = |lon: f64, lat: f64| LonLat::new(lon, lat);
    let orders = vec![
        Order {
            id: OrderId(1),
            pickup: p(2.347, 48.853)?,
            dropoff: p(2.370, 48.860)?,
        },
        Order {
            id: OrderId(2),
            pickup: p(2.347, 48.853)?,
            dropoff: p(2.372, 48.862)?,
        },
        Order {
            id: OrderId(3),
            pickup: p(2.348, 48.854)?,
            dropoff: p(2.366, 48.858)?,
        },
        Order {
            id: OrderId(4),
            pickup: p(2.360, 48.845)?,
            dropoff: p(2.340, 48.835)?,
        },
        Order {
            id: OrderId(5),
            pickup: p(2.361, 48.846)?,
            dropoff: p(2.338, 48.836)?,
        },
        Order {
            id: OrderId(6),
            pickup: p(2.347, 48.853)?,
            dropoff: p(2.320, 48.870)?,
        },
    ];
    let batches = batch_orders(&eta, &orders, &BatchingConfig::default())?;
    let dashers = DasherMatcher::new(DasherConfig::default(), eta.clone())?;
    for b in &batches {
        let batch: Vec<Order> = b.orders.iter().map(|&i| orders[i]).collect();
        let (mut m, step) = dashers.start_at(&index, &batch, t0)?;
        let best = &step.offers[0];
        let _ = dashers.accept_at(&index, &mut m, best.dasher, t0 + Duration::from_secs(5))?;
        if let DasherStatus::Assigned(o) = m.status() {
            let ids: Vec<u64> = batch.iter().map(|o| o.id.0).collect();
            println!(
                "orders {ids:?}: dasher {} earns {:.2}, {:.1} km, {:.0} min ({:.0} s saved by batching)",
                o.dasher,
                o.earnings_cents as f64 / 100.0,
                o.metres / 1000.0,
                o.duration.as_secs_f64() / 60.0,
                b.saved_secs()
            );
        }
    }

    // 4. Routing: a courier's open path through 40 stops (exact up to 12
    //    stops, iterated local search beyond).
    let stops: Vec<geo::Point<f64>> = (0..40u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let (x, y) = (
                (h >> 40) as f64 / (1u64 << 24) as f64,
                (h >> 16 & 0xFF_FFFF) as f64 / (1u64 << 24) as f64,
            );
            geo::Point::new(2.30 + 0.1 * x, 48.83 + 0.06 * y)
        })
        .collect();
    let stops = GeoPoints::new(stops)?;
    let opts = SolveOptions {
        time_budget: Some(Duration::from_millis(200)),
        ..SolveOptions::default()
    };
    let route = solve(&stops, RouteShape::path_from(0), &opts)?;
    println!(
        "courier route: {} stops, {:.1} km (from {:.1} km greedy start, {} kicks)",
        route.route.order.len(),
        route.route.length / 1000.0,
        route.initial_length / 1000.0,
        route.iterations
    );
    Ok(())
}
