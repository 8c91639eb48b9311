//! The crate's one error type.

use std::time::Duration;

use crate::{Currency, Money};

/// Everything that can go wrong in `dispatchkit-pricing`.
///
/// Every variant carries the offending value and a reason; an operation that
/// returns an error leaves every structure it was called on unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// Two amounts in different currencies met in one operation.
    #[error("currency mismatch: expected {expected}, found {found}")]
    CurrencyMismatch {
        /// The currency the operation works in.
        expected: Currency,
        /// The other amount's currency.
        found: Currency,
    },
    /// An intermediate or final amount does not fit in `i64` minor units.
    #[error("arithmetic overflow in {op} on {value} minor units")]
    Overflow {
        /// The operation (`"add"`, `"multiply"`, …).
        op: &'static str,
        /// The left operand, in minor units.
        value: i64,
    },
    /// A currency code that is not a known ISO 4217 code.
    #[error("unknown currency code `{code}`")]
    UnknownCurrency {
        /// The code as given.
        code: String,
    },
    /// A custom currency definition that is malformed.
    #[error("invalid currency `{code}`: {reason}")]
    InvalidCurrency {
        /// The code as given.
        code: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An amount that must not be negative is.
    #[error("negative amount for {what}: {value} minor units ({reason})")]
    NegativeAmount {
        /// Which amount (`"base"`, `"unit_price"`, …).
        what: String,
        /// The amount, in minor units.
        value: i64,
        /// Why it must not be negative.
        reason: &'static str,
    },
    /// A ratio, rate or percentage that is out of its range.
    #[error("invalid {what}: {value} ({reason})")]
    InvalidRate {
        /// Which parameter.
        what: &'static str,
        /// The value as given.
        value: i64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Ratios that cannot split an amount.
    #[error("invalid allocation over {parts} parts: {reason}")]
    InvalidAllocation {
        /// Number of ratios given.
        parts: usize,
        /// Why the ratios were rejected.
        reason: &'static str,
    },
    /// No rate card for this city.
    #[error("unknown city `{city}`")]
    UnknownCity {
        /// The city as given.
        city: String,
    },
    /// The city has no rate card for this vehicle type.
    #[error("unknown vehicle type `{vehicle}` in city `{city}`")]
    UnknownVehicle {
        /// The city.
        city: String,
        /// The vehicle type as given.
        vehicle: String,
    },
    /// A distance that is not a finite number of metres `>= 0`.
    #[error("invalid distance {value} m: {reason}")]
    InvalidDistance {
        /// The distance as given, metres.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A trip duration that cannot be priced.
    #[error("invalid duration {value:?}: {reason}")]
    InvalidDuration {
        /// The duration as given.
        value: Duration,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A GPS point of a trace that cannot be used.
    #[error("invalid GPS point #{index} (lon {lon}, lat {lat}): {reason}")]
    InvalidGpsPoint {
        /// Position of the point in the trace.
        index: usize,
        /// Its longitude.
        lon: f64,
        /// Its latitude.
        lat: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A trace that cannot give a distance.
    #[error("invalid GPS trace of {points} points ({rejected} rejected): {reason}")]
    InvalidTrace {
        /// Number of points in the trace.
        points: usize,
        /// Points dropped by the jump filter.
        rejected: usize,
        /// Why the trace was rejected.
        reason: &'static str,
    },
    /// A position that is not a valid coordinate.
    #[error("invalid position (lon {lon}, lat {lat}): {reason}")]
    InvalidPosition {
        /// Longitude as given.
        lon: f64,
        /// Latitude as given.
        lat: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No promo with this code.
    #[error("unknown promo code `{code}`")]
    UnknownPromo {
        /// The code as given.
        code: String,
    },
    /// The promo expired.
    #[error("promo `{code}` expired {expired_for:?} ago")]
    PromoExpired {
        /// The code.
        code: String,
        /// How long ago it expired.
        expired_for: Duration,
    },
    /// The user already used the promo as often as allowed.
    #[error("promo `{code}` already used {uses} times by user {user} (limit {limit})")]
    PromoUsageExceeded {
        /// The code.
        code: String,
        /// The user.
        user: u64,
        /// Uses so far.
        uses: u32,
        /// The per-user limit.
        limit: u32,
    },
    /// The order or fare is below the promo's minimum subtotal.
    #[error("promo `{code}` needs a subtotal of at least {minimum}, got {subtotal}")]
    PromoMinimumNotMet {
        /// The code.
        code: String,
        /// The subtotal the promo was tried on.
        subtotal: Money,
        /// The promo's minimum.
        minimum: Money,
    },
    /// Two promos that may not be combined.
    #[error("promo `{code}` cannot be combined with `{other}`: {reason}")]
    PromoNotStackable {
        /// The promo that was rejected.
        code: String,
        /// The promo it conflicts with.
        other: String,
        /// The stacking rule that forbids it.
        reason: &'static str,
    },
    /// A promo that does not apply to this kind of purchase.
    #[error("promo `{code}` does not apply here: {reason}")]
    PromoNotApplicable {
        /// The code.
        code: String,
        /// Why.
        reason: &'static str,
    },
    /// A [`Redemption`](crate::Redemption) given back to a promo book
    /// that did not make it; nothing changed.
    #[error("redemption of user {user} was made by another promo book")]
    ForeignRedemption {
        /// The user of the redemption.
        user: u64,
    },
    /// A deserialised record (fare, order total, capture) whose parts do
    /// not add up or break an invariant its constructor guarantees.
    #[error("invalid {what} record: {reason}")]
    InvalidRecord {
        /// Which record.
        what: &'static str,
        /// The broken invariant.
        reason: &'static str,
    },
    /// A promo definition that is malformed.
    #[error("invalid promo `{code}`: {reason}")]
    InvalidPromo {
        /// The code.
        code: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No tax rule for this jurisdiction.
    #[error("unknown tax jurisdiction `{jurisdiction}`")]
    UnknownJurisdiction {
        /// The jurisdiction as given.
        jurisdiction: String,
    },
    /// A delivery further than the last distance tier.
    #[error("delivery distance {distance_m} m is beyond the last tier ({max_m} m)")]
    OutOfDeliveryRange {
        /// The requested distance, metres.
        distance_m: u32,
        /// The furthest tier, metres.
        max_m: u32,
    },
    /// An order that cannot be priced.
    #[error("invalid order: {reason} (value {value})")]
    InvalidOrder {
        /// The offending value.
        value: i64,
        /// Why the order was rejected.
        reason: &'static str,
    },
    /// A fee or pricing configuration that is inconsistent.
    #[error("invalid pricing configuration `{what}` = {value}: {reason}")]
    InvalidConfig {
        /// Which parameter.
        what: &'static str,
        /// Its value.
        value: i64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A refund larger than what is still refundable.
    #[error("refund of {requested} exceeds the refundable {refundable}")]
    RefundExceedsCapture {
        /// The refund asked for.
        requested: Money,
        /// What is left of the capture.
        refundable: Money,
    },
}

impl PricingError {
    pub(crate) fn negative(what: impl Into<String>, value: i64, reason: &'static str) -> Self {
        Self::NegativeAmount {
            what: what.into(),
            value,
            reason,
        }
    }
}
