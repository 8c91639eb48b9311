//! Routing: travelling-salesman tours and open paths over stops.
//!
//! | need | function | cost |
//! |---|---|---|
//! | best route, whatever the size | [`solve`] | Held–Karp up to 12 stops, else construction + iterated local search |
//! | exact route, ≤ 16 stops | [`held_karp`] | O(2ⁿ·n²) |
//! | a first route | [`construct`] ([`Construction::Greedy`] or [`Construction::NearestNeighbour`]) | O(n²) |
//! | improve a given route | [`improve`] (2-opt + Or-opt + Lin–Kernighan chains, then double-bridge kicks) | bounded by kicks, a stall rule and time |
//! | read TSPLIB | [`TsplibInstance::parse`], [`parse_tour`] | O(text) |
//!
//! Stops are given by anything that implements [`Distances`]:
//! [`GeoPoints`] (haversine metres), [`PlanarPoints`] (TSPLIB `EUC_2D`,
//! `CEIL_2D`, `ATT`, plain Euclidean) or a [`DistanceMatrix`]. Routes are
//! closed tours or open paths with optional fixed ends ([`RouteShape`]).
//!
//! ```
//! use dispatchkit_matching::routing::{solve, GeoPoints, RouteShape, SolveOptions};
//! use geo::Point;
//!
//! // A courier at stop 0 with five drops around Berlin Mitte.
//! let stops = GeoPoints::new(vec![
//!     Point::new(13.4050, 52.5200),
//!     Point::new(13.3777, 52.5163),
//!     Point::new(13.4132, 52.5219),
//!     Point::new(13.3889, 52.5170),
//!     Point::new(13.4250, 52.5080),
//!     Point::new(13.3500, 52.5145),
//! ])?;
//! let best = solve(&stops, RouteShape::path_from(0), &SolveOptions::default())?;
//! assert!(best.exact);
//! assert_eq!(best.route.order[0], 0);
//! # Ok::<(), dispatchkit_matching::MatchingError>(())
//! ```

mod construct;
mod distances;
mod held_karp;
mod ils;
mod lk;
mod local_search;
mod neighbours;
mod problem;
mod route;
mod solve;
mod tsplib;

pub use construct::{Construction, construct};
pub use distances::{
    DENSE_LIMIT, DistanceMatrix, Distances, GeoPoints, MAX_DISTANCE, PlanarMetric, PlanarPoints,
};
pub use held_karp::{HELD_KARP_LIMIT, held_karp};
pub use local_search::Moves;
pub use route::{MAX_STOPS, Route, RouteShape, route_length};
pub use solve::{Solution, SolveOptions, improve, solve};
pub use tsplib::{TsplibInstance, parse_tour};
