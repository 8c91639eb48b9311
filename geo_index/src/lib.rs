//! A sharded, in-process index of moving drivers with Redis `GEOSEARCH`
//! semantics.
//!
//! Scope (seed example 1, step 1: `GEOADD drivers:{city}:{quadrant}` /
//! `GEORADIUS … 5 km` with a 30 s TTL on a Redis cluster):
//!
//! - insert-or-move of drivers, single and batched, with per-driver expiry
//!   and stale-update rejection;
//! - `GEOSEARCH` semantics: `FROMLONLAT` / `FROMMEMBER`, `BYRADIUS` /
//!   `BYBOX`, `ASC` / `DESC`, `COUNT n [ANY]`, `WITHDIST` / `WITHCOORD` /
//!   `WITHHASH`, plus attribute filters and k-nearest within a radius cap;
//! - spatial shards behind their own locks, geofence enter/exit events,
//!   snapshot and replay.
//!
//! This crate is part of [dispatchkit](https://docs.rs/dispatchkit); its
//! implementation lands with the geo_index issue.
#![warn(missing_debug_implementations)]
