//! Ride matching, global batch assignment, delivery batching and TSP
//! routing on top of `dispatchkit-geo-index`: the decision logic the seed
//! design spreads over Step Functions and Lambdas (example 1 step 2, the
//! matching workflow; example 5 step 3, dasher matching with batching and
//! TSP), in-process, with quality measured against known optima.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dispatchkit_geo_index::{
//!     Attrs, DriverId, GeoIndex, IndexConfig, LonLat, Rating, VehicleSet, VehicleType,
//! };
//! use dispatchkit_matching::{HaversineEta, OfferMatcher, RideConfig, RideMatcher, RideRequest, RideStatus, RiderId};
//!
//! // Drivers stay online for 2 min without a location update.
//! let index = GeoIndex::with_config(IndexConfig { default_ttl: Duration::from_secs(120), ..IndexConfig::default() })?;
//! let t0 = Instant::now();
//! let car = VehicleType::new(0)?;
//! for i in 0..20u64 {
//!     let pos = LonLat::new(-73.99 + 0.002 * i as f64, 40.75)?;
//!     index.upsert_at(DriverId::new(i)?, pos, Attrs::available(car, Rating::new(4.8)?), t0)?;
//! }
//! // Seed defaults: 5 km then 10 km, rating > 4.5, ETA for the 10 nearest,
//! // offers to the top 3, 30 s to answer.
//! let matcher = RideMatcher::new(RideConfig::default(), HaversineEta::default())?;
//! let req = RideRequest { rider: RiderId(7), pickup: LonLat::new(-73.985, 40.751)?, vehicles: VehicleSet::of(&[car]) };
//! let (mut ride, step) = matcher.start_at(&index, req, t0)?;
//! assert_eq!(step.offers.len(), 3);
//!
//! // Nobody answers: after 30 s the radius widens to drivers not offered yet.
//! let step = matcher.tick_at(&index, &mut ride, t0 + Duration::from_secs(30))?;
//! assert_eq!(step.withdrawn.len(), 3);
//! let driver = step.offers[0].driver;
//! let step = matcher.accept_at(&index, &mut ride, driver, t0 + Duration::from_secs(31))?;
//! assert!(matches!(step.status, RideStatus::Assigned { .. }));
//! # Ok::<(), dispatchkit_matching::MatchingError>(())
//! ```
//!
//! # What is here
//!
//! | concern | API | method |
//! |---|---|---|
//! | ETA | [`EtaModel`] (plug a mapping service), [`HaversineEta`] | haversine × circuity ÷ speed per vehicle type + pickup overhead |
//! | ride matching | [`RideMatcher`], [`RideMatch`] | event-driven state machine: offers, accept / decline / timeout with `now`, radius steps, atomic claim in the index |
//! | global assignment | [`assign_optimal`], [`assign_optimal_penalized`], [`assign_greedy`], [`eta_costs`] | exact rectangular assignment with "no edge" (shortest augmenting paths, Jonker–Volgenant), greedy baseline, unassigned riders reported |
//! | delivery batching | [`batch_orders`], [`batch_route`] | savings-based clustering with a delay slack; exact pickup-before-drop-off routes for ≤ 3 orders |
//! | dasher matching | [`DasherMatcher`], [`DasherMatch`] | offers to the top 5 with pay, distance and time; 20 s timeout → next dashers; atomic load claim |
//! | routing / TSP | [`routing`] | Held–Karp, greedy / nearest-neighbour, 2-opt + Or-opt with neighbour lists and don't-look bits, iterated local search, TSPLIB reader |
//!
//! Time is a parameter (`start_at`, `accept_at`, `tick_at`, … take `now`;
//! the plain forms read the clock once); money is integer cents; bad input
//! (empty stop lists, NaN coordinates, batches over the limit, `k = 0`,
//! unknown ids, negative speeds) is a typed [`MatchingError`], never a
//! panic, and leaves every structure unchanged.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize` / `Deserialize` on configs, requests, offers, routes, assignments and TSPLIB instances |
//!
//! # Where this fits
//!
//! This crate is one module of [dispatchkit](https://docs.rs/dispatchkit)
//! (re-exported as `dispatchkit::matching`); the module map and the rules every
//! module follows are in
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod assign;
mod batch_route;
mod batching;
mod dasher;
mod error;
mod eta;
mod geodesy;
mod machine;
mod offers;
mod ride;
pub mod routing;
mod sap;

pub use assign::{
    Assignment, CostMatrix, DriverSpot, assign_greedy, assign_optimal, assign_optimal_penalized,
    eta_costs,
};
pub use batch_route::{BatchRoute, MAX_BATCH, Order, OrderId, Stop, StopKind, batch_route};
pub use batching::{Batch, BatchingConfig, batch_orders};
pub use dasher::{
    DasherConfig, DasherMatch, DasherMatcher, DasherOffer, DasherStatus, DasherStep,
    DasherUnmatched, Earnings,
};
pub use error::MatchingError;
pub use eta::{EtaModel, HaversineEta, Leg};
pub use machine::{OfferMatcher, OfferStep};
pub use ride::{
    RideConfig, RideMatch, RideMatcher, RideOffer, RideRequest, RideStatus, RideStep, RiderId,
    UnmatchedReason,
};

// Shared across threads by design (documented as `Send + Sync`): checked
// at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RideMatcher<HaversineEta>>();
    send_sync::<DasherMatcher<HaversineEta>>();
    send_sync::<CostMatrix>();
    send_sync::<routing::DistanceMatrix>();
};
