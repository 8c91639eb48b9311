//! Ride matching, global batch assignment, delivery batching and TSP routing.
#![warn(missing_debug_implementations)]

mod error;
mod geodesy;
pub mod routing;

pub use error::MatchingError;
