//! The index type: its settings, shards, locks, timeline and invariant
//! checker. Its operations live beside it, one concern per file: `write.rs`
//! (single updates), `batch.rs` (batched updates), `read.rs` (lookups,
//! claims, scans), `search.rs` (`GEOSEARCH`), `expiry.rs`,
//! `fence_registry.rs` and `snapshot.rs`.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dir::Directory;
use crate::shard::{Loc, MAX_SHARDS, Shard, Slot, TIME_MASK};
use crate::slab::Pool;
use crate::time::Clock;
use crate::{Attrs, DriverId, DriverView, GeoError};

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
    /// A grid cell (about 600 m) that an insert finds holding this many
    /// drivers is split into 2 × 2 sub-cells, for good; `None`: never.
    /// At least 8; default 64.
    ///
    /// A k-nearest search scans the cell it starts in and the neighbours
    /// its bound reaches, so where cells are crowded the drivers per cell,
    /// not the `k` asked for, set its cost; in split cells it scans only
    /// the sub-cells near its centre. Updates pay and gain: a driver
    /// crosses a sub-cell edge about twice as often as a cell edge, and a
    /// crossing moves it to another slot array, while a crowded cell's
    /// shorter arrays cost less to grow and to sweep. Too low a threshold
    /// splits sparse cells and costs updates more than it saves searches;
    /// `None` never splits. Of 32, 64 and 128, the default is the lowest
    /// whose updates ran no slower than 128's on the `geo_update` bench's
    /// streams at 1M and 10M drivers (BENCHMARKS.md measures both).
    pub split_cells_at: Option<usize>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            default_ttl: Duration::from_secs(30),
            shards: 256,
            epoch: None,
            max_future_skew: Duration::from_secs(5),
            split_cells_at: Some(64),
        }
    }
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
    /// Grid cells crowded enough to have been split into sub-cells (a
    /// k-nearest search there scans only the sub-cells near its centre).
    pub split_cells: u64,
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
    pub(crate) contended: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) fences: crate::fence_registry::Registry,
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
    /// 1..=4096, the TTL is zero or longer than 2^40 ms, or
    /// `split_cells_at` is below 8.
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
        let split_at = match config.split_cells_at {
            None => usize::MAX,
            Some(n) if n >= 8 => n,
            Some(n) => {
                return Err(GeoError::InvalidConfig {
                    what: "split_cells_at",
                    value: n as u64,
                    reason: "must be at least 8 drivers (or None: never split)",
                });
            }
        };
        let pool = Pool::new();
        Ok(GeoIndex {
            shards: (0..shards)
                .map(|_| RwLock::new(Shard::new(split_at, Arc::clone(&pool))))
                .collect(),
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

    /// Contention and retry counters since the index was built, and the
    /// cells split so far (read under each shard's read lock in turn).
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            lock_contentions: self.contended.load(Relaxed),
            retries: self.retries.load(Relaxed),
            split_cells: (0..self.shards.len())
                .map(|s| self.read_shard(s).split_cells)
                .sum(),
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

    /// Checks every internal invariant (slots in the right cell and shard,
    /// free lists, counts, directory ↔ slots agreement, the slot memory's
    /// accounting across shards); panics with a
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
        crate::slab::check_pool(guards.iter().map(|g| g.slab_and_arrays()));
        self.dir.check_invariants();
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
