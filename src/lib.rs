//! dispatchkit: the performance-critical cores of a ride-hailing, food
//! delivery or public-API platform, in-process, with no infrastructure to
//! run.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dispatchkit::cache::Cache;
//! use dispatchkit::geo::{DriverId, DriverUpdate, Filter, GeoIndex, LonLat, Search, Unit};
//! use dispatchkit::ratelimit::{Gcra, KeyedRateLimiter, Quota};
//!
//! let t0 = Instant::now();
//! // geo: index 1,000 drivers around Seattle (one batch), find the 5
//! // nearest to a pickup.
//! let index = GeoIndex::new();
//! let batch = (0..1_000u32)
//!     .map(|i| {
//!         let pos = LonLat::new(-122.40 + f64::from(i % 40) * 0.004, 47.55 + f64::from(i / 40) * 0.004)?;
//!         Ok(DriverUpdate::new(DriverId::from(i), pos, t0))
//!     })
//!     .collect::<Result<Vec<_>, dispatchkit::geo::GeoError>>()?;
//! let report = index.upsert_batch_at(&batch, t0);
//! assert_eq!(report.inserted, 1_000);
//! let pickup = LonLat::new(-122.33, 47.61)?;
//! let q = Search::radius(pickup, 5.0, Unit::Kilometers).count(5).filter(Filter::available());
//! let nearest = index.search_at(&q, t0)?;
//! assert!(nearest.windows(2).all(|w| w[0].distance <= w[1].distance));
//!
//! // ratelimit: 10 ride requests per rider per minute.
//! let per_rider = KeyedRateLimiter::new_at(Gcra::new(Quota::per_minute(10)?), t0);
//! assert!(per_rider.check_at(&"rider-42", t0).is_allowed());
//!
//! // cache: rider profiles for 60 s.
//! let profiles: Cache<&str, String> = Cache::builder(10_000)
//!     .time_to_live(Duration::from_secs(60))
//!     .build()?;
//! let name = profiles.get_or_load_at(&"rider-42", t0, || "Ada".to_string());
//! assert_eq!(name, "Ada");
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
//! | `workload` | (this crate, feature `workload`) | the seeded reference workload used by benches, examples and tests |
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `geo`, `ratelimit`, `cache`, `matching`, `pricing` | on | one module each (`matching` and `pricing` turn `geo` on); `default-features = false, features = ["ratelimit"]` builds only the limiter and what it needs |
//! | `workload` | off | the seeded reference workload (`rand`, `rand_distr`); the benches, examples and tests turn it on |
//! | `serde` | off | `Serialize` / `Deserialize` on public data types of every enabled module, through the same checks as the constructors |
//! | `redis` | off | the Redis backends: `geo::RedisGeoIndex`, the limiters and policies, the cache's shared tier, on one server or a Redis Cluster |
//! | `tokio` | off | async checks on the Redis limiters (and the layer's Redis forms with `tower`) |
//! | `tower` | off | `ratelimit::layer`: a tower rate-limit layer for HTTP services, with the IETF headers |
//!
//! The code map is
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md);
//! the rules every module follows (time is a parameter, money is integer
//! minor units, bad input is a typed error) and the performance table are
//! in the repository's `README.md`. `cargo run --release --example city`
//! runs every module together on the 1M-driver workload.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "cache")]
pub use dispatchkit_cache as cache;
#[cfg(feature = "geo")]
pub use dispatchkit_geo_index as geo;
#[cfg(feature = "matching")]
pub use dispatchkit_matching as matching;
#[cfg(feature = "pricing")]
pub use dispatchkit_pricing as pricing;
#[cfg(feature = "ratelimit")]
pub use dispatchkit_ratelimit as ratelimit;

#[cfg(feature = "workload")]
pub mod workload;
