//! Exact rate limiters for public APIs: the seed's Redis `INCR` + TTL
//! (fixed window) and sorted-set (sliding log) limiters, in-process, at
//! nanoseconds per decision, plus GCRA and the sliding-window counter,
//! multi-rule policies and standard headers.
//!
//! What is lock-free: a GCRA decision on a limiter's state (one CAS on
//! its theoretical arrival time). The window algorithms take a short
//! per-state lock; a keyed limiter finds a key's state under its shard's
//! read lock (a write lock only to insert a new key or sweep), and a policy
//! locks the states of one request's rules in a fixed order.
//!
//! ```
//! use dispatchkit_ratelimit::{ClockMap, Gcra, KeyedRateLimiter, Quota, legacy_headers};
//! use std::time::{Duration, Instant, SystemTime};
//!
//! let t0 = Instant::now();
//! // 10 requests/s per user, bursts of 20.
//! let per_user = KeyedRateLimiter::new_at(Gcra::new(Quota::per_second(10)?.with_burst(20)?), t0);
//! for _ in 0..20 {
//!     assert!(per_user.check_at(&"user123", t0).is_allowed());
//! }
//! let d = per_user.check_at(&"user123", t0);
//! assert!(!d.is_allowed());
//! assert_eq!(d.retry_after(), Some(Duration::from_millis(100)));
//! let headers = legacy_headers(&d, &ClockMap::new(t0, SystemTime::UNIX_EPOCH));
//! assert_eq!(headers[3], ("Retry-After", "1".to_string()));
//! # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
//! ```
//!
//! # Algorithms
//!
//! | type | definition | memory per key | exactness |
//! |---|---|---|---|
//! | [`Gcra`] | token bucket (rate, burst) as a theoretical arrival time | 16 B, two atomics; one CAS per grant, no write for a one-unit denial | exact to GCRA |
//! | [`FixedWindow`] | ≤ limit per aligned window (`INCR` + TTL) | 32 B | exact per window |
//! | [`SlidingLog`] | ≤ limit in every window of length W (sorted set) | 48 B + 16 B per grant time, O(limit) | exact |
//! | [`SlidingCounter`] | previous window weighted by overlap + current | 32 B | ≤ limit per aligned window, ≤ 2·limit − 1 per sliding window |
//!
//! Each runs as a [`RateLimiter`] (one state) or a [`KeyedRateLimiter`]
//! (one state per `Hash + Eq` key, sharded, with full states dropped
//! automatically and a hard cap with a [`FailMode`]). Decisions
//! ([`Decision`]) carry limit, remaining, reset and retry-after;
//! `check_n` tells "wait" (a denial with `retry_after`) from "never"
//! ([`RateLimitError::InsufficientCapacity`]); `peek` consumes nothing.
//!
//! # Time
//!
//! Every operation has an `_at` form taking `now: Instant`; the plain form
//! reads `Instant::now()` once. A `now` older than one already seen counts
//! as no time passed: nothing extra is granted and nothing panics.
//!
//! # Policies and headers
//!
//! A [`PolicyLimiter`] applies a [`RuleTable`] (tiers, endpoints, key
//! kinds; most specific row first) with several limits per request checked
//! atomically, across several subjects (user AND IP) if asked, and can swap
//! rules at run time. A key's state for the usual rule sets (up to three
//! token buckets, or a window counter and a bucket) sits inline next to the
//! key: a check hashes once and allocates nothing once the key is stored. [`legacy_headers`], [`ratelimit_policy_header`],
//! [`ratelimit_header`] and [`policy_headers`] format `X-RateLimit-*`,
//! `Retry-After` and the IETF draft's `RateLimit-Policy` / `RateLimit`
//! fields (draft-ietf-httpapi-ratelimit-headers-11).
//!
//! # Backends
//!
//! An application programs against [`KeyedLimit`] and [`PolicyLimit`];
//! the in-process [`KeyedRateLimiter`] / [`PolicyLimiter`] implement them,
//! and with the `redis` feature so do `RedisRateLimiter` /
//! `RedisPolicyLimiter`, whose state lives in a Redis server every
//! application instance shares: one Lua script call per check (or per
//! batch), at the server's clock, with the same decisions as in-process,
//! a fail mode for an unavailable server, and keys that are Redis Cluster
//! hash tags. The README's "Scaling out" section says when to switch.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize` / `Deserialize` on [`RuleTable`] and the other rule data, [`FailMode`] |
//! | `redis` | off | `RedisRateLimiter`, `RedisPolicyLimiter`, `LeasedLimiter`, `RedisConfig` (the `redis` crate, synchronous connections) |
//! | `tokio` | off | `check_n_async`, `check_n_at_async`, `peek_n_async` on `RedisRateLimiter` (one multiplexed async connection per limiter); with `tower`, the layer's Redis forms |
//! | `tower` | off | [`layer`]: `RateLimitLayer`, a tower layer for HTTP services with the IETF and legacy headers, `429` problem responses and key extractors; [`insert_headers`] into an `http::HeaderMap` |
//!
//! # Where this fits
//!
//! This crate is one module of [dispatchkit](https://docs.rs/dispatchkit)
//! (re-exported as `dispatchkit::ratelimit`); the module map and the rules every
//! module follows are in
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod algorithm;
mod backend;
mod counter_estimate;
mod decision;
mod direct;
mod error;
mod fixed_window;
mod gcra;
mod headers;
mod keyed;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "redis")]
mod on_redis;
mod policy;
mod quota;
mod sliding_counter;
mod sliding_log;
mod store;
mod time;

#[cfg(test)]
mod tests;

pub use algorithm::Algorithm;
pub use backend::{KeyedLimit, PolicyLimit};
pub use decision::Decision;
pub use direct::RateLimiter;
pub use error::{BackendErrorKind, RateLimitError};
pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
#[doc(hidden)]
pub use gcra::cas_retries_on_this_thread;
pub use headers::{
    ClockMap, legacy_headers, policy_headers, ratelimit_header, ratelimit_policy_header,
};
#[cfg(feature = "tower")]
pub use headers::{HeaderStyle, insert_headers};
pub use keyed::{DefaultHasher, FailMode, KeyedConfig, KeyedRateLimiter};
#[cfg(feature = "redis")]
pub use on_redis::{
    LeasedLimiter, RedisAlgorithm, RedisConfig, RedisKey, RedisPolicyLimiter, RedisRateLimiter,
};
pub use policy::rules::{AlgorithmKind, KeyKind, Limit, RuleSet, RuleTable, Tier, Window};
pub use policy::{
    MAX_LIMITS, MAX_NAME, PolicyDecision, PolicyInfo, PolicyLimiter, Request, RuleName,
};
pub use quota::{MAX_SPAN, Quota};
// The policy subsystem's modules by their short names inside the crate.
use policy::{compiled, entry, rule, rules};
pub use sliding_counter::SlidingCounter;
pub use sliding_log::SlidingLog;

// Shared across threads by design (documented as `Send + Sync`): checked
// at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RateLimiter<Gcra>>();
    send_sync::<RateLimiter<FixedWindow>>();
    send_sync::<RateLimiter<SlidingLog>>();
    send_sync::<RateLimiter<SlidingCounter>>();
    send_sync::<KeyedRateLimiter<u64, Gcra>>();
    send_sync::<KeyedRateLimiter<String, SlidingLog>>();
    send_sync::<PolicyLimiter<u64>>();
    send_sync::<RuleTable>();
};

// The layer and its service are shared and moved between worker threads.
#[cfg(feature = "tower")]
const _: () = {
    const fn send_sync_clone<T: Send + Sync + Clone>() {}
    type PerKey = layer::Keyed<KeyedRateLimiter<String, Gcra>, layer::HeaderKey>;
    send_sync_clone::<layer::RateLimitLayer<PerKey>>();
    send_sync_clone::<layer::RateLimitService<PerKey, ()>>();
};
