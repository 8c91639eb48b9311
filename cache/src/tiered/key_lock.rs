//! The tiers' per-key write lock (striped): held across a store write so
//! that every tier sees the writes of one key in one order. Taken by
//! blocking writers (`set`) and by async ones (`set_async`, which hold it
//! across the store's `.await`), so it parks a thread on a condition
//! variable or a task on its waker — never a task's thread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct State {
    held: bool,
    /// Async waiters, all woken on unlock (one wins, the others wait again).
    wakers: Vec<Waker>,
}

/// One stripe of the write lock.
#[derive(Default)]
pub(crate) struct KeyLock {
    state: Mutex<State>,
    /// Blocking waiters.
    freed: Condvar,
}

/// Held while the stripe is locked; unlocks on drop (also when an async
/// writer's future is dropped mid-write).
pub(crate) struct KeyGuard<'a>(&'a KeyLock);

impl KeyLock {
    /// Blocks the thread until the stripe is free, then holds it.
    pub(crate) fn lock(&self) -> KeyGuard<'_> {
        let mut s = self.state.lock();
        while s.held {
            self.freed.wait(&mut s);
        }
        s.held = true;
        KeyGuard(self)
    }

    /// Resolves (without blocking the thread) once the stripe is held.
    pub(crate) fn lock_async(&self) -> LockFuture<'_> {
        LockFuture(self)
    }

    fn unlock(&self) {
        let mut s = self.state.lock();
        s.held = false;
        let wakers = std::mem::take(&mut s.wakers);
        drop(s);
        self.freed.notify_one();
        for w in wakers {
            w.wake();
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// The future of [`KeyLock::lock_async`].
pub(crate) struct LockFuture<'a>(&'a KeyLock);

impl<'a> Future for LockFuture<'a> {
    type Output = KeyGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<KeyGuard<'a>> {
        let lock = self.0;
        let mut s = lock.state.lock();
        if s.held {
            // Registered under the state lock: an unlock after this point
            // sees (and wakes) this waker.
            if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                s.wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        s.held = true;
        Poll::Ready(KeyGuard(lock))
    }
}
