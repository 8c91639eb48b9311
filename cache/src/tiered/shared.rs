//! [`SharedTier`]: the state every [`TieredCache`] instance shares (L2,
//! the store, the write-behind queue, the per-key write locks and the
//! registry of instance L1s), and the tier logic that runs on it.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::{
    Miss, Store, StoreCounters, TierConfig, TieredCache, WriteMode, catch_store, store_source,
};
use crate::CacheError;
use crate::cache::{Cache, DefaultHashBuilder};
use crate::weigher::{UnitWeigher, Weigher};
use crate::write_behind::{Enqueued, Op, Queue};

/// The registry of instance L1s, by instance id.
type Registry<K, V, W, S> = RwLock<Vec<(u64, Weak<Cache<K, V, W, S>>)>>;

/// Stripes of the per-key write lock.
const WRITE_STRIPES: usize = 64;

/// The state every [`TieredCache`] instance shares: the L2 cache, the
/// store, the write-behind queue, the per-key write locks and the registry
/// of instance L1s that invalidations are broadcast to.
pub struct SharedTier<K, V, St, W = UnitWeigher, S = DefaultHashBuilder> {
    pub(super) l2: Cache<K, V, W, S>,
    store: St,
    config: TierConfig,
    pub(super) queue: Option<Mutex<Queue<K, V>>>,
    write_locks: Box<[Mutex<()>]>,
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

impl<K, V, St, W, S> SharedTier<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    St: Store<K, V>,
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
            WriteMode::Behind { queue_capacity } => Some(Mutex::new(Queue::new(queue_capacity))),
        };
        Ok(Arc::new(Self {
            l2,
            store,
            config,
            queue,
            write_locks: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
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
        self.queue.as_ref().map_or(0, |q| q.lock().len())
    }

    pub(super) fn write_lock(&self, key: &K) -> parking_lot::MutexGuard<'_, ()> {
        let i = self.stripe_hasher.hash_one(key) as usize % WRITE_STRIPES;
        self.write_locks[i].lock()
    }

    /// Applies `op` to the store with up to `store_attempts` tries. A
    /// store that panics counts as a failed attempt ([`StorePanic`]): the
    /// cache's state stays consistent and the write is retried or reported.
    pub(super) fn apply(&self, key: &K, op: &Op<V>) -> Result<(), CacheError> {
        let attempts = self.config.store_attempts;
        let operation = match op {
            Op::Put(_) => "put",
            Op::Delete => "delete",
        };
        let mut last = None;
        for _ in 0..attempts {
            let r = catch_store(|| match op {
                Op::Put(v) => self.store.put(key, v),
                Op::Delete => self.store.delete(key),
            });
            match r {
                Ok(()) => {
                    match op {
                        Op::Put(_) => &self.counters.puts,
                        Op::Delete => &self.counters.deletes,
                    }
                    .fetch_add(1, Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    self.counters.errors.fetch_add(1, Relaxed);
                    last = Some(e);
                }
            }
        }
        match last {
            Some(source) => Err(CacheError::Store {
                operation,
                attempts,
                source,
            }),
            None => Ok(()),
        }
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
        let Some(queue) = &self.queue else {
            return Ok(0);
        };
        let batch = {
            let mut q = queue.lock();
            let n = q.len();
            q.begin_batch(n)
        };
        let mut batch = InFlight::new(queue, batch);
        let mut applied = 0;
        let mut failed = 0;
        let mut first_error = None;
        while let Some((key, op, _)) = batch.next() {
            let r = self.apply(key, op);
            batch.finish(r.as_ref().map(|_| ()));
            match r {
                Ok(()) => applied += 1,
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(applied),
            Some(e) => Err(CacheError::FlushFailed {
                applied,
                failed,
                source: store_source(e),
            }),
        }
    }

    /// Pending write-behind writes whose last attempt failed, with that
    /// error (write-through: empty). They stay pending and are retried by
    /// the next [`flush`](Self::flush) (or a SET that drains the queue).
    pub fn failed_writes(&self) -> Vec<(K, CacheError)> {
        self.queue
            .as_ref()
            .map_or_else(Vec::new, |q| q.lock().failures())
    }

    /// Queues `op` for `key`. When the queue is full this call applies the
    /// oldest queued write itself (at most `store_attempts` store calls);
    /// it never waits for another thread.
    pub(super) fn enqueue(
        &self,
        queue: &Mutex<Queue<K, V>>,
        key: &K,
        op: Op<V>,
    ) -> Result<(), CacheError> {
        loop {
            let oldest = {
                let mut q = queue.lock();
                match q.enqueue(key, op.clone()) {
                    Enqueued::New => return Ok(()),
                    Enqueued::Coalesced => {
                        self.counters.coalesced.fetch_add(1, Relaxed);
                        return Ok(());
                    }
                    Enqueued::Full => {
                        let oldest = q.begin_batch(1);
                        if oldest.is_empty() {
                            // Every pending write is being applied by a
                            // concurrent flush: refuse rather than wait.
                            return Err(CacheError::QueueFull {
                                capacity: q.capacity(),
                                in_flight: q.in_flight(),
                            });
                        }
                        oldest
                    }
                }
            };
            let capacity = queue.lock().capacity();
            let mut oldest = InFlight::new(queue, oldest);
            let Some((k, o, _)) = oldest.next() else {
                continue;
            };
            let r = self.apply(k, o);
            oldest.finish(r.as_ref().map(|_| ()));
            if let Err(e) = r {
                return Err(CacheError::WriteBehindFull {
                    capacity,
                    source: store_source(e),
                });
            }
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
        if let Some(queue) = &self.queue
            && let Some(op) = queue.lock().peek(key).cloned()
        {
            self.counters.pending_reads.fetch_add(1, Relaxed);
            return match op {
                Op::Put(v) => Ok(v),
                Op::Delete => Err(Miss::NotFound),
            };
        }
        self.counters.gets.fetch_add(1, Relaxed);
        match catch_store(|| self.store.get(key)) {
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
            q.lock().check_invariants();
        }
    }
}

/// Write-behind writes taken out of the queue to be applied: each is
/// finished with its result, and whatever is not finished when this is
/// dropped (a panic while applying) goes back to pending, so a key is
/// never left "in flight" for ever.
struct InFlight<'a, K: Hash + Eq + Clone, V: Clone> {
    queue: &'a Mutex<Queue<K, V>>,
    items: Vec<(K, Op<V>, u64)>,
    /// Items before this index are finished; `items[next - 1]` is the one
    /// handed out by the last `next`, unfinished while `open`.
    next: usize,
    open: bool,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> InFlight<'a, K, V> {
    fn new(queue: &'a Mutex<Queue<K, V>>, items: Vec<(K, Op<V>, u64)>) -> Self {
        Self {
            queue,
            items,
            next: 0,
            open: false,
        }
    }

    /// The next write to apply.
    fn next(&mut self) -> Option<(&K, &Op<V>, u64)> {
        debug_assert!(!self.open, "finish the previous write first");
        let (k, o, seq) = self.items.get(self.next)?;
        self.next += 1;
        self.open = true;
        Some((k, o, *seq))
    }

    /// Records the result of the write handed out by `next`.
    fn finish(&mut self, result: Result<(), &CacheError>) {
        if let Some((k, _, seq)) = self.items.get(self.next - 1)
            && self.open
        {
            self.open = false;
            self.queue.lock().finish(k.clone(), *seq, result);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for InFlight<'_, K, V> {
    fn drop(&mut self) {
        let from = if self.open { self.next - 1 } else { self.next };
        if from >= self.items.len() {
            return;
        }
        let abandoned = CacheError::FlushAbandoned;
        let mut q = self.queue.lock();
        for (k, _, seq) in self.items.drain(from..) {
            q.finish(k, seq, Err(&abandoned));
        }
    }
}
