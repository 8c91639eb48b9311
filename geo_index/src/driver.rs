//! A driver as callers name, update and read it: its id, one update, the
//! outcome of an upsert and the stored view.

use std::fmt;
use std::time::{Duration, Instant};

use crate::{Attrs, GeoError, LonLat};

/// A driver id: any `u64` except `u64::MAX`, which the index reserves as
/// its empty-slot marker. The constructors reject the reserved value, so
/// every `DriverId` (including a deserialised one) is usable on every path.
///
/// ```
/// use dispatchkit_geo_index::{DriverId, GeoError};
///
/// let id = DriverId::new(42)?;
/// assert_eq!(id.get(), 42);
/// assert_eq!(DriverId::from(7u32), DriverId::new(7)?);
/// assert_eq!(DriverId::new(u64::MAX), Err(GeoError::ReservedId(u64::MAX)));
/// # Ok::<(), GeoError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "u64", into = "u64")
)]
pub struct DriverId(u64);

impl DriverId {
    /// The largest valid id, `u64::MAX - 1`.
    pub const MAX: DriverId = DriverId(crate::shard::TOMB - 1);

    /// The id `id`.
    ///
    /// # Errors
    /// [`GeoError::ReservedId`] for `u64::MAX`.
    pub const fn new(id: u64) -> Result<Self, GeoError> {
        if id == crate::shard::TOMB {
            Err(GeoError::ReservedId(id))
        } else {
            Ok(DriverId(id))
        }
    }

    /// The id as a `u64`.
    #[inline]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// An id read back from a slot or the directory, which only ever hold
    /// ids that went through [`DriverId::new`].
    #[inline]
    pub(crate) fn stored(id: u64) -> Self {
        debug_assert_ne!(id, crate::shard::TOMB);
        DriverId(id)
    }
}

impl From<u32> for DriverId {
    /// Every `u32` is a valid id.
    fn from(id: u32) -> Self {
        DriverId(u64::from(id))
    }
}

impl TryFrom<u64> for DriverId {
    type Error = GeoError;

    fn try_from(id: u64) -> Result<Self, GeoError> {
        DriverId::new(id)
    }
}

impl From<DriverId> for u64 {
    fn from(id: DriverId) -> u64 {
        id.0
    }
}

impl fmt::Display for DriverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an insert-or-move did. A dropped `Upsert` is a warning (a `Stale`
/// update changed nothing):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # use std::time::Instant;
/// # use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat};
/// # fn main() -> Result<(), dispatchkit_geo_index::GeoError> {
/// let index = GeoIndex::new();
/// index.upsert_at(DriverId::new(1)?, LonLat::new(0.0, 0.0)?, Attrs::default(), Instant::now())?;
/// # Ok(()) }
/// ```
///
/// ```
/// #![deny(unused_must_use)]
/// # use std::time::Instant;
/// # use dispatchkit_geo_index::{Attrs, DriverId, GeoIndex, LonLat, Upsert};
/// # fn main() -> Result<(), dispatchkit_geo_index::GeoError> {
/// let index = GeoIndex::new();
/// let r = index.upsert_at(DriverId::new(1)?, LonLat::new(0.0, 0.0)?, Attrs::default(), Instant::now())?;
/// assert_eq!(r, Upsert::Inserted);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a Stale upsert changed nothing; check it"]
pub enum Upsert {
    /// The driver was new.
    Inserted,
    /// The driver existed and now has the new position / attributes.
    Moved,
    /// The update is older than (or identical to) the stored one and was
    /// ignored (last writer by update time wins).
    Stale,
}

/// One update of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverUpdate {
    /// The driver.
    pub id: DriverId,
    /// Its new position.
    pub pos: LonLat,
    /// When the position was taken: the stale rule and the expiry use it.
    pub at: Instant,
    /// New attributes, or `None` to keep the current ones (a new driver
    /// gets [`Attrs::default`]).
    pub attrs: Option<Attrs>,
    /// A per-driver TTL, or `None` to keep the current one (a new driver
    /// gets the index default).
    pub ttl: Option<Duration>,
}

impl DriverUpdate {
    /// A position-only update.
    pub fn new(id: DriverId, pos: LonLat, at: Instant) -> Self {
        DriverUpdate {
            id,
            pos,
            at,
            attrs: None,
            ttl: None,
        }
    }

    /// Sets the attributes too.
    pub fn with_attrs(mut self, attrs: Attrs) -> Self {
        self.attrs = Some(attrs);
        self
    }

    /// Sets a per-driver TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A driver as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverView {
    /// Id.
    pub id: DriverId,
    /// Position.
    pub pos: LonLat,
    /// Attributes.
    pub attrs: Attrs,
    /// Time of the last accepted update (1 ms resolution).
    pub updated_at: Instant,
    /// When the driver stops being visible.
    pub expires_at: Instant,
}
