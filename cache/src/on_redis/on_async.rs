//! The Redis tier for async code (feature `tokio`): over an
//! [`AsyncStore`], `get_async` / `set_async` / `delete_async` /
//! `invalidate_async` / `flush_async` with the blocking forms' semantics.
//! The store is awaited; each Redis call (GET, SET, the write + PUBLISH)
//! runs on tokio's blocking pool with the tier's connection pool (one node
//! or a Cluster alike), so no runtime worker ever waits on Redis.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::{Codec, Miss, RedisTier, RedisTieredCache};
use crate::tiered::{apply_op_async, catch_panic};
use crate::weigher::Weigher;
use crate::write_behind::Op;
use crate::{AsyncStore, CacheError};

/// Runs a blocking Redis call on tokio's blocking pool; `None` if it
/// panicked or the runtime is shutting down (read as a Redis failure).
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl<K, V, St, C, W, S> RedisTier<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: AsyncStore<K, V> + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    async fn apply_async(&self, key: &K, op: &Op<V>) -> Result<(), CacheError> {
        apply_op_async(&self.store, key, op, self.tier.store_attempts)
            .await
            .0
    }

    /// [`flush`](RedisTier::flush) over the async store.
    ///
    /// # Errors
    /// [`CacheError::FlushFailed`] if some writes failed every attempt.
    pub async fn flush_async(&self) -> Result<usize, CacheError> {
        match &self.queue {
            None => Ok(0),
            Some(q) => {
                q.flush_async(|k, o| async move { self.apply_async(&k, &o).await })
                    .await
            }
        }
    }

    /// The store write of `op` for `key`: now (write-through) or queued.
    async fn write_store_async(&self, key: &K, op: Op<V>) -> Result<(), CacheError> {
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

    /// This process's pending write, else L2, else the store (filling L2).
    async fn load_async(self: &Arc<Self>, key: &K) -> Result<Option<V>, CacheError> {
        if let Some(v) = self.pending(key) {
            return Ok(v);
        }
        let (tier, k) = (Arc::clone(self), key.clone());
        if let Some(Some(v)) = off_thread(move || tier.l2_get(&k)).await {
            return Ok(Some(v));
        }
        if let Some(v) = self.pending(key) {
            return Ok(v);
        }
        self.shared.counters.store_gets.fetch_add(1, Relaxed);
        let v = Self::from_store(catch_panic(self.store.get(key)).await)?;
        if let Some(v) = &v {
            let (tier, k, v) = (Arc::clone(self), key.clone(), v.clone());
            off_thread(move || tier.fill_l2(&k, &v)).await;
        }
        Ok(v)
    }

    /// Changes the L2 entry and tells the other processes (best effort, as
    /// in the blocking form).
    async fn write_l2_async(self: &Arc<Self>, key: &K, value: Option<V>) {
        let (tier, k) = (Arc::clone(self), key.clone());
        let _ = off_thread(move || tier.write_l2(&k, value.as_ref())).await;
    }
}

impl<K, V, St, C, W, S> RedisTieredCache<K, V, St, C, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    St: AsyncStore<K, V> + 'static,
    C: Codec<K> + Codec<V> + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// L1, else (single-flight per process, waiting as a future) Redis,
    /// else the async store filling Redis; a Redis failure falls through to
    /// the store.
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
        let r = self
            .l1
            .try_get_or_load_at_async(key, now, || async {
                match self.tier.load_async(key).await {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(Miss::NotFound),
                    Err(e) => Err(Miss::Failed(e)),
                }
            })
            .await;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => match &*e {
                Miss::NotFound => Ok(None),
                Miss::Failed(err) => Err(err.clone()),
            },
        }
    }

    /// The async store first (or this process's write-behind queue), then
    /// Redis and the other processes' L1s, then this process's L1s — as
    /// the blocking `set`; with Redis unavailable the store write stands.
    ///
    /// # Errors
    /// [`CacheError::Store`] / [`CacheError::WriteBehindFull`] when the
    /// store write failed (no tier changed).
    pub async fn set_async(&self, key: K, value: V) -> Result<(), CacheError> {
        self.set_at_async(key, value, Instant::now()).await
    }

    /// [`set_async`](Self::set_async) at time `now`.
    ///
    /// # Errors
    /// As [`set_async`](Self::set_async).
    pub async fn set_at_async(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        self.tier
            .write_store_async(&key, Op::Put(value.clone()))
            .await?;
        self.tier.write_l2_async(&key, Some(value.clone())).await;
        self.invalidate_local(&key);
        if self.l1.insert_at(key.clone(), value, now).is_err() {
            self.l1.remove(&key);
        }
        Ok(())
    }

    /// Deletes `key` from the async store (or queues it), Redis and every
    /// L1.
    ///
    /// # Errors
    /// As [`set_async`](Self::set_async).
    pub async fn delete_async(&self, key: &K) -> Result<(), CacheError> {
        self.tier.write_store_async(key, Op::Delete).await?;
        self.invalidate_async(key).await;
        Ok(())
    }

    /// Removes `key` from Redis and every L1 (this process's and, through
    /// the channel, the others'), leaving the store.
    pub async fn invalidate_async(&self, key: &K) {
        self.tier.write_l2_async(key, None).await;
        self.invalidate_local(key);
        self.l1.remove(key);
    }
}
