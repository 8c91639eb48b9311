//! A concurrent L1/L2 LRU+TTL cache with an L3 loader tier.
//!
//! Scope (seed example 7: L1 in-process with TTL, L2 shared, L3 the source of
//! truth; GET walks L1 → L2 → L3 and fills upward; SET writes through or
//! behind):
//!
//! - a sharded `Cache<K, V>` with capacity in entries or bytes, LRU eviction,
//!   optional frequency-based admission, per-entry TTL and time-to-idle;
//! - single-flight `get_or_load`, optional negative caching;
//! - a `TieredCache` over a user-implemented store with write-through or
//!   bounded, coalescing write-behind and cross-instance invalidation;
//! - hit / miss / eviction statistics and an eviction listener.
//!
//! This crate is part of [dispatchkit](https://docs.rs/dispatchkit); its
//! implementation lands with the cache issue.
#![warn(missing_debug_implementations)]
