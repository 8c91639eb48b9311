//! Single-flight loading: one loader per key per miss wave, the other
//! callers wait for its result — blocking on a condition variable
//! (`get_or_load`) or as a future that registers its task's waker
//! (`get_or_load_async`), so an async waiter never blocks its thread.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

/// What a load produced, as seen by its waiters.
pub(crate) enum Outcome<V> {
    Running,
    Value(V),
    Failed(Arc<dyn Any + Send + Sync>),
    /// The leader panicked or was cancelled (its future dropped), or it
    /// finished without waiters to hand a value to.
    Abandoned,
}

impl<V: Clone> Outcome<V> {
    fn cloned(&self) -> Self {
        match self {
            Outcome::Running => Outcome::Abandoned,
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(Arc::clone(e)),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}

struct State<V> {
    outcome: Outcome<V>,
    /// The async waiters' wakers, woken (and dropped) by `publish`.
    wakers: Vec<Waker>,
}

/// One in-flight load of one key.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
    /// Callers that joined (registered under the shard lock, so the count
    /// is final once the flight has left the shard's map).
    waiters: AtomicUsize,
}

impl<V> std::fmt::Debug for Flight<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                outcome: Outcome::Running,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Registers a waiter (call under the shard lock).
    pub(crate) fn join(&self) {
        self.waiters.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether anyone joined (meaningful once the flight is unmapped).
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0
    }

    /// Publishes the result and wakes every waiter, blocked or async.
    pub(crate) fn publish(&self, outcome: Outcome<V>) {
        let mut s = self.state.lock();
        if matches!(s.outcome, Outcome::Running) {
            s.outcome = outcome;
        }
        let wakers = std::mem::take(&mut s.wakers);
        drop(s);
        self.done.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until the leader publishes; returns its outcome (a clone).
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut s = self.state.lock();
        while matches!(s.outcome, Outcome::Running) {
            self.done.wait(&mut s);
        }
        s.outcome.cloned()
    }

    /// Resolves when the leader publishes, to its outcome (a clone),
    /// without blocking the thread.
    pub(crate) fn wait_async(&self) -> WaitFlight<'_, V> {
        WaitFlight {
            flight: self,
            slot: None,
        }
    }
}

/// The future of [`Flight::wait_async`].
pub(crate) struct WaitFlight<'a, V> {
    flight: &'a Flight<V>,
    /// Where this waiter's waker sits in the flight's list (valid while the
    /// flight runs: `publish` empties the list only when it ends).
    slot: Option<usize>,
}

impl<V: Clone> Future for WaitFlight<'_, V> {
    type Output = Outcome<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let this = self.get_mut();
        let mut s = this.flight.state.lock();
        if !matches!(s.outcome, Outcome::Running) {
            return Poll::Ready(s.outcome.cloned());
        }
        match this.slot {
            Some(i) => {
                if !s.wakers[i].will_wake(cx.waker()) {
                    s.wakers[i] = cx.waker().clone();
                }
            }
            None => {
                this.slot = Some(s.wakers.len());
                s.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}
