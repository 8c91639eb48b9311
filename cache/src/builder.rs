//! Building a [`Cache`]: capacity, weigher, TTLs, policy, admission,
//! sharding, negative caching and the eviction listener.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::CacheError;
use crate::cache::{Cache, DefaultHashBuilder};
use crate::policy::{Admission, Policy};
use crate::stats::{EvictionCause, EvictionListener};
use crate::time::checked_ttl;
use crate::weigher::{UnitWeigher, Weigher};

/// Most shards a cache may have.
pub const MAX_SHARDS: usize = 1024;

/// Fewest entries a shard should hold when the shard count is chosen
/// automatically (smaller shards lose hit ratio).
const MIN_SHARD_ENTRIES: usize = 128;

/// Configures and builds a [`Cache`]; every setting is checked by
/// [`build`](CacheBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use dispatchkit_cache::{Admission, Cache, CacheError, Policy};
///
/// let cache: Cache<u64, String> = Cache::builder(10_000)
///     .time_to_live(Duration::from_secs(60))
///     .policy(Policy::WTinyLfu)
///     .build()?;
/// assert_eq!(cache.capacity(), 10_000);
/// assert_eq!(cache.admission(), Admission::TinyLfu); // built in
///
/// // A combination that means nothing is refused, not ignored.
/// let lru_tinylfu = Cache::<u64, String>::builder(10_000)
///     .policy(Policy::Lru)
///     .admission(Admission::TinyLfu)
///     .build();
/// assert!(matches!(lru_tinylfu, Err(CacheError::IncompatibleAdmission { .. })));
/// # Ok::<(), dispatchkit_cache::CacheError>(())
/// ```
pub struct CacheBuilder<K, V, W = UnitWeigher, S = DefaultHashBuilder> {
    pub(crate) capacity: u64,
    pub(crate) weigher: W,
    pub(crate) weighted: bool,
    pub(crate) hasher: S,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) policy: Policy,
    pub(crate) admission: Option<Admission>,
    pub(crate) shards: Option<usize>,
    pub(crate) estimated_entries: Option<usize>,
    pub(crate) listener: Option<EvictionListener<K, V>>,
    pub(crate) record_stats: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, W, S> fmt::Debug for CacheBuilder<K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("weighted", &self.weighted)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .field("negative_ttl", &self.negative_ttl)
            .field("policy", &self.policy)
            .field("admission", &self.admission)
            .field("shards", &self.shards)
            .field("estimated_entries", &self.estimated_entries)
            .field("listener", &self.listener.is_some())
            .field("record_stats", &self.record_stats)
            .finish()
    }
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            capacity,
            weigher: UnitWeigher,
            weighted: false,
            hasher: DefaultHashBuilder::default(),
            ttl: None,
            tti: None,
            negative_ttl: None,
            policy: Policy::default(),
            admission: None,
            shards: None,
            estimated_entries: None,
            listener: None,
            record_stats: false,
            _types: PhantomData,
        }
    }
}

impl<K, V, W, S> CacheBuilder<K, V, W, S> {
    /// Measures capacity with `weigher` (e.g. bytes) instead of entries.
    /// Set [`estimated_entries`](Self::estimated_entries) too when the
    /// typical entry weight is far from 256.
    pub fn weigher<W2: Weigher<K, V>>(self, weigher: W2) -> CacheBuilder<K, V, W2, S> {
        CacheBuilder {
            capacity: self.capacity,
            weigher,
            weighted: true,
            hasher: self.hasher,
            ttl: self.ttl,
            tti: self.tti,
            negative_ttl: self.negative_ttl,
            policy: self.policy,
            admission: self.admission,
            shards: self.shards,
            estimated_entries: self.estimated_entries,
            listener: self.listener,
            record_stats: self.record_stats,
            _types: PhantomData,
        }
    }

    /// Hashes keys with `hasher` (default: foldhash, randomly seeded).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, W, S2> {
        CacheBuilder {
            capacity: self.capacity,
            weigher: self.weigher,
            weighted: self.weighted,
            hasher,
            ttl: self.ttl,
            tti: self.tti,
            negative_ttl: self.negative_ttl,
            policy: self.policy,
            admission: self.admission,
            shards: self.shards,
            estimated_entries: self.estimated_entries,
            listener: self.listener,
            record_stats: self.record_stats,
            _types: PhantomData,
        }
    }

    /// Default time-to-live of every entry (overridden per entry by
    /// `insert_with_ttl`). Must be in `(0, MAX_TTL]`.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Time-to-idle: an entry not read or written for this long expires.
    /// Costs one store per hit (the idle deadline) and 8 bytes per entry.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Counts hits and misses ([`CacheStats::hits`](crate::CacheStats::hits),
    /// [`misses`](crate::CacheStats::misses),
    /// [`hit_ratio`](crate::CacheStats::hit_ratio)). Off by default, as in
    /// Caffeine (`recordStats`) and quick_cache (its `stats` feature):
    /// counting is a store on every read, about a tenth of a hit's cost.
    /// [`Policy::WTinyLfu`] counts them whatever this says (its window
    /// climber samples the hit ratio). Every other counter of
    /// [`Cache::stats`] (inserts, evictions, loads, lock waits) is always
    /// kept.
    ///
    /// ```
    /// use dispatchkit_cache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder(100).record_stats(true).build()?;
    /// cache.insert(1, 10)?;
    /// assert_eq!(cache.get(&1), Some(10));
    /// assert_eq!(cache.get(&2), None);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub fn record_stats(mut self, record: bool) -> Self {
        self.record_stats = record;
        self
    }

    /// Remembers failed `try_get_or_load` loads for `ttl`: calls within it
    /// get the same error back without running a loader. Off by default
    /// (failures are never cached).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// The replacement policy (default [`Policy::S3Fifo`]; which to pick
    /// when: [`Policy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The admission policy (default: the policy's own,
    /// [`Policy::default_admission`]). [`build`](Self::build) refuses the
    /// combinations that mean nothing.
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// The number of shards (rounded up to a power of two, at most
    /// [`MAX_SHARDS`], at most the capacity). Default: enough that each
    /// shard holds ≥ 128 entries, at most 16 per CPU.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Expected number of entries when a weigher is set (sizes the ghost,
    /// the sketch and the automatic shard count). Default `capacity / 256`.
    pub fn estimated_entries(mut self, entries: usize) -> Self {
        self.estimated_entries = Some(entries);
        self
    }

    /// Calls `listener` for every entry that leaves the cache, with the
    /// cause, after the shard lock is released.
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, EvictionCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] for a capacity of 0;
    /// [`CacheError::InvalidDuration`] for a TTL / TTI / negative TTL of 0
    /// or above [`MAX_TTL`](crate::MAX_TTL);
    /// [`CacheError::InvalidShards`] for 0 shards, more than
    /// [`MAX_SHARDS`], or more shards than the capacity;
    /// [`CacheError::IncompatibleAdmission`] for TinyLFU admission with
    /// [`Policy::Lru`] or admit-all with [`Policy::WTinyLfu`].
    pub fn build(self) -> Result<Cache<K, V, W, S>, CacheError>
    where
        K: std::hash::Hash + Eq,
        W: Weigher<K, V>,
        S: std::hash::BuildHasher,
    {
        if self.capacity == 0 {
            return Err(CacheError::InvalidCapacity {
                value: 0,
                reason: "a cache must hold at least one entry",
            });
        }
        let admission = checked_admission(self.policy, self.admission)?;
        let ttl = self
            .ttl
            .map(|d| checked_ttl("time_to_live", d))
            .transpose()?;
        let tti = self
            .tti
            .map(|d| checked_ttl("time_to_idle", d))
            .transpose()?;
        let negative_ttl = self
            .negative_ttl
            .map(|d| checked_ttl("negative_ttl", d))
            .transpose()?;
        let est = if self.weighted {
            self.estimated_entries
                .unwrap_or_else(|| usize::try_from(self.capacity / 256).unwrap_or(usize::MAX))
                .max(16)
        } else {
            usize::try_from(self.capacity).unwrap_or(usize::MAX)
        };
        let shards = match self.shards {
            Some(0) => {
                return Err(CacheError::InvalidShards {
                    value: 0,
                    reason: "a cache needs at least one shard",
                });
            }
            Some(n) if n > MAX_SHARDS => {
                return Err(CacheError::InvalidShards {
                    value: n,
                    reason: "more than MAX_SHARDS (1024)",
                });
            }
            Some(n) if n.next_power_of_two() as u64 > self.capacity => {
                // (n <= MAX_SHARDS here, so next_power_of_two cannot overflow.)
                return Err(CacheError::InvalidShards {
                    value: n,
                    reason: "more shards (rounded up to a power of two) than capacity",
                });
            }
            Some(n) => n.next_power_of_two(),
            None => auto_shards(est, self.capacity),
        };
        Ok(Cache::from_parts(
            self.capacity,
            self.weigher,
            self.weighted,
            self.hasher,
            ttl,
            tti,
            negative_ttl,
            self.policy,
            admission,
            shards,
            est,
            self.listener,
            self.record_stats,
        ))
    }
}

/// The admission to run: `asked`, or the policy's default; refuses the
/// combinations that mean nothing.
fn checked_admission(policy: Policy, asked: Option<Admission>) -> Result<Admission, CacheError> {
    let reason = match (policy, asked) {
        (Policy::Lru, Some(Admission::TinyLfu)) => {
            "exact LRU keeps every new key; use Policy::WTinyLfu for frequency-based admission"
        }
        (Policy::WTinyLfu, Some(Admission::AdmitAll)) => {
            "W-TinyLFU's admission filter is the policy; use Policy::S3Fifo or Policy::Lru to admit every key"
        }
        (_, asked) => return Ok(asked.unwrap_or(policy.default_admission())),
    };
    Err(CacheError::IncompatibleAdmission {
        policy,
        admission: asked.unwrap_or_default(),
        reason,
    })
}

/// Enough shards that each holds ≥ `MIN_SHARD_ENTRIES` entries, at most 16
/// per CPU, at most the capacity.
fn auto_shards(est: usize, capacity: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let max = prev_pow2(cpus.saturating_mul(16)).min(MAX_SHARDS);
    let want = prev_pow2(est / MIN_SHARD_ENTRIES);
    let cap = prev_pow2(usize::try_from(capacity).unwrap_or(usize::MAX));
    want.min(max).min(cap).max(1)
}

/// The largest power of two ≤ `n` (1 for 0).
pub(crate) fn prev_pow2(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}
