//! Exact money, fares, per-cell surge, delivery fees, promos and payment
//! splits.
//!
//! Scope (seed example 1 steps 4–5, fares and surge per quadrant kept in
//! `surge:{city}`; example 5 steps 2 and 6, delivery fees, promos and the
//! capture split):
//!
//! - `Money` in integer minor units with ISO 4217 currencies, checked
//!   arithmetic, explicit rounding and exact allocation;
//! - rate cards, upfront quotes and final fares from GPS traces;
//! - a surge engine over H3 cells fed by `dispatchkit-geo-index` supply;
//! - delivery order totals, promo codes, capture splits and refunds.
//!
//! This crate is part of [dispatchkit](https://docs.rs/dispatchkit); its
//! implementation lands with the pricing issue.
#![warn(missing_debug_implementations)]
