//! The per-shard reader-writer lock: `parking_lot::RwLock`, with write
//! acquisitions that had to wait reported (contention counter).
//!
//! A read takes the shared lock (one atomic on the lock word); a write the
//! exclusive one. A big-reader lock (per-thread reader slots) was measured
//! as well (the `cache_zipf_*` benches) and was not faster: its reads cost
//! more and its writes lock every slot.

use std::ops::{Deref, DerefMut};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) struct ShardLock<T>(RwLock<T>);

pub(crate) struct ReadGuard<'a, T>(RwLockReadGuard<'a, T>);
pub(crate) struct WriteGuard<'a, T>(RwLockWriteGuard<'a, T>);

impl<T> ShardLock<T> {
    pub(crate) fn new(t: T) -> Self {
        Self(RwLock::new(t))
    }

    /// Shared access.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        ReadGuard(self.0.read())
    }

    /// Exclusive access; `Err` carries the guard when the lock had to wait
    /// for another thread.
    #[inline]
    pub(crate) fn write(&self) -> Result<WriteGuard<'_, T>, WriteGuard<'_, T>> {
        match self.0.try_write() {
            Some(g) => Ok(WriteGuard(g)),
            None => Err(WriteGuard(self.0.write())),
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
