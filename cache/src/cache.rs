//! The concurrent, sharded cache.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Instant;

mod get_or_load;
mod write;

use crate::lock::{ShardLock, WriteGuard};

use crate::CacheError;
use crate::builder::CacheBuilder;
use crate::climb::{Climber, INITIAL_WINDOW};
use crate::policy::{Admission, Policy};
use crate::shard::{Lookup, Shard, ShardParams};
use crate::stats::{CacheStats, Counters, EvictionListener, Removed};
use crate::time::{Epoch, LazyTick};
use crate::weigher::{UnitWeigher, Weigher};

/// The default hasher: foldhash's fast variant, randomly seeded per cache.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// A lock on its own cache lines, so two shards never share one.
#[repr(align(128))]
struct Padded<T>(T);

/// One shard behind its lock, padded.
type ShardSlot<K, V> = Padded<ShardLock<Shard<K, V>>>;

/// A thread checks the window climber once per this many of its inserts
/// (summing the counters costs about as much as a few hundred inserts'
/// share of it).
const CLIMB_EVERY: u64 = 256;

/// A concurrent, sharded, bounded key-value cache with per-entry TTL,
/// optional time-to-idle, S3-FIFO (default) or exact-LRU eviction, optional
/// TinyLFU admission, single-flight loading and eviction statistics.
///
/// `Cache` is `Send + Sync` when `K` and `V` are; share it with `Arc`.
/// Keys are hashed once and routed to one of `shard_count()` shards, each a
/// `parking_lot::RwLock` over its own slab, hash table and queues. Reads
/// (S3-FIFO) take the shard's read lock and write no shared cache line once
/// an entry is hot; writes take the shard's write lock. Every operation is
/// O(1) amortised (eviction rotates at most three times per entry).
///
/// Time is a parameter: each operation has an `_at(…, now: Instant)` form;
/// the plain form reads `Instant::now()` at most once, and only if an
/// entry involved has a deadline. An expired entry is never returned.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_cache::Cache;
///
/// let cache: Cache<&str, u32> = Cache::builder(1_000)
///     .time_to_live(Duration::from_secs(60))
///     .build()?;
/// let t0 = Instant::now();
/// cache.insert_at("menu:7", 42, t0)?;
/// assert_eq!(cache.get_at("menu:7", t0 + Duration::from_secs(59)), Some(42));
/// assert_eq!(cache.get_at("menu:7", t0 + Duration::from_secs(60)), None);
/// # Ok::<(), dispatchkit_cache::CacheError>(())
/// ```
pub struct Cache<K, V, W = UnitWeigher, S = DefaultHashBuilder> {
    shards: Box<[ShardSlot<K, V>]>,
    mask: usize,
    hasher: S,
    weigher: W,
    weighted: bool,
    policy: Policy,
    admission: Admission,
    ttl: Option<i64>,
    /// Whether entries get a deadline (a TTL or a time-to-idle).
    timed: bool,
    negative_ttl: Option<i64>,
    capacity: u64,
    max_entry_weight: u64,
    epoch: Epoch,
    counters: Counters,
    /// Whether hits and misses are counted
    /// ([`CacheBuilder::record_stats`], or W-TinyLFU's climber).
    count_lookups: bool,
    listener: Option<EvictionListener<K, V>>,
    /// W-TinyLFU's window sizing (other policies: `None`).
    climber: Option<Mutex<Climber>>,
}

impl<K, V, W, S> fmt::Debug for Cache<K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("policy", &self.policy)
            .field("admission", &self.admission)
            .field("weighted", &self.weighted)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// A cache of `capacity` entries with the default settings (S3-FIFO, no
    /// TTL, automatic sharding).
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] when `capacity == 0`.
    ///
    /// ```
    /// use dispatchkit_cache::{Cache, CacheError};
    ///
    /// let cache = Cache::<u64, u64>::new(100)?;
    /// cache.insert(1, 10)?;
    /// assert_eq!(cache.get(&1), Some(10));
    /// assert!(matches!(Cache::<u64, u64>::new(0), Err(CacheError::InvalidCapacity { .. })));
    /// # Ok::<(), CacheError>(())
    /// ```
    pub fn new(capacity: u64) -> Result<Self, CacheError> {
        Self::builder(capacity).build()
    }

    /// A builder for a cache of `capacity` (entries, or weight units once a
    /// [`weigher`](CacheBuilder::weigher) is set).
    pub fn builder(capacity: u64) -> CacheBuilder<K, V> {
        CacheBuilder::new(capacity)
    }
}

/// What a locked operation hands back to be finished outside the lock.
type Out<K, V> = Removed<K, V>;

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    #[expect(
        clippy::too_many_arguments,
        reason = "the builder's settings, passed once from CacheBuilder::build"
    )]
    pub(crate) fn from_parts(
        capacity: u64,
        weigher: W,
        weighted: bool,
        hasher: S,
        ttl: Option<i64>,
        tti: Option<i64>,
        negative_ttl: Option<i64>,
        policy: Policy,
        admission: Admission,
        shards: usize,
        est_entries: usize,
        listener: Option<EvictionListener<K, V>>,
        record_stats: bool,
    ) -> Self {
        let n = shards as u64;
        let base = capacity / n;
        let rem = capacity % n;
        let est_per_shard = est_entries.div_ceil(shards).max(1);
        let shards: Box<[_]> = (0..n)
            .map(|i| {
                let cap = base + u64::from(i < rem);
                Padded(ShardLock::new(Shard::new(ShardParams {
                    capacity: cap,
                    est_entries: est_per_shard,
                    max_entries: if weighted {
                        usize::MAX
                    } else {
                        usize::try_from(cap).unwrap_or(usize::MAX)
                    },
                    policy,
                    admission: admission == Admission::TinyLfu,
                    window: INITIAL_WINDOW,
                    seed: i + 1,
                    weighted,
                    tti,
                    negative_cap: (est_per_shard / 8).max(16),
                })))
            })
            .collect();
        Self {
            mask: shards.len() - 1,
            shards,
            hasher,
            weigher,
            weighted,
            policy,
            admission,
            ttl,
            timed: ttl.is_some() || tti.is_some(),
            negative_ttl,
            capacity,
            max_entry_weight: base.min(u64::from(u32::MAX)),
            epoch: Epoch::new(),
            counters: Counters::new(),
            count_lookups: record_stats || policy == Policy::WTinyLfu,
            listener,
            climber: (policy == Policy::WTinyLfu).then(|| {
                // One sample per 10 × capacity lookups (in entries).
                Mutex::new(Climber::new((est_entries as u64).saturating_mul(10)))
            }),
        }
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of `hash` ([`shard_index`]).
    #[inline]
    fn shard(&self, hash: u64) -> &ShardLock<Shard<K, V>> {
        &self.shards[shard_index(hash, self.mask)].0
    }

    /// The shard's write lock; an acquisition that has to wait is counted
    /// ([`CacheStats::lock_waits`]: evidence of contention, at the cost of
    /// one failed `try_write` when contended).
    #[inline]
    fn lock<'a>(&self, shard: &'a ShardLock<Shard<K, V>>) -> WriteGuard<'a, Shard<K, V>> {
        match shard.write() {
            Ok(g) => g,
            Err(g) => {
                self.counters.add(|s| &s.lock_waits, 1);
                g
            }
        }
    }

    #[inline]
    fn removed(&self) -> Out<K, V> {
        Removed::new(self.listener.is_some())
    }

    /// Counts and reports what a locked operation removed (lock released).
    #[inline]
    fn finish(&self, out: Out<K, V>) {
        self.counters.record_evictions(&out.counts);
        self.notify(out);
    }

    /// Hands what a locked operation removed to the listener.
    #[inline]
    fn notify(&self, out: Out<K, V>) {
        if let Some(l) = &self.listener {
            for (k, v, cause) in &out.items {
                l(k, v, *cause);
            }
        }
    }

    fn weigh(&self, key: &K, value: &V) -> Result<u32, CacheError> {
        let w = self.weigher.weigh(key, value).max(1);
        if w > self.max_entry_weight {
            return Err(CacheError::EntryTooHeavy {
                weight: w,
                max: self.max_entry_weight,
                reason: if self.shards.len() > 1 {
                    "an entry must fit in one shard (capacity / shard count)"
                } else {
                    "an entry must fit in the cache's capacity"
                },
            });
        }
        // max_entry_weight <= u32::MAX.
        Ok(u32::try_from(w).unwrap_or(u32::MAX))
    }

    // ----- reads -------------------------------------------------------

    /// The live value of `key`, cloned. A hit marks the entry as recently
    /// used; an expired entry is reclaimed and reported as a miss.
    /// O(1); takes the shard's read lock (write lock under [`Policy::Lru`]).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_inner(key, &mut LazyTick::lazy(&self.epoch))
    }

    /// [`get`](Self::get) at time `now`.
    pub fn get_at<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_inner(key, &mut LazyTick::at(&self.epoch, now))
    }

    /// Whether `key` has a live value (counts as a hit or miss like `get`,
    /// without cloning the value).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_value(key, &mut LazyTick::lazy(&self.epoch), |_| ())
            .is_some()
    }

    /// [`contains_key`](Self::contains_key) at time `now`.
    pub fn contains_key_at<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_value(key, &mut LazyTick::at(&self.epoch, now), |_| ())
            .is_some()
    }

    #[inline]
    fn get_inner<Q>(&self, key: &Q, now: &mut LazyTick<'_>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with_value(key, now, V::clone)
    }

    /// Looks `key` up and applies `f` to its live value under the lock;
    /// counts the hit or miss. (Always inlined: the hit path is a handful
    /// of instructions and a call frame would be a fifth of them.)
    #[inline(always)]
    fn with_value<Q, R>(
        &self,
        key: &Q,
        now: &mut LazyTick<'_>,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let r = self.lookup(hash, key, now, f);
        if self.count_lookups {
            // One arm per counter: each bumps a fixed offset of the stripe.
            match r {
                Some(_) => self.counters.count_lookup(true),
                None => self.counters.count_lookup(false),
            }
        }
        r
    }

    /// The lookup itself (no counting).
    #[inline(always)]
    fn lookup<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: &mut LazyTick<'_>,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(hash);
        if self.policy == Policy::Lru {
            return self.lookup_exclusive(shard, hash, key, *now, f);
        }
        let g = shard.read();
        match g.get_shared(hash, key, *now) {
            Lookup::Hit(v) => return Some(f(v)),
            Lookup::Miss => return None,
            Lookup::Expired => {}
        }
        drop(g);
        self.reclaim_expired(shard, hash, key, *now);
        None
    }

    /// Reclaims `key` found expired by a shared-lock read (rare: off the
    /// hot path).
    #[cold]
    #[inline(never)]
    fn reclaim_expired<Q>(
        &self,
        shard: &ShardLock<Shard<K, V>>,
        hash: u64,
        key: &Q,
        mut now: LazyTick<'_>,
    ) where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut out = self.removed();
        self.lock(shard).reclaim(hash, key, &mut now, &mut out);
        self.finish(out);
    }

    /// A lookup under the write lock (exact LRU moves the entry).
    #[inline(never)]
    fn lookup_exclusive<Q, R>(
        &self,
        shard: &ShardLock<Shard<K, V>>,
        hash: u64,
        key: &Q,
        mut now: LazyTick<'_>,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut out = self.removed();
        let r = self
            .lock(shard)
            .get_exclusive(hash, key, &mut now, &mut out)
            .map(f);
        self.finish(out);
        r
    }

    // ----- introspection ----------------------------------------------

    /// Number of entries (live or expired-not-yet-reclaimed). O(shards).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().len()).sum()
    }

    /// Whether the cache holds no entry. O(shards).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of the entries (= `len()` without a weigher). O(shards).
    pub fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.0.read().weight()).sum()
    }

    /// The capacity (entries, or weight units with a weigher); never
    /// exceeded by [`weight`](Self::weight).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The heaviest entry the cache accepts: one shard's capacity
    /// (`capacity / shard_count`, rounded down), at most `u32::MAX`.
    pub fn max_entry_weight(&self) -> u64 {
        self.max_entry_weight
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The replacement policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The admission policy.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// A snapshot of the counters. O(threads). Hits and misses read 0
    /// unless [`CacheBuilder::record_stats`] is on (or the policy is
    /// [`Policy::WTinyLfu`]); the other counters are always kept.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// Heap bytes held by the shards' tables, slabs, ghosts and sketches
    /// (not the heap data the keys and values own). O(shards).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().heap_bytes())
            .sum::<usize>()
            + self.shards.len() * std::mem::size_of::<ShardSlot<K, V>>()
    }

    /// Checks every structural invariant of every shard (lists, table,
    /// slab, weights within capacity); panics on the first violation.
    /// O(n). For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut cap = 0;
        for s in self.shards.iter() {
            let g = s.0.read();
            g.check_invariants(&self.hasher);
            cap += g.capacity();
        }
        assert_eq!(cap, self.capacity, "shard capacities do not add up");
        assert!(self.weight() <= self.capacity);
    }
}

/// The shard (`0..=mask`) of a key whose hash is `hash`: bits 32.. of the
/// hash multiplied by an odd constant. hashbrown takes the bucket from the
/// low bits and the tag from the top 7, so the shard stays independent of
/// both; the multiplication spreads runs of sequential keys, which a
/// multiplicative hash (foldhash's, the default) maps to bits 32.. in a
/// lattice that some seeds pile into a few shards, each of them then a
/// smaller cache for that run (measured on the OLTP trace's block numbers:
/// see `sequential_keys_spread_over_the_shards_whatever_the_seed`).
#[inline]
pub(crate) fn shard_index(hash: u64, mask: usize) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use foldhash::SharedSeed;
    use foldhash::fast::SeedableRandomState;

    use super::shard_index;

    /// 5,000 sequential keys over 32 shards: no shard gets less than half
    /// or more than twice its share, under every shared seed tried. Bits
    /// 32.. of the hash taken as they are failed this (seed 510: one shard
    /// got none, another 399, where the hit ratio on the OLTP trace fell by
    /// about a point).
    #[test]
    fn sequential_keys_spread_over_the_shards_whatever_the_seed() {
        for g in (0..256u64).chain([510]) {
            let shared: &'static SharedSeed = Box::leak(Box::new(SharedSeed::from_u64(g)));
            let per = 12_345 ^ g.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let hasher = SeedableRandomState::with_seed(per, shared);
            let mut load = [0usize; 32];
            for k in 0..5_000u64 {
                load[shard_index(hasher.hash_one(k), 31)] += 1;
            }
            let (lo, hi) = (load.iter().min(), load.iter().max());
            assert!(
                lo >= Some(&78) && hi <= Some(&312),
                "seed {g}: shard loads {lo:?} to {hi:?} (mean 156)"
            );
        }
    }
}
