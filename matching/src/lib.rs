//! Ride matching, global batch assignment, delivery batching and TSP routing.
#![warn(missing_debug_implementations)]

mod assign;
mod error;
mod geodesy;
mod lapjv;
pub mod routing;

pub use assign::{Assignment, CostMatrix, assign_greedy, assign_optimal};
pub use error::MatchingError;
