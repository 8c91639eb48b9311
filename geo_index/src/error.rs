use thiserror::Error;

use crate::DriverId;

/// Everything that can go wrong in the geo index. Every error leaves the
/// index unchanged.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum GeoError {
    /// A coordinate is NaN, infinite or outside the Redis GEO ranges
    /// (longitude −180..=180, latitude −85.05112878..=85.05112878).
    #[error("invalid coordinate ({lon}, {lat}): {reason}")]
    InvalidCoordinate {
        /// The longitude given.
        lon: f64,
        /// The latitude given.
        lat: f64,
        /// Which range was violated.
        reason: &'static str,
    },
    /// A search radius, box side or TTL is NaN, infinite, zero or negative.
    #[error("invalid {what} {value}: {reason}")]
    InvalidValue {
        /// Which parameter ("radius", "box width", …).
        what: &'static str,
        /// The value given.
        value: f64,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A `COUNT` of 0 (Redis: "COUNT must be > 0"), or `ANY` without `COUNT`.
    #[error("invalid COUNT {count:?}: {reason}")]
    InvalidCount {
        /// The count given, if any.
        count: Option<usize>,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A unit string other than `m`, `km`, `ft`, `mi` (any case).
    #[error("unsupported unit `{0}`: use m, km, ft or mi")]
    InvalidUnit(String),
    /// An attribute is out of its range (rating above 5.00, vehicle type
    /// above 63, load above 7, status above 31).
    #[error("invalid {what} {value}: {reason}")]
    InvalidAttribute {
        /// Which attribute.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range.
        reason: &'static str,
    },
    /// The driver is not in the index, or it has expired.
    #[error("unknown driver {0}: not in the index or expired")]
    UnknownDriver(DriverId),
    /// `u64::MAX` is reserved by the index as an empty-slot marker.
    #[error("driver id {0} is reserved")]
    ReservedId(DriverId),
    /// A configuration value is out of range.
    #[error("invalid configuration `{what}` = {value}: {reason}")]
    InvalidConfig {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range.
        reason: &'static str,
    },
    /// A geofence polygon is empty, not closed, or has invalid vertices.
    #[error("invalid geofence: {0}")]
    InvalidFence(&'static str),
    /// A geofence id that is not registered.
    #[error("unknown geofence {0}")]
    UnknownFence(u64),
}
