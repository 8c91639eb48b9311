//! The tiers over an async source of truth ([`AsyncStore`]: a database
//! client on tokio, say): GET / SET / DELETE / flush as futures that never
//! block their thread. Same tiers, same single-flight fills, same
//! per-key write order as the blocking forms: a writer holds the key's
//! write lock across the store's `.await` (it parks the task, not the
//! thread), and a cancelled writer releases it.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{Miss, SharedTier, TieredCache};
use crate::weigher::Weigher;
use crate::write_behind::Op;
use crate::{CacheError, StorePanic};

/// The source of truth behind the cache tiers, for async code: the
/// [`Store`](super::Store) contract (a value, `None`, or an error; writes
/// retried `store_attempts` times) with futures. A store future that
/// panics counts as a failed attempt ([`StorePanic`]), as in the blocking
/// form.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use dispatchkit_cache::{AsyncStore, Cache, SharedTier, TierConfig};
///
/// #[derive(Default)]
/// struct Db(Mutex<HashMap<u64, String>>);
///
/// impl AsyncStore<u64, String> for Db {
///     type Error = std::io::Error;
///     async fn get(&self, key: &u64) -> Result<Option<String>, Self::Error> {
///         Ok(self.0.lock().unwrap().get(key).cloned()) // a query, awaited
///     }
///     async fn put(&self, key: &u64, value: &String) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().insert(*key, value.clone());
///         Ok(())
///     }
///     async fn delete(&self, key: &u64) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().remove(key);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let shared = SharedTier::new(Cache::new(10_000)?, Db::default(), TierConfig::default())?;
/// let (a, b) = (shared.instance(Cache::new(100)?), shared.instance(Cache::new(100)?));
/// a.set_async(7, "tacos".to_string()).await?; // store, L2, b's L1 invalidated, a's L1
/// assert_eq!(b.get_async(&7).await?.as_deref(), Some("tacos"));
/// # Ok::<(), dispatchkit_cache::CacheError>(())
/// # })?;
/// # Ok::<(), dispatchkit_cache::CacheError>(())
/// ```
pub trait AsyncStore<K, V>: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value of `key`, `None` if the store has none.
    fn get(&self, key: &K) -> impl Future<Output = Result<Option<V>, Self::Error>> + Send;

    /// Writes `value` for `key`.
    fn put(&self, key: &K, value: &V) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes `key` (deleting an absent key succeeds).
    fn delete(&self, key: &K) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Polls a store future (boxed: one allocation per store call, which is
/// I/O anyway), turning a panic into a [`StorePanic`] error.
pub(crate) struct CatchPanic<F>(Pin<Box<F>>);

pub(crate) fn catch_panic<F>(f: F) -> CatchPanic<F> {
    CatchPanic(Box::pin(f))
}

impl<F, T, E> Future for CatchPanic<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Output = Result<T, Arc<dyn std::error::Error + Send + Sync>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(v))) => Poll::Ready(Ok(v)),
            Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(Arc::new(e))),
            Err(payload) => Poll::Ready(Err(Arc::new(StorePanic::from_payload(payload.as_ref())))),
        }
    }
}

/// [`apply_op`](super::apply_op) for an async store: `op` for `key` with up
/// to `attempts` tries (a panic counts as a failed try); the result and how
/// many tries failed.
pub(crate) async fn apply_op_async<K, V, St: AsyncStore<K, V>>(
    store: &St,
    key: &K,
    op: &Op<V>,
    attempts: u32,
) -> (Result<(), CacheError>, u32) {
    let mut last = None;
    for failed in 0..attempts {
        let r = match op {
            Op::Put(v) => catch_panic(store.put(key, v)).await,
            Op::Delete => catch_panic(store.delete(key)).await,
        };
        match r {
            Ok(()) => return (Ok(()), failed),
            Err(e) => last = Some(e),
        }
    }
    super::gave_up(op, attempts, last)
}

impl<K, V, St, W, S> SharedTier<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    St: AsyncStore<K, V>,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// [`apply`](SharedTier::apply) for an async store: up to
    /// `store_attempts` tries, a panic counting as a failed one.
    async fn apply_async(&self, key: &K, op: &Op<V>) -> Result<(), CacheError> {
        let (r, errors) = apply_op_async(&self.store, key, op, self.config.store_attempts).await;
        self.counters.errors.fetch_add(u64::from(errors), Relaxed);
        if r.is_ok() {
            self.count_applied(op);
        }
        r
    }

    /// [`flush`](SharedTier::flush) for an async store. Dropped mid-flush,
    /// the writes not yet applied stay pending.
    ///
    /// # Errors
    /// As [`flush`](SharedTier::flush).
    pub async fn flush_async(&self) -> Result<usize, CacheError> {
        match &self.queue {
            None => Ok(0),
            Some(q) => {
                q.flush_async(|k, o| async move { self.apply_async(&k, &o).await })
                    .await
            }
        }
    }

    /// Stores `op` for `key` (write-through) or queues it (write-behind,
    /// draining the oldest write when the queue is full).
    async fn write_async(&self, key: &K, op: Op<V>) -> Result<(), CacheError> {
        match &self.queue {
            None => self.apply_async(key, &op).await,
            Some(q) => {
                q.enqueue_async(
                    key,
                    op,
                    |k, o| async move { self.apply_async(&k, &o).await },
                )
                .await
            }
        }
    }

    async fn load_l2_async(&self, key: &K, now: Instant) -> Result<V, Miss> {
        self.l2
            .try_get_or_load_at_async(key, now, || async {
                if let Some(pending) = self.pending_read(key) {
                    return pending;
                }
                self.counters.gets.fetch_add(1, Relaxed);
                self.store_read(catch_panic(self.store.get(key)).await)
            })
            .await
            .map_err(|e| (*e).clone())
    }
}

impl<K, V, St, W, S> TieredCache<K, V, St, W, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    St: AsyncStore<K, V>,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// [`get`](TieredCache::get) over an async store: L1, else L2, else the
    /// pending write-behind write or the store, filling L2 and L1;
    /// concurrent misses (tasks of any instance) load once, waiting as
    /// futures.
    ///
    /// # Errors
    /// [`CacheError::Store`] when the store read failed.
    pub async fn get_async(&self, key: &K) -> Result<Option<V>, CacheError> {
        self.get_at_async(key, Instant::now()).await
    }

    /// [`get_async`](Self::get_async) at time `now`.
    ///
    /// # Errors
    /// As [`get_async`](Self::get_async).
    pub async fn get_at_async(&self, key: &K, now: Instant) -> Result<Option<V>, CacheError> {
        let sh = &self.shared;
        match self
            .l1
            .try_get_or_load_at_async(key, now, || sh.load_l2_async(key, now))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) => match &*e {
                Miss::NotFound => Ok(None),
                Miss::Store(err) => Err(err.clone()),
            },
        }
    }

    /// [`set`](TieredCache::set) over an async store: the store (or its
    /// queue), L2, every other instance's L1 invalidated, this instance's
    /// L1, in the key's write order. A cancelled call (future dropped) may
    /// have reached the store but no tier: the tiers then still hold the
    /// old value until its TTL or the next write of the key.
    ///
    /// # Errors
    /// As [`set`](TieredCache::set); on error no tier was changed.
    pub async fn set_async(&self, key: K, value: V) -> Result<(), CacheError> {
        self.set_at_async(key, value, Instant::now()).await
    }

    /// [`set_async`](Self::set_async) at time `now`.
    ///
    /// # Errors
    /// As [`set`](TieredCache::set).
    pub async fn set_at_async(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        let sh = &self.shared;
        sh.l2.check_instant(now)?;
        self.l1.check_instant(now)?;
        let _guard = sh.write_lock_async(&key).await;
        sh.write_async(&key, Op::Put(value.clone())).await?;
        self.fill(key, value, now);
        Ok(())
    }

    /// [`delete`](TieredCache::delete) over an async store.
    ///
    /// # Errors
    /// As [`delete`](TieredCache::delete); on error no tier was changed.
    pub async fn delete_async(&self, key: &K) -> Result<(), CacheError> {
        self.delete_at_async(key, Instant::now()).await
    }

    /// [`delete_async`](Self::delete_async) at time `now`.
    ///
    /// # Errors
    /// As [`delete`](TieredCache::delete).
    pub async fn delete_at_async(&self, key: &K, now: Instant) -> Result<(), CacheError> {
        let sh = &self.shared;
        let _guard = sh.write_lock_async(key).await;
        sh.write_async(key, Op::Delete).await?;
        self.drop_key(key, now);
        Ok(())
    }
}
