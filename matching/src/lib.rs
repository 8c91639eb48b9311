//! Ride matching, global batch assignment, delivery batching and TSP routing.
#![warn(missing_debug_implementations)]

mod assign;
mod batch_route;
mod batching;
mod dasher;
mod error;
mod eta;
mod geodesy;
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
pub use ride::{
    RideConfig, RideMatch, RideMatcher, RideOffer, RideRequest, RideStatus, RideStep, RiderId,
    UnmatchedReason,
};
