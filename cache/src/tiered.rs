//! L1 / L2 / L3: per-instance caches over a shared cache over the source of
//! truth (seed example 7, in-process).
//!
//! - **L1**: one small [`Cache`] per [`TieredCache`] instance (e.g. per
//!   request-handling service object), short TTL.
//! - **L2**: one larger [`Cache`] in a [`SharedTier`], shared by every
//!   instance through `Arc`.
//! - **L3**: the user's [`Store`] (a database), the source of truth.
//!
//! GET walks L1 → L2 → (pending write-behind writes) → L3 and fills L2 and
//! L1 on the way back; both fills are single-flight, so concurrent misses on
//! one key cost one store read across all instances. SET writes L3 first
//! (write-through) or queues it (write-behind), then L2, then removes the
//! key from every other instance's L1 (an in-process broadcast, done before
//! SET returns), then writes its own L1. Writes to one key are serialised
//! by a striped lock, so every tier sees them in the same order.
//!
//! Eviction listeners of the tier caches run inside those writes (after the
//! shard lock is released, but while the key's write lock is held): they
//! may read the tiers but must not write the same key through them.
//!
//! **Consistency**: once `set`/`delete`/`invalidate` has returned, no L1 or
//! L2 serves an older value: a fill that was in flight across the write is
//! cancelled (the loader's callers still get the value they asked for,
//! which was current when they asked), and reads of a key with a pending
//! write-behind write see that write, not the stale store.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::cache::{Cache, DefaultHashBuilder};
use crate::stats::CacheStats;
use crate::weigher::{UnitWeigher, Weigher};
use crate::write_behind::{Op, WriteBehind};
use crate::{CacheError, StorePanic};

mod key_lock;
mod on_async;
mod shared;
pub use on_async::AsyncStore;
#[cfg(feature = "tokio")]
pub(crate) use on_async::{apply_op_async, catch_panic};
pub use shared::SharedTier;

/// The source of truth behind the cache tiers (a user's database).
///
/// Implementations must be `Send + Sync`; calls happen on the caller's
/// thread (no background thread is spawned).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use dispatchkit_cache::Store;
///
/// #[derive(Default)]
/// struct Db(Mutex<HashMap<u64, String>>);
///
/// impl Store<u64, String> for Db {
///     type Error = std::io::Error;
///     fn get(&self, key: &u64) -> Result<Option<String>, Self::Error> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     fn put(&self, key: &u64, value: &String) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().insert(*key, value.clone());
///         Ok(())
///     }
///     fn delete(&self, key: &u64) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().remove(key);
///         Ok(())
///     }
/// }
/// ```
pub trait Store<K, V>: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value of `key`, `None` if the store has none.
    ///
    /// # Errors
    /// When the store cannot answer.
    fn get(&self, key: &K) -> Result<Option<V>, Self::Error>;

    /// Writes `value` for `key`.
    ///
    /// # Errors
    /// When the write did not happen (it is retried, then reported).
    fn put(&self, key: &K, value: &V) -> Result<(), Self::Error>;

    /// Deletes `key` (deleting an absent key succeeds).
    ///
    /// # Errors
    /// When the delete did not happen (it is retried, then reported).
    fn delete(&self, key: &K) -> Result<(), Self::Error>;
}

/// When SET reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WriteMode {
    /// SET writes the store before the caches and fails (changing nothing)
    /// if the store write fails after every attempt.
    Through,
    /// SET queues the store write (at most `queue_capacity` distinct pending
    /// keys; repeated writes to a key coalesce into one) and returns;
    /// [`SharedTier::flush`] applies the queue. SET never waits for another
    /// thread: when the queue is full it applies the oldest queued write
    /// itself first (at most `store_attempts` store calls); if that fails
    /// the SET is refused with [`CacheError::WriteBehindFull`], and if every
    /// pending write is being applied by a concurrent flush, with
    /// [`CacheError::QueueFull`].
    Behind {
        /// Most distinct keys pending (≥ 1).
        queue_capacity: usize,
    },
}

/// Settings of a [`SharedTier`]. Deserialising runs
/// [`TierConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "TierConfigData")
)]
pub struct TierConfig {
    /// Write-through (default) or write-behind.
    pub write_mode: WriteMode,
    /// Tries per store write before it is reported (default 3, ≥ 1).
    /// Retries are immediate; call `flush` again later for a backoff.
    pub store_attempts: u32,
}

/// The wire form of a [`TierConfig`], before its check.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename = "TierConfig", deny_unknown_fields)]
struct TierConfigData {
    write_mode: WriteMode,
    store_attempts: u32,
}

#[cfg(feature = "serde")]
impl TryFrom<TierConfigData> for TierConfig {
    type Error = CacheError;
    fn try_from(d: TierConfigData) -> Result<Self, CacheError> {
        let c = TierConfig {
            write_mode: d.write_mode,
            store_attempts: d.store_attempts,
        };
        c.validate()?;
        Ok(c)
    }
}

impl TierConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`CacheError::InvalidSetting`] for `store_attempts == 0` or a
    /// write-behind `queue_capacity == 0`.
    pub fn validate(&self) -> Result<(), CacheError> {
        if self.store_attempts == 0 {
            return Err(CacheError::InvalidSetting {
                name: "store_attempts",
                value: 0,
                reason: "a store write needs at least one attempt",
            });
        }
        if self.write_mode == (WriteMode::Behind { queue_capacity: 0 }) {
            return Err(CacheError::InvalidSetting {
                name: "queue_capacity",
                value: 0,
                reason: "a write-behind queue must hold at least one write",
            });
        }
        Ok(())
    }
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            write_mode: WriteMode::Through,
            store_attempts: 3,
        }
    }
}

/// Counters of the tiers as seen from one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TierStats {
    /// This instance's L1 (hits and misses when it was built with
    /// [`record_stats`](crate::CacheBuilder::record_stats)).
    pub l1: CacheStats,
    /// The shared L2 (all instances; hits and misses likewise).
    pub l2: CacheStats,
    /// Store reads (L3 loads; all instances).
    pub store_gets: u64,
    /// Store puts that succeeded.
    pub store_puts: u64,
    /// Store deletes that succeeded.
    pub store_deletes: u64,
    /// Store calls that failed (each attempt counts).
    pub store_errors: u64,
    /// Reads answered by a pending write-behind write instead of the store.
    pub pending_reads: u64,
    /// Write-behind writes merged into an already pending write of the key.
    pub coalesced_writes: u64,
    /// Write-behind writes pending now.
    pub pending_writes: usize,
    /// Keys removed from other instances' L1s by this tier's writes.
    pub l1_invalidations: u64,
}

/// Why a tier load produced no value.
#[derive(Debug, Clone)]
enum Miss {
    NotFound,
    Store(CacheError),
}

#[derive(Debug, Default)]
struct StoreCounters {
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    pending_reads: AtomicU64,
    invalidations: AtomicU64,
}

/// One instance's view of the tiers: its own L1 over the [`SharedTier`].
///
/// Created by [`SharedTier::instance`]; dropping it unregisters its L1.
pub struct TieredCache<K, V, St, W = UnitWeigher, S = DefaultHashBuilder> {
    l1: Arc<Cache<K, V, W, S>>,
    shared: Arc<SharedTier<K, V, St, W, S>>,
    id: u64,
}

impl<K, V, St, W, S> fmt::Debug for TieredCache<K, V, St, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("id", &self.id)
            .field("l1", &self.l1)
            .finish_non_exhaustive()
    }
}

impl<K, V, St, W, S> Drop for TieredCache<K, V, St, W, S> {
    fn drop(&mut self) {
        self.shared
            .instances
            .write()
            .retain(|(id, _)| *id != self.id);
    }
}

impl<K, V, St, W, S> TieredCache<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    St: Store<K, V>,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// The value of `key`: from L1, else L2 (filling L1), else the pending
    /// write-behind write or the store (filling L2 and L1); `None` when the
    /// store has none. Concurrent misses on a key load it once per tier.
    ///
    /// # Errors
    /// [`CacheError::Store`] when the store read failed (not cached unless
    /// the tier caches were built with a negative TTL).
    pub fn get(&self, key: &K) -> Result<Option<V>, CacheError> {
        self.get_at(key, Instant::now())
    }

    /// [`get`](Self::get) at time `now`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn get_at(&self, key: &K, now: Instant) -> Result<Option<V>, CacheError> {
        match self
            .l1
            .try_get_or_load_at(key, now, || self.shared.load_l2(key, now))
        {
            Ok(v) => Ok(Some(v)),
            Err(e) => match &*e {
                Miss::NotFound => Ok(None),
                Miss::Store(err) => Err(err.clone()),
            },
        }
    }

    /// Writes `value` for `key` through the tiers (see [`WriteMode`]):
    /// store (or its queue), L2, every other instance's L1 invalidated,
    /// this instance's L1. An entry too heavy for a tier is removed from it
    /// instead (the store still gets it).
    ///
    /// # Errors
    /// Write-through: [`CacheError::Store`] if the store put failed every
    /// attempt. Write-behind: [`CacheError::WriteBehindFull`] if the queue
    /// was full and draining it failed, [`CacheError::QueueFull`] if it was
    /// full of writes a concurrent flush is applying. Either way no tier
    /// was changed. [`CacheError::InstantOutOfRange`] for a `now` the tier
    /// caches cannot set a deadline at (checked before anything is written).
    pub fn set(&self, key: K, value: V) -> Result<(), CacheError> {
        self.set_at(key, value, Instant::now())
    }

    /// [`set`](Self::set) at time `now`.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub fn set_at(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        let sh = &self.shared;
        sh.l2.check_instant(now)?;
        self.l1.check_instant(now)?;
        let _guard = sh.write_lock(&key);
        match &sh.queue {
            None => sh.apply(&key, &Op::Put(value.clone()))?,
            Some(q) => q.enqueue(&key, Op::Put(value.clone()), |k, o| sh.apply(k, o))?,
        }
        self.fill(key, value, now);
        Ok(())
    }

    /// Deletes `key` from the store (or queues the delete) and removes it
    /// from L2 and every instance's L1.
    ///
    /// # Errors
    /// As [`set`](Self::set); on error no tier was changed.
    pub fn delete(&self, key: &K) -> Result<(), CacheError> {
        self.delete_at(key, Instant::now())
    }

    /// [`delete`](Self::delete) at time `now`.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub fn delete_at(&self, key: &K, now: Instant) -> Result<(), CacheError> {
        let sh = &self.shared;
        let _guard = sh.write_lock(key);
        match &sh.queue {
            None => sh.apply(key, &Op::Delete)?,
            Some(q) => q.enqueue(key, Op::Delete, |k, o| sh.apply(k, o))?,
        }
        self.drop_key(key, now);
        Ok(())
    }
}

/// What every instance does, whatever its store.
impl<K, V, St, W, S> TieredCache<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Removes `key` from L2 and every instance's L1 without touching the
    /// store (its value changed at the source): the next GET reloads it.
    /// Waits (blocking) for a writer of the key; async code uses
    /// [`invalidate_async`](Self::invalidate_async).
    pub fn invalidate(&self, key: &K) {
        self.invalidate_at(key, Instant::now());
    }

    /// [`invalidate`](Self::invalidate) at time `now`.
    pub fn invalidate_at(&self, key: &K, now: Instant) {
        let _guard = self.shared.write_lock(key);
        self.drop_key(key, now);
    }

    /// A write's tier updates, under the key's write lock once the store
    /// (or its queue) has the write: L2, every other instance's L1
    /// invalidated, this instance's L1. An entry too heavy for a tier is
    /// removed from it instead.
    fn fill(&self, key: K, value: V, now: Instant) {
        let sh = &self.shared;
        if sh.l2.insert_at(key.clone(), value.clone(), now).is_err() {
            sh.l2.remove_at(&key, now);
        }
        sh.broadcast_invalidate(&key, self.id, now);
        let k = key.clone();
        if self.l1.insert_at(key, value, now).is_err() {
            self.l1.remove_at(&k, now);
        }
    }

    /// A delete's or invalidation's tier updates: gone from L2 and every
    /// instance's L1.
    fn drop_key(&self, key: &K, now: Instant) {
        let sh = &self.shared;
        sh.l2.remove_at(key, now);
        sh.broadcast_invalidate(key, self.id, now);
        self.l1.remove_at(key, now);
    }

    /// [`invalidate`](Self::invalidate), waiting for a writer of the key as
    /// a future.
    pub async fn invalidate_async(&self, key: &K) {
        let now = Instant::now();
        let _guard = self.shared.write_lock_async(key).await;
        self.drop_key(key, now);
    }

    /// This instance's L1.
    pub fn l1(&self) -> &Cache<K, V, W, S> {
        &self.l1
    }

    /// The shared tier.
    pub fn shared(&self) -> &Arc<SharedTier<K, V, St, W, S>> {
        &self.shared
    }

    /// Counters: this instance's L1, the shared L2 and store.
    pub fn stats(&self) -> TierStats {
        let c = &self.shared.counters;
        TierStats {
            l1: self.l1.stats(),
            l2: self.shared.l2.stats(),
            store_gets: c.gets.load(Relaxed),
            store_puts: c.puts.load(Relaxed),
            store_deletes: c.deletes.load(Relaxed),
            store_errors: c.errors.load(Relaxed),
            pending_reads: c.pending_reads.load(Relaxed),
            coalesced_writes: self.shared.queue.as_ref().map_or(0, WriteBehind::coalesced),
            pending_writes: self.shared.pending_writes(),
            l1_invalidations: c.invalidations.load(Relaxed),
        }
    }
}

/// Calls the user's store, turning its error or its panic into the shared
/// error source of [`CacheError::Store`].
/// Applies `op` for `key` to `store` with up to `attempts` tries (a panic
/// counts as a failed try, [`StorePanic`]); the result and how many tries
/// failed.
pub(crate) fn apply_op<K, V, St: Store<K, V>>(
    store: &St,
    key: &K,
    op: &Op<V>,
    attempts: u32,
) -> (Result<(), CacheError>, u32) {
    let mut last = None;
    for failed in 0..attempts {
        match catch_store(|| match op {
            Op::Put(v) => store.put(key, v),
            Op::Delete => store.delete(key),
        }) {
            Ok(()) => return (Ok(()), failed),
            Err(e) => last = Some(e),
        }
    }
    gave_up(op, attempts, last)
}

/// The outcome of a store write whose `attempts` tries all failed, the
/// last with `last` (`None`: no try was made).
pub(crate) fn gave_up<V>(
    op: &Op<V>,
    attempts: u32,
    last: Option<Arc<dyn std::error::Error + Send + Sync>>,
) -> (Result<(), CacheError>, u32) {
    match last {
        Some(source) => (
            Err(CacheError::Store {
                operation: op.name(),
                attempts,
                source,
            }),
            attempts,
        ),
        None => (Ok(()), 0),
    }
}

pub(crate) fn catch_store<T, E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, Arc<dyn std::error::Error + Send + Sync>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Arc::new(e)),
        Err(payload) => Err(Arc::new(StorePanic::from_payload(payload.as_ref()))),
    }
}

impl<K, V, St, W, S> crate::Tier<K, V> for TieredCache<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: Store<K, V>,
    W: Weigher<K, V>,
    S: BuildHasher + Send + Sync,
{
    fn get_at(&self, key: &K, now: Instant) -> Result<Option<V>, CacheError> {
        TieredCache::get_at(self, key, now)
    }

    fn set_at(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        TieredCache::set_at(self, key, value, now)
    }

    fn delete_at(&self, key: &K, now: Instant) -> Result<(), CacheError> {
        TieredCache::delete_at(self, key, now)
    }

    fn invalidate_at(&self, key: &K, now: Instant) {
        TieredCache::invalidate_at(self, key, now);
    }
}
