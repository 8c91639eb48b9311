//! Exact money, fares, per-cell surge, delivery fees, promos and payment
//! splits — the fare Lambda, the `surge:{city}` sorted set and the payment
//! split of the seed design, in-process and exact to the minor unit.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use geo::Point;
//! use dispatchkit_pricing::*;
//!
//! // A rate card, loadable with serde (feature `serde`).
//! let mut book = RateBook::new();
//! book.insert("seattle", "economy", RateCardSpec {
//!     currency: Currency::USD, base: 250, distance: DistanceRate::PerMile(150),
//!     per_minute: 30, minimum_fare: 800, booking_fee: 275, cancellation_fee: 500,
//!     rounding: Rounding::HalfEven,
//! })?;
//!
//! // Surge from live demand and supply per H3 cell.
//! let engine = SurgeEngine::new(SurgeConfig::default())?;
//! let t0 = Instant::now();
//! let pickup = Point::new(-122.335, 47.608);
//! for _ in 0..4 { engine.record_request_at(pickup, t0)?; }
//! engine.recompute_at(&vec![pickup], t0);
//! let surge = engine.multiplier_at(pickup)?;
//!
//! // Upfront quote: 5 miles, 18 minutes.
//! let route = RouteEstimate { distance_m: 8_046.72, duration: Duration::from_secs(18 * 60) };
//! let fare = book.card("seattle", "economy")?.quote(&route, surge)?;
//! let lines: i64 = fare.lines().map(|l| l.amount.minor()).sum();
//! assert_eq!(lines, fare.total().minor());
//!
//! // Money never mixes currencies and splits exactly.
//! let parts = fare.total().allocate(&[70, 20, 10])?;
//! assert_eq!(Money::sum(Currency::USD, parts)?, fare.total());
//! # Ok::<(), PricingError>(())
//! ```
//!
//! # Contents
//!
//! | concept | types |
//! |---|---|
//! | money | [`Money`] (`i64` minor units), [`Currency`] (ISO 4217 + minor digits), [`Rounding`], [`Bps`], [`Multiplier`], allocation ([`Money::allocate`]) |
//! | rides | [`RateBook`], [`RateCard`], [`RouteEstimate`], [`measure_trace`] / [`TraceRules`], [`Fare`] with one [`FareLine`] per component |
//! | surge | [`SurgeEngine`], [`SurgeConfig`], [`SurgeCurve`], [`SurgeMap`] (`hottest` = `surge:{city}`), [`SupplySource`] |
//! | delivery | [`DeliveryPricing`], [`OrderRequest`], [`OrderTotal`], [`PromoBook`], [`Promo`], [`Capture`] (split and refunds) |
//!
//! Money paths use integers only: rates are [`Bps`] or [`Multiplier`]
//! (thousandths) and every division rounds by an explicit [`Rounding`]
//! (half-even by default). Errors are one enum, [`PricingError`], whose
//! variants carry the bad value and a reason.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `serde` | off | `Serialize` / `Deserialize` on public data types (rate cards, delivery pricing and surge configuration validate on the way in) |
//!
//! # Where this fits
//!
//! This crate is one module of [dispatchkit](https://docs.rs/dispatchkit)
//! (re-exported as `dispatchkit::pricing`); the module map and the rules every
//! module follows are in
//! [ARCHITECTURE.md](https://github.com/dispatchkit/dispatchkit/blob/main/ARCHITECTURE.md).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod allocation;
mod currency;
mod demand;
mod error;
mod fare;
mod hash;
mod locator;
mod money;
mod order;
mod promo;
mod rate;
mod ratecard;
mod rounding;
mod split;
mod supply;
mod surge;
mod surge_curve;
mod surge_map;
mod surge_scan;
mod trace;

pub use currency::Currency;
pub use error::PricingError;
pub use fare::{Fare, FareComponent, FareLine, MAX_FARE_DISTANCE_M, RouteEstimate};
pub use money::Money;
pub use order::{
    DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceTier, LineItem, OrderRequest,
    OrderTotal, ServiceFee, SmallOrderFee, TaxRule,
};
pub use promo::{Promo, PromoBook, PromoKind, PromoSelection, Redemption, Stacking, UserId};
pub use rate::{Bps, Multiplier};
pub use ratecard::{DistanceRate, RateBook, RateCard, RateCardSpec};
pub use rounding::Rounding;
pub use split::{Capture, Split};
pub use supply::SupplySource;
pub use surge::{RecomputeStats, SurgeConfig, SurgeEngine};
pub use surge_curve::SurgeCurve;
pub use surge_map::{CellSurge, SurgeMap};
pub use trace::{TracePoint, TraceRules, TraceSummary, measure_trace};

/// The `h3o` types that appear in this crate's API.
pub use h3o::{CellIndex, Resolution};

/// The `h3o` crate this crate is built against (cells, resolutions,
/// `LatLng`), so callers use the same version.
pub use h3o;

// Shared across threads by design (documented as `Send + Sync`): checked
// at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<SurgeEngine>();
    send_sync::<PromoBook>();
    send_sync::<RateBook>();
    send_sync::<RateCard>();
    send_sync::<DeliveryPricing>();
};
