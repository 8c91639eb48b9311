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
    /// `u64::MAX` is reserved by the index as an empty-slot marker;
    /// [`DriverId::new`] rejects it.
    #[error("driver id {0} is reserved: the index uses u64::MAX as its empty-slot marker")]
    ReservedId(u64),
    /// An update dated further after the processing time than the index's
    /// [`IndexConfig::max_future_skew`](crate::IndexConfig::max_future_skew):
    /// accepting it would make every later real update of the driver stale
    /// and keep the driver visible past its TTL.
    #[error(
        "update dated {ahead_ms} ms after the processing time: at most {max_skew_ms} ms of clock skew is accepted (IndexConfig::max_future_skew)"
    )]
    FutureUpdate {
        /// How far the update time is ahead of the processing time, ms.
        ahead_ms: u64,
        /// The accepted skew, ms.
        max_skew_ms: u64,
    },
    /// A time the index cannot store: before its epoch or more than 2^40 ms
    /// (34.8 years) after it, or a snapshot age that puts an update there.
    #[error("time {offset_ms} ms from the index's epoch is out of range: {reason}")]
    TimeOutOfRange {
        /// Milliseconds from the index's epoch (negative: before it).
        offset_ms: i128,
        /// Which limit was crossed.
        reason: &'static str,
    },
    /// A snapshot that cannot be restored whole (a duplicate driver, an age
    /// outside the driver's TTL); nothing was restored.
    #[error("invalid snapshot: driver {id} (row {row}): {reason}")]
    InvalidSnapshot {
        /// Row of the offending driver in [`Snapshot::drivers`](crate::Snapshot::drivers).
        row: usize,
        /// Its id.
        id: u64,
        /// What is wrong.
        reason: &'static str,
    },
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
    /// A remote backend (Redis) could not answer: the part that failed (a
    /// directory bucket, a tile, the tile registry) and what the client
    /// reported. A failed write may have been applied in part (see
    /// `RedisGeoIndex`); reads change nothing.
    #[error("redis {part} unavailable: {reason}")]
    Unavailable {
        /// Which part: `"directory"`, `"tiles"`, `"tile registry"`, or
        /// the tile of a search ("tile 123 (column …, row …) at {key}").
        part: String,
        /// What the client reported.
        reason: String,
    },
    /// A geofence id that is not registered.
    #[error("unknown geofence {0}")]
    UnknownFence(u64),
    /// A shard number not below the index's shard count.
    #[error("unknown shard {shard}: the index has {shards} shards (0..{shards})")]
    UnknownShard {
        /// The shard given.
        shard: usize,
        /// The index's shard count.
        shards: usize,
    },
}
