//! The index: insert-or-move (single and batched), attributes, expiry,
//! removal and point lookups.
//!
//! # Concurrency protocol
//!
//! - A driver's slot lives in the lock shard of its cell's tile. Its
//!   location (shard, cell, slot) is in the *directory*, a table from
//!   driver id to an `AtomicU64`, behind its own lock.
//! - A location changes only under the write lock of the shard(s) holding
//!   the slot; it is published with an atomic store under a directory read
//!   lock. Inserting or removing a directory entry takes the directory's
//!   write lock while holding the spatial shard's write lock.
//! - Lock order: spatial shards in ascending index, then the directory.
//!   A directory lock is never held while waiting for a spatial lock: a
//!   location is read, the directory lock released, the spatial lock taken
//!   and the slot checked to still hold the driver (else: retry).
//! - Searches read-lock every spatial shard their area touches, in
//!   ascending order, before reading any cell, so a driver moving between
//!   shards is seen exactly once.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dir::Directory;
use crate::fence::{FenceEvent, FenceShape, transitions};
use crate::grid::{cell_key, cell_xy, shard_of};
use crate::shard::{Loc, MAX_SHARDS, Shard, Slot, TIME_MASK};
use crate::time::Clock;
use crate::{Attrs, Fence, GeoError, LonLat, Status, Unit, haversine_m};

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

/// Index settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// How long a driver stays visible after its last update (the seed's
    /// 30 s "offline" TTL). 1 ms ..= 2^40 ms.
    pub default_ttl: Duration,
    /// Number of spatial lock shards, a power of two in 1..=4096
    /// (default 256).
    pub shards: usize,
    /// Zero of the index's millisecond timeline; default one day before the
    /// index is built. Tests pass their own `t0` for exact ms arithmetic.
    pub epoch: Option<Instant>,
    /// How far an update's time may be ahead of the processing time `now`
    /// (clock skew between a phone and the server), default 5 s. An update
    /// dated later is refused with [`GeoError::FutureUpdate`]: accepted, it
    /// would make every later real update stale until its date and keep
    /// the driver visible past its TTL.
    pub max_future_skew: Duration,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            default_ttl: Duration::from_secs(30),
            shards: 256,
            epoch: None,
            max_future_skew: Duration::from_secs(5),
        }
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

/// The outcome of [`GeoIndex::upsert_batch_at`]. Rejected updates are only
/// reported here, so dropping it is a warning:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # use std::time::Instant;
/// # use dispatchkit_geo_index::GeoIndex;
/// let index = GeoIndex::new();
/// index.upsert_batch_at(&[], Instant::now());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use = "rejected updates are only reported here"]
#[non_exhaustive]
pub struct BatchReport {
    /// New drivers.
    pub inserted: usize,
    /// Drivers moved (or re-attributed).
    pub moved: usize,
    /// Updates ignored as older than the stored state.
    pub stale: usize,
    /// Updates refused, by index in the batch, with the reason.
    pub rejected: Vec<(usize, GeoError)>,
    /// Geofence transitions the batch caused.
    pub events: Vec<FenceEvent>,
    /// Expired drivers the amortised sweep reclaimed while applying it.
    pub purged: usize,
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

/// Counters for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IndexStats {
    /// Lock acquisitions (spatial or directory) that found the lock taken
    /// and had to wait.
    pub lock_contentions: u64,
    /// Operations that found a driver's location changed under them and
    /// retried.
    pub retries: u64,
}

/// A prepared update: validated, with its cell, shards and times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prep {
    pub(crate) id: u64,
    /// A move of a known driver ([`GeoIndex::move_at`]): never inserts.
    pub(crate) must_exist: bool,
    pub(crate) pos: LonLat,
    pub(crate) key: u32,
    pub(crate) target: u32,
    pub(crate) at_ms: u64,
    pub(crate) attrs: Option<u32>,
    pub(crate) ttl_ms: Option<u64>,
    /// Processing time: an expired driver counts as absent.
    pub(crate) now_ms: u64,
    pub(crate) loc: Option<Loc>,
}

pub(crate) enum Applied {
    Inserted,
    Moved,
    Stale,
    /// A move ([`Prep::must_exist`]) of a driver that has expired.
    Absent,
    /// Raced with another writer or crosses shards: take the slow path.
    Deferred,
}

/// A sharded, in-process index of moving drivers with Redis `GEOSEARCH`
/// semantics; `Send + Sync`, share it with `Arc`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_geo_index::{Attrs, DriverId, Filter, GeoIndex, LonLat, Search, Unit};
///
/// let index = GeoIndex::new();
/// let t0 = Instant::now();
/// index.upsert_at(DriverId::new(1)?, LonLat::new(-122.3321, 47.6062)?, Attrs::default(), t0)?;
/// index.upsert_at(DriverId::new(2)?, LonLat::new(-122.3400, 47.6100)?, Attrs::default(), t0)?;
///
/// let q = Search::radius(LonLat::new(-122.33, 47.61)?, 5.0, Unit::Kilometers)
///     .count(10)
///     .filter(Filter::available());
/// let hits = index.search_at(&q, t0)?;
/// assert_eq!(hits.len(), 2);
/// assert!(hits[0].distance <= hits[1].distance);
///
/// // 30 s later, without an update, both are offline.
/// assert!(index.search_at(&q, t0 + Duration::from_secs(30))?.is_empty());
/// # Ok::<(), dispatchkit_geo_index::GeoError>(())
/// ```
pub struct GeoIndex {
    pub(crate) shards: Box<[RwLock<Shard>]>,
    pub(crate) mask: usize,
    pub(crate) dir: Directory,
    pub(crate) clock: Clock,
    pub(crate) default_ttl_ms: u64,
    pub(crate) max_skew_ms: u64,
    contended: AtomicU64,
    retries: AtomicU64,
    fences: RwLock<HashMap<u64, std::sync::Arc<FenceShape>, RandomState>>,
}

impl fmt::Debug for GeoIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIndex")
            .field("shards", &self.shards.len())
            .field("default_ttl_ms", &self.default_ttl_ms)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for GeoIndex {
    fn default() -> Self {
        GeoIndex::new()
    }
}

impl GeoIndex {
    /// An empty index with the default configuration (TTL 30 s, 256 shards).
    pub fn new() -> Self {
        // The default configuration is valid by construction.
        Self::with_config(IndexConfig::default()).expect("default IndexConfig is valid")
    }

    /// An empty index.
    ///
    /// # Errors
    /// [`GeoError::InvalidConfig`] when `shards` is not a power of two in
    /// 1..=4096 or the TTL is zero or longer than 2^40 ms.
    pub fn with_config(config: IndexConfig) -> Result<Self, GeoError> {
        let shards = config.shards;
        if !shards.is_power_of_two() || shards > MAX_SHARDS {
            return Err(GeoError::InvalidConfig {
                what: "shards",
                value: shards as u64,
                reason: "must be a power of two in 1..=4096",
            });
        }
        let default_ttl_ms = ttl_ms(config.default_ttl)?;
        Ok(GeoIndex {
            shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(),
            mask: shards - 1,
            dir: Directory::new(),
            clock: Clock::new(config.epoch),
            default_ttl_ms,
            max_skew_ms: u64::try_from(config.max_future_skew.as_millis()).unwrap_or(u64::MAX),
            contended: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            fences: RwLock::new(HashMap::default()),
        })
    }

    /// The default TTL.
    pub fn default_ttl(&self) -> Duration {
        Duration::from_millis(self.default_ttl_ms)
    }

    /// Contention and retry counters since the index was built.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            lock_contentions: self.contended.load(Relaxed),
            retries: self.retries.load(Relaxed),
        }
    }

    // ---- locks -------------------------------------------------------

    #[inline]
    pub(crate) fn write_shard(&self, s: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[s].try_write().unwrap_or_else(|| {
            self.contended.fetch_add(1, Relaxed);
            self.shards[s].write()
        })
    }

    /// The fence registry, write-locked (counted as contention when taken).
    fn write_fences(
        &self,
    ) -> RwLockWriteGuard<'_, HashMap<u64, std::sync::Arc<FenceShape>, RandomState>> {
        self.fences.try_write().unwrap_or_else(|| {
            self.contended.fetch_add(1, Relaxed);
            self.fences.write()
        })
    }

    #[inline]
    pub(crate) fn read_shard(&self, s: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[s].try_read().unwrap_or_else(|| {
            self.contended.fetch_add(1, Relaxed);
            self.shards[s].read()
        })
    }

    // ---- time --------------------------------------------------------

    #[inline]
    pub(crate) fn ttl_of(&self, shard: &Shard, slot: &Slot) -> u64 {
        if slot.custom_ttl() {
            shard
                .ttl
                .get(&slot.id)
                .copied()
                .unwrap_or(self.default_ttl_ms)
        } else {
            self.default_ttl_ms
        }
    }

    #[inline]
    pub(crate) fn is_live(&self, shard: &Shard, slot: &Slot, now_ms: u64) -> bool {
        now_ms < slot.updated_ms() + self.ttl_of(shard, slot)
    }

    pub(crate) fn view(&self, shard: &Shard, slot: &Slot) -> DriverView {
        DriverView {
            id: DriverId::stored(slot.id),
            pos: slot.pos(),
            attrs: Attrs::unpack(slot.attrs()),
            updated_at: self.clock.instant(slot.updated_ms()),
            expires_at: self
                .clock
                .instant(slot.updated_ms() + self.ttl_of(shard, slot)),
        }
    }

    // ---- writes ------------------------------------------------------

    pub(crate) fn prepare(&self, u: &DriverUpdate, now_ms: u64) -> Result<Prep, GeoError> {
        let at_ms = self.update_ms(u.at, now_ms)?;
        self.prepare_with(u, now_ms, at_ms)
    }

    /// An update time as stored (see [`Clock::update_ms`]).
    #[inline]
    pub(crate) fn update_ms(&self, at: Instant, now_ms: u64) -> Result<u64, GeoError> {
        self.clock.update_ms(at, now_ms, self.max_skew_ms)
    }

    /// [`GeoIndex::prepare`] with the update time already converted and
    /// checked.
    #[inline]
    pub(crate) fn prepare_with(
        &self,
        u: &DriverUpdate,
        now_ms: u64,
        at_ms: u64,
    ) -> Result<Prep, GeoError> {
        if let Some(a) = &u.attrs {
            a.validate()?;
        }
        let ttl_ms = u.ttl.map(ttl_ms).transpose()?;
        let (cx, cy) = cell_xy(u.pos);
        Ok(Prep {
            id: u.id.0,
            must_exist: false,
            pos: u.pos,
            key: cell_key(cx, cy),
            target: shard_of(cx, cy, self.mask) as u32,
            at_ms,
            attrs: u.attrs.map(|a| a.pack()),
            ttl_ms,
            now_ms,
            loc: None,
        })
    }

    /// Inserts a driver or moves it, setting its attributes, with update
    /// time `now`. O(1) expected.
    ///
    /// # Errors
    /// [`GeoError::ReservedId`] for `u64::MAX`; [`GeoError::InvalidAttribute`]
    /// for a load above 7. The index is unchanged on error.
    pub fn upsert_at(
        &self,
        id: DriverId,
        pos: LonLat,
        attrs: Attrs,
        now: Instant,
    ) -> Result<Upsert, GeoError> {
        self.update_at(DriverUpdate::new(id, pos, now).with_attrs(attrs), now)
    }

    /// [`GeoIndex::upsert_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::upsert_at`].
    pub fn upsert(&self, id: DriverId, pos: LonLat, attrs: Attrs) -> Result<Upsert, GeoError> {
        self.upsert_at(id, pos, attrs, Instant::now())
    }

    /// Moves a known driver, keeping its attributes and TTL. The driver's
    /// presence is checked under the same shard lock that moves it, so a
    /// concurrent removal either happens first (then this is
    /// [`GeoError::UnknownDriver`] and nothing is inserted) or after.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when the driver is not in the index or
    /// has expired at `now`; nothing changes.
    pub fn move_at(&self, id: DriverId, pos: LonLat, now: Instant) -> Result<Upsert, GeoError> {
        let now_ms = self.clock.ms(now);
        let mut p = self.prepare(&DriverUpdate::new(id, pos, now), now_ms)?;
        p.must_exist = true;
        self.upsert_slow(p)
    }

    /// Applies one [`DriverUpdate`]: `u.at` is the update time (the stale
    /// rule and the expiry use it), `now` the processing time (a driver
    /// expired at `now` counts as absent, so the update inserts it afresh).
    ///
    /// # Errors
    /// As [`GeoIndex::upsert_at`], plus [`GeoError::InvalidValue`] for a zero
    /// or overlong TTL.
    pub fn update_at(&self, u: DriverUpdate, now: Instant) -> Result<Upsert, GeoError> {
        let p = self.prepare(&u, self.clock.ms(now))?;
        self.upsert_slow(p)
    }

    /// Applies a prepared update to the locked shard `s`, which holds the
    /// driver (or is its target when `p.loc` is `None`).
    pub(crate) fn apply(
        &self,
        shard: &mut Shard,
        s: usize,
        p: &Prep,
        events: &mut Vec<FenceEvent>,
    ) -> Applied {
        match p.loc {
            None => {
                let mut table = self.dir.write();
                if table.contains(p.id) || p.target as usize != s || p.must_exist {
                    return Applied::Deferred;
                }
                let attrs = p.attrs.unwrap_or_else(|| Attrs::default().pack());
                let c = shard.cell_index(p.key);
                let i = shard.insert(
                    c,
                    Slot::new(p.id, p.pos, p.at_ms, attrs, p.ttl_ms.is_some()),
                );
                if let Some(t) = p.ttl_ms {
                    shard.ttl.insert(p.id, t);
                }
                let loc = Loc {
                    shard: s as u32,
                    cell: c,
                    slot: i,
                };
                table.insert(p.id, loc);
                if !shard.fences.is_empty() {
                    transitions(
                        DriverId::stored(p.id),
                        None,
                        (p.pos, shard.fences.at(p.pos)),
                        events,
                    );
                }
                Applied::Inserted
            }
            Some(l) => {
                let Some(cur) = shard.slot_of(l.cell, l.slot, p.id).copied() else {
                    return Applied::Deferred;
                };
                if p.must_exist && !self.is_live(shard, &cur, p.now_ms) {
                    return Applied::Absent;
                }
                let Some((next, revived)) = self.successor(shard, &cur, p) else {
                    return Applied::Stale;
                };
                if p.target as usize != s {
                    return Applied::Deferred;
                }
                set_ttl(shard, p, revived);
                if shard.cells[l.cell as usize].key == p.key {
                    *shard.slot_mut(l.cell, l.slot) = next;
                } else {
                    let loc = shard.relocate(s, l, p.key, next);
                    self.dir.set(p.id, loc);
                }
                if !shard.fences.is_empty() {
                    let old = cur.pos();
                    let old = (!revived).then(|| (old, shard.fences.at(old)));
                    transitions(
                        DriverId::stored(p.id),
                        old,
                        (p.pos, shard.fences.at(p.pos)),
                        events,
                    );
                }
                if revived {
                    Applied::Inserted
                } else {
                    Applied::Moved
                }
            }
        }
    }

    /// The slot an update leaves in place of `cur`, and whether `cur` had
    /// expired (then the update starts the driver afresh); `None` when the
    /// update is stale.
    #[inline]
    fn successor(&self, shard: &Shard, cur: &Slot, p: &Prep) -> Option<(Slot, bool)> {
        if !self.is_live(shard, cur, p.now_ms) {
            let attrs = p.attrs.unwrap_or_else(|| Attrs::default().pack());
            return Some((
                Slot::new(p.id, p.pos, p.at_ms, attrs, p.ttl_ms.is_some()),
                true,
            ));
        }
        let next = Slot::new(
            p.id,
            p.pos,
            p.at_ms,
            p.attrs.unwrap_or_else(|| cur.attrs()),
            p.ttl_ms.is_some() || cur.custom_ttl(),
        );
        (next.version() > cur.version()).then_some((next, false))
    }

    fn upsert_slow(&self, p: Prep) -> Result<Upsert, GeoError> {
        let mut events = Vec::new();
        self.upsert_slow_into(p, &mut events)
    }

    /// One update with retries: handles new drivers, cross-shard moves and
    /// races with other writers.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when `p.must_exist` and the driver is
    /// not stored (checked under the lock that would have moved it).
    pub(crate) fn upsert_slow_into(
        &self,
        mut p: Prep,
        events: &mut Vec<FenceEvent>,
    ) -> Result<Upsert, GeoError> {
        loop {
            p.loc = self.dir.get(p.id);
            if p.loc.is_none() && p.must_exist {
                return Err(GeoError::UnknownDriver(DriverId::stored(p.id)));
            }
            let t = p.target as usize;
            match p.loc {
                Some(l) if l.shard as usize != t => {
                    if let Some(r) = self.cross_move(&p, l, events) {
                        return r;
                    }
                }
                _ => {
                    let s = p.loc.map_or(t, |l| l.shard as usize);
                    let mut shard = self.write_shard(s);
                    match self.apply(&mut shard, s, &p, events) {
                        Applied::Inserted => return Ok(Upsert::Inserted),
                        Applied::Moved => return Ok(Upsert::Moved),
                        Applied::Stale => return Ok(Upsert::Stale),
                        Applied::Absent => {
                            return Err(GeoError::UnknownDriver(DriverId::stored(p.id)));
                        }
                        Applied::Deferred => {}
                    }
                }
            }
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// Moves a driver from shard `l.shard` to `p.target` holding both locks;
    /// `None` when the location went stale (retry).
    fn cross_move(
        &self,
        p: &Prep,
        l: Loc,
        events: &mut Vec<FenceEvent>,
    ) -> Option<Result<Upsert, GeoError>> {
        let (a, b) = (l.shard as usize, p.target as usize);
        let (mut first, mut second) = (self.write_shard(a.min(b)), self.write_shard(a.max(b)));
        let (from, to) = if a < b {
            (&mut *first, &mut *second)
        } else {
            (&mut *second, &mut *first)
        };
        let cur = *from.slot_of(l.cell, l.slot, p.id)?;
        if p.must_exist && !self.is_live(from, &cur, p.now_ms) {
            return Some(Err(GeoError::UnknownDriver(DriverId::stored(p.id))));
        }
        let Some((next, revived)) = self.successor(from, &cur, p) else {
            return Some(Ok(Upsert::Stale));
        };
        from.free(l.cell, l.slot);
        let ttl = from.ttl.remove(&p.id).filter(|_| !revived);
        if let Some(t) = p.ttl_ms.or(ttl) {
            to.ttl.insert(p.id, t);
        }
        let c = to.cell_index(p.key);
        let i = to.insert(c, next);
        self.dir.set(
            p.id,
            Loc {
                shard: b as u32,
                cell: c,
                slot: i,
            },
        );
        if !from.fences.is_empty() || !to.fences.is_empty() {
            let old = cur.pos();
            let old = (!revived).then(|| (old, from.fences.at(old)));
            transitions(
                DriverId::stored(p.id),
                old,
                (p.pos, to.fences.at(p.pos)),
                events,
            );
        }
        Some(Ok(if revived {
            Upsert::Inserted
        } else {
            Upsert::Moved
        }))
    }

    // ---- reads and attribute changes -----------------------------------

    /// Runs `f` on the driver's shard (write-locked) and slot location,
    /// retrying if the driver moves meanwhile; `None` if it is not stored.
    fn with_driver_mut<R>(
        &self,
        id: DriverId,
        mut f: impl FnMut(&mut Shard, usize, Loc) -> R,
    ) -> Option<R> {
        loop {
            let l = self.dir.get(id.0)?;
            let s = l.shard as usize;
            let mut shard = self.write_shard(s);
            if shard.slot_of(l.cell, l.slot, id.0).is_some() {
                return Some(f(&mut shard, s, l));
            }
            drop(shard);
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// Runs `f` on the driver's slot under a read lock; `None` if it is not
    /// stored.
    fn with_driver<R>(&self, id: DriverId, mut f: impl FnMut(&Shard, &Slot) -> R) -> Option<R> {
        loop {
            let l = self.dir.get(id.0)?;
            let shard = self.read_shard(l.shard as usize);
            if let Some(slot) = shard.slot_of(l.cell, l.slot, id.0) {
                return Some(f(&shard, slot));
            }
            drop(shard);
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// The driver as stored (`GEOPOS` plus attributes and times).
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when it is not in the index or has
    /// expired at `now`.
    pub fn get_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver(id, |shard, slot| {
            self.is_live(shard, slot, now_ms)
                .then(|| self.view(shard, slot))
        })
        .flatten()
        .ok_or(GeoError::UnknownDriver(id))
    }

    /// The driver's position (`GEOPOS`).
    ///
    /// # Errors
    /// As [`GeoIndex::get_at`].
    pub fn position_at(&self, id: DriverId, now: Instant) -> Result<LonLat, GeoError> {
        self.get_at(id, now).map(|v| v.pos)
    }

    /// Distance between two drivers in `unit` (`GEODIST`).
    ///
    /// # Errors
    /// As [`GeoIndex::get_at`], for either driver.
    pub fn distance_at(
        &self,
        a: DriverId,
        b: DriverId,
        unit: Unit,
        now: Instant,
    ) -> Result<f64, GeoError> {
        let (pa, pb) = (self.position_at(a, now)?, self.position_at(b, now)?);
        Ok(haversine_m(pa, pb) / unit.metres())
    }

    /// Replaces a live driver's attributes without moving it or refreshing
    /// its update time.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired),
    /// [`GeoError::InvalidAttribute`] for a load above 7.
    pub fn set_attrs_at(&self, id: DriverId, attrs: Attrs, now: Instant) -> Result<(), GeoError> {
        self.update_attrs_at(id, |a| *a = attrs, now).map(|_| ())
    }

    /// [`GeoIndex::set_attrs_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::set_attrs_at`].
    pub fn set_attrs(&self, id: DriverId, attrs: Attrs) -> Result<(), GeoError> {
        self.set_attrs_at(id, attrs, Instant::now())
    }

    /// Changes a live driver's attributes in place with `f`, atomically
    /// with respect to every other operation on the index; returns the new
    /// attributes. If `f` produces invalid attributes nothing changes.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired),
    /// [`GeoError::InvalidAttribute`] if `f` sets a load above 7.
    pub fn update_attrs_at(
        &self,
        id: DriverId,
        mut f: impl FnMut(&mut Attrs),
        now: Instant,
    ) -> Result<Attrs, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver_mut(id, |shard, _, l| {
            let slot = shard.cells[l.cell as usize].slots[l.slot as usize];
            if !self.is_live(shard, &slot, now_ms) {
                return Err(GeoError::UnknownDriver(id));
            }
            let mut a = Attrs::unpack(slot.attrs());
            f(&mut a);
            a.validate()?;
            shard.slot_mut(l.cell, l.slot).set_attrs(a.pack());
            Ok(a)
        })
        .unwrap_or(Err(GeoError::UnknownDriver(id)))
    }

    /// [`GeoIndex::update_attrs_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::update_attrs_at`].
    pub fn update_attrs(&self, id: DriverId, f: impl FnMut(&mut Attrs)) -> Result<Attrs, GeoError> {
        self.update_attrs_at(id, f, Instant::now())
    }

    /// Sets the status to `new` if it is `expected`, atomically: of two
    /// callers racing to claim one available driver exactly one gets
    /// `Ok(true)`.
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] (absent or expired).
    pub fn compare_and_set_status_at(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
        now: Instant,
    ) -> Result<bool, GeoError> {
        let mut won = false;
        self.update_attrs_at(
            id,
            |a| {
                won = a.status == expected;
                if won {
                    a.status = new;
                }
            },
            now,
        )?;
        Ok(won)
    }

    /// [`GeoIndex::compare_and_set_status_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::compare_and_set_status_at`].
    pub fn compare_and_set_status(
        &self,
        id: DriverId,
        expected: Status,
        new: Status,
    ) -> Result<bool, GeoError> {
        self.compare_and_set_status_at(id, expected, new, Instant::now())
    }

    /// Removes a driver visible at `now` and returns it (`ZREM`). An expired
    /// driver counts as absent: its slot is reclaimed and the result is
    /// [`GeoError::UnknownDriver`].
    ///
    /// # Errors
    /// [`GeoError::UnknownDriver`] when it is absent or expired.
    pub fn remove_at(&self, id: DriverId, now: Instant) -> Result<DriverView, GeoError> {
        let now_ms = self.clock.ms(now);
        self.with_driver_mut(id, |shard, _, l| {
            let slot = shard.cells[l.cell as usize].slots[l.slot as usize];
            let view = self.view(shard, &slot);
            let live = self.is_live(shard, &slot, now_ms);
            shard.free(l.cell, l.slot);
            shard.ttl.remove(&id.0);
            self.dir.remove(id.0);
            live.then_some(view)
        })
        .flatten()
        .ok_or(GeoError::UnknownDriver(id))
    }

    /// [`GeoIndex::remove_at`] at `Instant::now()`.
    ///
    /// # Errors
    /// As [`GeoIndex::remove_at`].
    pub fn remove(&self, id: DriverId) -> Result<DriverView, GeoError> {
        self.remove_at(id, Instant::now())
    }

    /// Drivers stored, including expired ones not yet purged. O(shards).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.read_shard(s).occupied)
            .sum()
    }

    /// Whether no driver is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drivers visible at `now`. O(n).
    pub fn live_len_at(&self, now: Instant) -> usize {
        let now_ms = self.clock.ms(now);
        (0..self.shards.len())
            .map(|s| {
                let shard = self.read_shard(s);
                shard
                    .cells
                    .iter()
                    .flat_map(|c| &c.slots)
                    .filter(|slot| !slot.is_free() && self.is_live(&shard, slot, now_ms))
                    .count()
            })
            .sum()
    }

    /// Calls `f` for every driver visible at `now`, shard by shard. Each
    /// shard's drivers are copied out under its read lock and `f` runs
    /// after the lock is released, so `f` may call into the index (a
    /// driver that moves meanwhile may be seen twice or not at all, as with
    /// any scan that is not a snapshot; [`GeoIndex::snapshot_at`] is one).
    pub fn for_each_at(&self, now: Instant, mut f: impl FnMut(&DriverView)) {
        let now_ms = self.clock.ms(now);
        let mut buf = Vec::new();
        for s in 0..self.shards.len() {
            {
                let shard = self.read_shard(s);
                for cell in &shard.cells {
                    for slot in cell.slots.iter().filter(|s| !s.is_free()) {
                        if self.is_live(&shard, slot, now_ms) {
                            buf.push(self.view(&shard, slot));
                        }
                    }
                }
            }
            buf.drain(..).for_each(|v| f(&v));
        }
    }

    /// Calls `f(id, position, attributes)` for every driver visible at `now`
    /// that passes `filter`: [`GeoIndex::for_each_at`] without building
    /// views (no `Instant` arithmetic per driver), for whole-fleet scans such
    /// as surge supply counts. Shard by shard; as with
    /// [`GeoIndex::for_each_at`], `f` runs with no lock held.
    pub fn for_each_matching_at(
        &self,
        now: Instant,
        filter: &crate::Filter,
        mut f: impl FnMut(DriverId, LonLat, Attrs),
    ) {
        let now_ms = self.clock.ms(now);
        let mut buf = Vec::new();
        for s in 0..self.shards.len() {
            {
                let shard = self.read_shard(s);
                for cell in &shard.cells {
                    for slot in &cell.slots {
                        if !slot.is_free()
                            && filter.matches_packed(slot.attrs())
                            && self.is_live(&shard, slot, now_ms)
                        {
                            buf.push((slot.id, slot.pos(), slot.attrs()));
                        }
                    }
                }
            }
            for (id, pos, attrs) in buf.drain(..) {
                f(DriverId::stored(id), pos, Attrs::unpack(attrs));
            }
        }
    }

    // ---- expiry ---------------------------------------------------------

    /// Frees every driver expired at `now`; returns how many. O(n).
    pub fn purge_expired_at(&self, now: Instant) -> usize {
        let now_ms = self.clock.ms(now);
        (0..self.shards.len())
            .map(|s| {
                let mut shard = self.write_shard(s);
                let cells = shard.cells.len();
                self.sweep(&mut shard, s, now_ms, cells, &mut Vec::new())
            })
            .sum()
    }

    /// Sweeps up to `budget` cells of a locked shard from its cursor: frees
    /// expired drivers and compacts cells that are mostly free (`moved` is
    /// scratch for the new locations, published in one directory pass).
    pub(crate) fn sweep(
        &self,
        shard: &mut Shard,
        s: usize,
        now_ms: u64,
        budget: usize,
        moved: &mut Vec<(u64, Loc)>,
    ) -> usize {
        debug_assert!(moved.is_empty());
        let n = shard.cells.len();
        let mut purged = 0;
        for _ in 0..budget.min(n) {
            let c = shard.sweep_cursor % n;
            shard.sweep_cursor = (c + 1) % n;
            for i in 0..shard.cells[c].slots.len() {
                let slot = shard.cells[c].slots[i];
                if !slot.is_free() && !self.is_live(shard, &slot, now_ms) {
                    shard.free(c as u32, i as u32);
                    shard.ttl.remove(&slot.id);
                    self.dir.remove(slot.id);
                    purged += 1;
                }
            }
            shard.compact(c as u32, |id, i| {
                let loc = Loc {
                    shard: s as u32,
                    cell: c as u32,
                    slot: i,
                };
                moved.push((id, loc));
            });
            self.dir.set_many(moved);
            moved.clear();
        }
        purged
    }

    // ---- geofences ------------------------------------------------------

    /// Registers a geofence under `id` (replacing one with the same id).
    /// Updates that take a driver into or out of it report a
    /// [`FenceEvent`].
    ///
    /// # Errors
    /// [`GeoError::InvalidValue`] for a bad circle radius,
    /// [`GeoError::InvalidFence`] / [`GeoError::InvalidCoordinate`] for a
    /// bad polygon.
    pub fn add_fence(&self, id: u64, fence: Fence) -> Result<(), GeoError> {
        let shape = std::sync::Arc::new(FenceShape::new(id, fence)?);
        // One registry lock around the replacement: two adds with one id
        // cannot interleave their tile updates.
        let mut registry = self.write_fences();
        if let Some(old) = registry.remove(&id) {
            self.unregister_tiles(&old, id);
        }
        for tile in shape.tiles() {
            self.write_shard(self.tile_shard(tile))
                .fences
                .add(tile, shape.clone());
        }
        registry.insert(id, shape);
        Ok(())
    }

    /// Unregisters a geofence.
    ///
    /// # Errors
    /// [`GeoError::UnknownFence`] when no fence has this id.
    pub fn remove_fence(&self, id: u64) -> Result<(), GeoError> {
        let mut registry = self.write_fences();
        let shape = registry.remove(&id).ok_or(GeoError::UnknownFence(id))?;
        self.unregister_tiles(&shape, id);
        Ok(())
    }

    /// The lock shard of a fence tile.
    fn tile_shard(&self, tile: u32) -> usize {
        let (tx, ty) = (tile & 1023, tile >> 10);
        shard_of(tx << 6, ty << 6, self.mask)
    }

    /// Removes fence `id`'s shape from its tiles (registry lock held).
    fn unregister_tiles(&self, shape: &FenceShape, id: u64) {
        for tile in shape.tiles() {
            self.write_shard(self.tile_shard(tile))
                .fences
                .remove(tile, id);
        }
    }

    /// Checks every internal invariant (slots in the right cell and shard,
    /// free lists, counts, directory ↔ slots agreement); panics with a
    /// description if one is broken. For tests; O(n), takes every lock.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let guards: Vec<_> = (0..self.shards.len()).map(|s| self.read_shard(s)).collect();
        let mut stored = 0;
        for (s, shard) in guards.iter().enumerate() {
            shard.check_invariants(s, self.mask);
            for (c, cell) in shard.cells.iter().enumerate() {
                for (i, slot) in cell.slots.iter().enumerate().filter(|(_, s)| !s.is_free()) {
                    stored += 1;
                    let loc = self
                        .dir
                        .get(slot.id)
                        .expect("stored driver missing from the directory");
                    assert_eq!(
                        loc,
                        Loc {
                            shard: s as u32,
                            cell: c as u32,
                            slot: i as u32
                        },
                        "directory location of driver {} is stale",
                        slot.id
                    );
                    assert!(slot.updated_ms() <= TIME_MASK);
                }
            }
        }
        assert_eq!(
            stored,
            self.dir.len(),
            "directory holds drivers that are not stored"
        );
        self.dir.check_invariants();
    }
}

/// Applies an update's TTL to the shard's override map: a new TTL is
/// stored; a revived driver without one goes back to the default.
#[inline]
fn set_ttl(shard: &mut Shard, p: &Prep, revived: bool) {
    match p.ttl_ms {
        Some(t) => {
            shard.ttl.insert(p.id, t);
        }
        None if revived => {
            shard.ttl.remove(&p.id);
        }
        None => {}
    }
}

pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, GeoError> {
    let ms = ttl.as_millis();
    if ms == 0 || ms > u128::from(TIME_MASK) {
        return Err(GeoError::InvalidValue {
            what: "TTL",
            value: ttl.as_secs_f64(),
            reason: "must be at least 1 ms and at most 2^40 ms",
        });
    }
    Ok(ms as u64)
}
