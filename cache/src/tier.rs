//! The interface an application programs against for the tiers: one
//! instance's view (its L1 over a shared tier over the store), whatever
//! holds the shared tier — [`TieredCache`](crate::TieredCache) (in-process
//! L2) or, with the `redis` feature, `RedisTieredCache` (L2 on Redis, every
//! process's L1 invalidated through pub/sub). One conformance suite
//! (`tests/tier_conformance.rs`) runs against both.

use std::time::Instant;

use crate::CacheError;

/// One instance's cache tiers.
pub trait Tier<K, V>: Send + Sync {
    /// The value of `key`: L1, else the shared tier, else the store (filling
    /// the tiers on the way back); `None` when the store has none.
    ///
    /// # Errors
    /// [`CacheError::Store`] when the store failed.
    fn get_at(&self, key: &K, now: Instant) -> Result<Option<V>, CacheError>;

    /// Writes `value` through the tiers: the store, the shared tier, every
    /// other instance's L1 invalidated, this instance's L1.
    ///
    /// # Errors
    /// [`CacheError::Store`] when the store refused the write (no tier
    /// changed), and the backend's own refusals.
    fn set_at(&self, key: K, value: V, now: Instant) -> Result<(), CacheError>;

    /// Deletes `key` from the store and every tier.
    ///
    /// # Errors
    /// [`CacheError::Store`] when the store refused.
    fn delete_at(&self, key: &K, now: Instant) -> Result<(), CacheError>;

    /// Drops `key` from every tier (not the store): the next read loads it.
    fn invalidate_at(&self, key: &K, now: Instant);

    /// [`get_at`](Self::get_at) now.
    ///
    /// # Errors
    /// As [`get_at`](Self::get_at).
    fn get(&self, key: &K) -> Result<Option<V>, CacheError> {
        self.get_at(key, Instant::now())
    }

    /// [`set_at`](Self::set_at) now.
    ///
    /// # Errors
    /// As [`set_at`](Self::set_at).
    fn set(&self, key: K, value: V) -> Result<(), CacheError> {
        self.set_at(key, value, Instant::now())
    }

    /// [`delete_at`](Self::delete_at) now.
    ///
    /// # Errors
    /// As [`delete_at`](Self::delete_at).
    fn delete(&self, key: &K) -> Result<(), CacheError> {
        self.delete_at(key, Instant::now())
    }
}
