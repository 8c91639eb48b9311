//! Ride matching, global batch assignment, delivery batching and TSP routing.
//!
//! Scope (seed example 1 step 2, the matching workflow; example 5 step 3,
//! dasher matching with batching and TSP), on top of
//! `dispatchkit-geo-index`:
//!
//! - a pluggable ETA model with a documented default;
//! - the ride-matching state machine (candidates, offers, accept / decline /
//!   timeout, radius expansion, atomic assignment);
//! - global assignment (exact Hungarian / Jonker–Volgenant and greedy);
//! - order batching with a delay slack and exact pickup-before-drop-off
//!   routes;
//! - TSP: Held–Karp, construction heuristics, 2-opt, Or-opt, iterated local
//!   search, and a TSPLIB reader.
//!
//! This crate is part of [dispatchkit](https://docs.rs/dispatchkit); its
//! implementation lands with the matching issue.
#![warn(missing_debug_implementations)]
