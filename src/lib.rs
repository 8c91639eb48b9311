//! dispatchkit: the performance-critical cores of a ride-hailing, food
//! delivery or public-API platform, in-process, with no infrastructure to
//! run.
//!
//! ```
//! use dispatchkit::workload::{Fleet, MetroConfig, QueryStream, METROS};
//!
//! // The reference workload: drivers in 20 real metros, pickups where they are.
//! let config = MetroConfig { drivers: 20_000, ..MetroConfig::default() };
//! let fleet = Fleet::generate(&config)?;
//! let busiest = fleet.per_metro().iter().copied().max().unwrap_or(0);
//! assert!(busiest > 20_000 / METROS.len());
//!
//! let pickup = QueryStream::new(&config, 1)?.next_pickup();
//! assert!(pickup.point.y().abs() <= 85.05112878);
//! # Ok::<(), dispatchkit::workload::WorkloadError>(())
//! ```
//!
//! # Modules
//!
//! | module | crate | what it replaces in the seed design |
//! |---|---|---|
//! | [`geo`] | `dispatchkit-geo-index` | `GEOADD` / `GEOSEARCH` on `drivers:{city}:{quadrant}` with a 30 s TTL |
//! | [`ratelimit`] | `dispatchkit-ratelimit` | Redis `INCR` + TTL and sorted-set sliding windows |
//! | [`cache`] | `dispatchkit-cache` | L1 app cache + L2 ElastiCache + L3 DynamoDB |
//! | [`matching`] | `dispatchkit-matching` | the Step Functions matching workflow, dasher batching, TSP |
//! | [`pricing`] | `dispatchkit-pricing` | the fare Lambda, `surge:{city}`, fees and payment splits |
//! | [`workload`] | (this crate) | the seeded reference workload used by benches, examples and tests |
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize` / `Deserialize` on public data types of every module |
//!
//! The crate map and the rules every module follows (time is a parameter,
//! money is integer minor units, bad input is a typed error) are in the
//! repository's `README.md`.
#![warn(missing_debug_implementations)]

pub use dispatchkit_cache as cache;
pub use dispatchkit_geo_index as geo;
pub use dispatchkit_matching as matching;
pub use dispatchkit_pricing as pricing;
pub use dispatchkit_ratelimit as ratelimit;

pub mod workload;
