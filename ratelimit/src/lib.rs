//! Exact, lock-free rate limiters for public APIs.
//!
//! Scope (seed example 6: per-user / per-API limits with Redis `INCR` + TTL
//! and a sorted-set sliding log, several rules at once, tiers, `429` with
//! `Retry-After` and `X-RateLimit-*` headers):
//!
//! - token bucket as GCRA, fixed window, sliding log and sliding-window
//!   counter, each exact to its definition;
//! - keyed limiters over any `Hash + Eq` key with bounded memory;
//! - multi-rule policies checked atomically, resolved by tier, endpoint and
//!   key kind;
//! - legacy `X-RateLimit-*` and IETF `RateLimit` / `RateLimit-Policy` headers.
//!
//! This crate is part of [dispatchkit](https://docs.rs/dispatchkit); its
//! implementation lands with the ratelimit issue.
#![warn(missing_debug_implementations)]
