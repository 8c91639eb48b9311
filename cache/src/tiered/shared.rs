//! [`SharedTier`]: the state every [`TieredCache`] instance shares (L2,
//! the store, the write-behind queue, the per-key write locks and the
//! registry of instance L1s), and the tier logic that runs on it.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::RwLock;

use super::key_lock::{KeyGuard, KeyLock};
use super::{
    Miss, Store, StoreCounters, TierConfig, TieredCache, WriteMode, apply_op, catch_store,
};
use crate::CacheError;
use crate::cache::{Cache, DefaultHashBuilder};
use crate::weigher::{UnitWeigher, Weigher};
use crate::write_behind::{Op, WriteBehind};

/// The registry of instance L1s, by instance id.
type Registry<K, V, W, S> = RwLock<Vec<(u64, Weak<Cache<K, V, W, S>>)>>;

/// Stripes of the per-key write lock.
const WRITE_STRIPES: usize = 64;

/// The state every [`TieredCache`] instance shares: the L2 cache, the
/// store, the write-behind queue, the per-key write locks and the registry
/// of instance L1s that invalidations are broadcast to.
pub struct SharedTier<K, V, St, W = UnitWeigher, S = DefaultHashBuilder> {
    pub(super) l2: Cache<K, V, W, S>,
    pub(super) store: St,
    pub(super) config: TierConfig,
    pub(super) queue: Option<WriteBehind<K, V>>,
    write_locks: Box<[KeyLock]>,
    stripe_hasher: foldhash::fast::RandomState,
    pub(super) instances: Registry<K, V, W, S>,
    next_instance: AtomicU64,
    pub(super) counters: StoreCounters,
}

impl<K, V, St, W, S> fmt::Debug for SharedTier<K, V, St, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTier")
            .field("l2", &self.l2)
            .field("config", &self.config)
            .field("instances", &self.instances.read().len())
            .finish_non_exhaustive()
    }
}

/// What every shared tier does, whatever its store (blocking [`Store`]
/// or [`AsyncStore`](super::AsyncStore)).
impl<K, V, St, W, S> SharedTier<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// A shared tier over `l2` and `store`.
    ///
    /// # Errors
    /// [`CacheError::InvalidSetting`] for `store_attempts == 0` or a
    /// write-behind `queue_capacity == 0`.
    ///
    /// ```
    /// # use std::collections::HashMap;
    /// # use std::sync::Mutex;
    /// # use dispatchkit_cache::Store;
    /// # #[derive(Default)]
    /// # struct Db(Mutex<HashMap<u64, String>>);
    /// # impl Store<u64, String> for Db {
    /// #     type Error = std::io::Error;
    /// #     fn get(&self, key: &u64) -> Result<Option<String>, Self::Error> { Ok(self.0.lock().unwrap().get(key).cloned()) }
    /// #     fn put(&self, key: &u64, value: &String) -> Result<(), Self::Error> { self.0.lock().unwrap().insert(*key, value.clone()); Ok(()) }
    /// #     fn delete(&self, key: &u64) -> Result<(), Self::Error> { self.0.lock().unwrap().remove(key); Ok(()) }
    /// # }
    /// use std::time::Duration;
    /// use dispatchkit_cache::{Cache, SharedTier, TierConfig, WriteMode};
    ///
    /// let l2 = Cache::builder(100_000).time_to_live(Duration::from_secs(600)).build()?;
    /// let config = TierConfig { write_mode: WriteMode::Behind { queue_capacity: 1024 }, ..TierConfig::default() };
    /// let shared = SharedTier::new(l2, Db::default(), config)?;
    /// let a = shared.instance(Cache::builder(1_000).time_to_live(Duration::from_secs(60)).build()?);
    /// let b = shared.instance(Cache::builder(1_000).time_to_live(Duration::from_secs(60)).build()?);
    ///
    /// a.set(7, "pad thai".to_string())?;          // L1(a), L2; store write queued
    /// assert_eq!(b.get(&7)?, Some("pad thai".to_string())); // L1(b) miss, L2 hit
    /// b.set(7, "green curry".to_string())?;       // removes 7 from L1(a)
    /// assert_eq!(a.get(&7)?.as_deref(), Some("green curry"));
    /// assert_eq!(shared.flush()?, 1);              // one coalesced store write
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub fn new(
        l2: Cache<K, V, W, S>,
        store: St,
        config: TierConfig,
    ) -> Result<Arc<Self>, CacheError> {
        config.validate()?;
        let queue = match config.write_mode {
            WriteMode::Through => None,
            WriteMode::Behind { queue_capacity } => Some(WriteBehind::new(queue_capacity)),
        };
        Ok(Arc::new(Self {
            l2,
            store,
            config,
            queue,
            write_locks: (0..WRITE_STRIPES).map(|_| KeyLock::default()).collect(),
            stripe_hasher: foldhash::fast::RandomState::default(),
            instances: RwLock::new(Vec::new()),
            next_instance: AtomicU64::new(0),
            counters: StoreCounters::default(),
        }))
    }

    /// A new instance with its own `l1`, registered for invalidations.
    pub fn instance(self: &Arc<Self>, l1: Cache<K, V, W, S>) -> TieredCache<K, V, St, W, S> {
        let l1 = Arc::new(l1);
        let id = self.next_instance.fetch_add(1, Relaxed);
        let mut list = self.instances.write();
        list.retain(|(_, w)| w.strong_count() > 0);
        list.push((id, Arc::downgrade(&l1)));
        drop(list);
        TieredCache {
            l1,
            shared: Arc::clone(self),
            id,
        }
    }

    /// The shared L2 cache.
    pub fn l2(&self) -> &Cache<K, V, W, S> {
        &self.l2
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> TierConfig {
        self.config
    }

    /// Number of live instances.
    pub fn instance_count(&self) -> usize {
        self.instances
            .read()
            .iter()
            .filter(|(_, w)| w.strong_count() > 0)
            .count()
    }

    /// Write-behind writes pending (0 in write-through mode).
    pub fn pending_writes(&self) -> usize {
        self.queue.as_ref().map_or(0, WriteBehind::len)
    }

    fn stripe(&self, key: &K) -> &KeyLock {
        &self.write_locks[self.stripe_hasher.hash_one(key) as usize % WRITE_STRIPES]
    }

    /// The key's write lock, blocking the thread while another writer
    /// holds it.
    pub(super) fn write_lock(&self, key: &K) -> KeyGuard<'_> {
        self.stripe(key).lock()
    }

    /// The key's write lock, waited for as a future.
    pub(super) async fn write_lock_async(&self, key: &K) -> KeyGuard<'_> {
        self.stripe(key).lock_async().await
    }

    /// Counts a store write that succeeded.
    pub(super) fn count_applied(&self, op: &Op<V>) {
        match op {
            Op::Put(_) => &self.counters.puts,
            Op::Delete => &self.counters.deletes,
        }
        .fetch_add(1, Relaxed);
    }

    /// A read a pending write-behind write answers (the store is stale).
    pub(super) fn pending_read(&self, key: &K) -> Option<Result<V, Miss>> {
        let op = self.queue.as_ref()?.peek(key)?;
        self.counters.pending_reads.fetch_add(1, Relaxed);
        Some(match op {
            Op::Put(v) => Ok(v),
            Op::Delete => Err(Miss::NotFound),
        })
    }

    /// A store read's result as a tier load's.
    pub(super) fn store_read(
        &self,
        r: Result<Option<V>, Arc<dyn std::error::Error + Send + Sync>>,
    ) -> Result<V, Miss> {
        match r {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Miss::NotFound),
            Err(source) => {
                self.counters.errors.fetch_add(1, Relaxed);
                Err(Miss::Store(CacheError::Store {
                    operation: "get",
                    attempts: 1,
                    source,
                }))
            }
        }
    }

    /// Pending write-behind writes whose last attempt failed, with that
    /// error (write-through: empty). They stay pending and are retried by
    /// the next flush (or a SET that drains the queue).
    pub fn failed_writes(&self) -> Vec<(K, CacheError)> {
        self.queue
            .as_ref()
            .map_or_else(Vec::new, WriteBehind::failures)
    }

    /// Removes `key` from every instance's L1 except `except`'s.
    pub(super) fn broadcast_invalidate(&self, key: &K, except: u64, now: Instant) {
        let targets: Vec<Arc<Cache<K, V, W, S>>> = self
            .instances
            .read()
            .iter()
            .filter(|(id, _)| *id != except)
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        for l1 in targets {
            l1.remove_at(key, now);
            self.counters.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// Checks the write-behind queue's invariants. For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.l2.check_invariants();
        if let Some(q) = &self.queue {
            q.check_invariants();
        }
    }
}

/// The tier logic over a blocking [`Store`].
impl<K, V, St, W, S> SharedTier<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    St: Store<K, V>,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Applies `op` to the store with up to `store_attempts` tries. A
    /// store that panics counts as a failed attempt ([`StorePanic`]): the
    /// cache's state stays consistent and the write is retried or reported.
    pub(super) fn apply(&self, key: &K, op: &Op<V>) -> Result<(), CacheError> {
        let (r, errors) = apply_op(&self.store, key, op, self.config.store_attempts);
        self.counters.errors.fetch_add(u64::from(errors), Relaxed);
        if r.is_ok() {
            self.count_applied(op);
        }
        r
    }

    /// Applies every write pending when called (writes that arrive meanwhile
    /// stay queued); returns how many were applied. Write-through: `Ok(0)`.
    /// Concurrent flushes split the queue between them. A store that
    /// errors or panics never loses a write and never wedges the queue: the
    /// write goes back to pending with its error
    /// ([`SharedTier::failed_writes`]) and the next flush retries it.
    ///
    /// # Errors
    /// [`CacheError::FlushFailed`] if some writes failed every attempt; they
    /// stay queued (nothing is dropped) and the next flush retries them.
    pub fn flush(&self) -> Result<usize, CacheError> {
        match &self.queue {
            None => Ok(0),
            Some(q) => q.flush(|k, o| self.apply(k, o)),
        }
    }

    /// Loads `key` into L2 (single-flight across instances): a pending
    /// write-behind write first, then the store.
    pub(super) fn load_l2(&self, key: &K, now: Instant) -> Result<V, Miss> {
        self.l2
            .try_get_or_load_at(key, now, || self.load_l3(key))
            .map_err(|e| (*e).clone())
    }

    fn load_l3(&self, key: &K) -> Result<V, Miss> {
        if let Some(pending) = self.pending_read(key) {
            return pending;
        }
        self.counters.gets.fetch_add(1, Relaxed);
        self.store_read(catch_store(|| self.store.get(key)))
    }
}
