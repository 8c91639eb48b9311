//! A concurrent L1/L2 cache with TTLs and an L3 loader tier.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dispatchkit_cache::{Admission, Cache};
//!
//! let menus: Cache<u32, String> = Cache::builder(10_000)
//!     .time_to_live(Duration::from_secs(30 * 60))
//!     .admission(Admission::TinyLfu)
//!     .build()?;
//! let now = Instant::now();
//! // Concurrent misses on one key run the loader once (single-flight).
//! let menu = menus.get_or_load_at(&42, now, || "pad thai, green curry".to_string());
//! assert_eq!(menus.get_at(&42, now), Some(menu));
//! assert_eq!(menus.get_at(&42, now + Duration::from_secs(30 * 60)), None);
//! # Ok::<(), dispatchkit_cache::CacheError>(())
//! ```
//!
//! Scope (seed example 7: L1 in-process with TTL, L2 shared, L3 the source
//! of truth; GET walks L1 → L2 → L3 and fills upward; SET writes through or
//! behind):
//!
//! - [`Cache`]: sharded, `Send + Sync`, capacity in entries or bytes
//!   ([`Weigher`]), S3-FIFO eviction (the default), W-TinyLFU
//!   ([`Policy::WTinyLfu`]: frequency-filtered admission, a window sized by
//!   hill climbing) or exact [`Policy::Lru`], optional TinyLFU
//!   [`Admission`] for S3-FIFO (which to pick when: [`Policy`]), per-entry TTL with a cache-wide default, time-to-idle,
//!   single-flight [`get_or_load`](Cache::get_or_load) (blocking) and
//!   [`get_or_load_async`](Cache::get_or_load_async) (a future: waiters
//!   park their task, not their thread, on any executor; a cancelled
//!   loader is replaced by a waiter), optional negative caching, [`CacheStats`] and an eviction listener with the
//!   [`EvictionCause`].
//! - [`TieredCache`]: a per-instance L1 over a shared L2 over a
//!   user-implemented [`Store`], write-through or bounded, coalescing
//!   write-behind, cross-instance invalidation.
//!
//! # Tiers across processes
//!
//! An application programs against [`Tier`]: the in-process
//! [`TieredCache`] over a [`SharedTier`] implements it, and with the
//! `redis` feature so does `RedisTieredCache` over a `RedisTier`, whose L2
//! lives in Redis (a compact serde `Codec`, TTL'd entries, `MGET` batches)
//! and which removes a written key from every process's L1 through one
//! pub/sub channel. Single-flight stays per process; write-through and
//! write-behind both work; with Redis down, reads fall through to the
//! store. The README's "Scaling out" section says when to switch.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize` / `Deserialize` on [`CacheStats`], [`Evictions`], [`EvictionCause`], [`Policy`], [`Admission`], [`UnitWeigher`], [`TierConfig`], [`TierStats`], [`WriteMode`] |
//! | `redis` | off | `RedisTier`, `RedisTieredCache`, `RedisTierConfig`, `Codec`, `Postcard` (the shared tier on Redis) |
//! | `tokio` | off | with `redis`: `RedisTieredCache::get_async` / `set_async` / `delete_async` / `invalidate_async` and `RedisTier::flush_async` over an [`AsyncStore`] (Redis calls on tokio's blocking pool). [`Cache::get_or_load_async`] and the in-process tiers' async forms need no feature |
//!
//! # Time
//!
//! Every time-dependent operation has an `_at(…, now: Instant)` form; the
//! plain form reads the clock at most once (and only when an entry involved
//! has a deadline). Expired entries are never returned and are reclaimed
//! as the cache meets them — when read or overwritten, at the eviction end
//! of a queue, by a sweep of two slab slots per write (S3-FIFO) — or by
//! [`Cache::purge_expired`]; no background thread is needed.
//!
//! # Where this fits
//!
//! This crate is one module of [dispatchkit](https://docs.rs/dispatchkit)
//! (re-exported as `dispatchkit::cache`); the module map and the rules every
//! module follows are in
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod builder;
mod cache;
mod climb;
mod error;
mod ghost;
mod load;
mod lock;
#[cfg(feature = "redis")]
mod on_redis;
mod policy;
mod shard;
mod sketch;
mod stats;
mod tier;
mod tiered;
mod time;
mod weigher;
mod write_behind;

pub use builder::{CacheBuilder, MAX_SHARDS};
pub use cache::{Cache, DefaultHashBuilder};
pub use error::{CacheError, StorePanic};
#[cfg(feature = "redis")]
pub use on_redis::{Codec, Postcard, RedisTier, RedisTierConfig, RedisTierStats, RedisTieredCache};
pub use policy::{Admission, Policy};
pub use stats::{CacheStats, EvictionCause, EvictionListener, Evictions};
pub use tier::Tier;
pub use tiered::{AsyncStore, SharedTier, Store, TierConfig, TierStats, TieredCache, WriteMode};
pub use time::MAX_TTL;
pub use weigher::{UnitWeigher, Weigher};

// Shared across threads by design (documented as `Send + Sync`): checked
// at compile time, over a store that is itself `Send + Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    struct Db;
    impl Store<u64, String> for Db {
        type Error = std::io::Error;
        fn get(&self, _: &u64) -> Result<Option<String>, Self::Error> {
            Ok(None)
        }
        fn put(&self, _: &u64, _: &String) -> Result<(), Self::Error> {
            Ok(())
        }
        fn delete(&self, _: &u64) -> Result<(), Self::Error> {
            Ok(())
        }
    }
    send_sync::<Cache<u64, String>>();
    send_sync::<SharedTier<u64, String, Db>>();
    send_sync::<TieredCache<u64, String, Db>>();
};
