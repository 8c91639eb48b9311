//! Single-flight loading: one loader per key per miss wave, the other
//! callers wait for its result.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

/// What a load produced, as seen by its waiters.
pub(crate) enum Outcome<V> {
    Running,
    Value(V),
    Failed(Arc<dyn Any + Send + Sync>),
    /// The leader panicked, or finished without waiters to hand a value to.
    Abandoned,
}

/// One in-flight load of one key.
pub(crate) struct Flight<V> {
    state: Mutex<Outcome<V>>,
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
            state: Mutex::new(Outcome::Running),
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

    /// Publishes the result and wakes every waiter.
    pub(crate) fn publish(&self, outcome: Outcome<V>) {
        let mut s = self.state.lock();
        if matches!(*s, Outcome::Running) {
            *s = outcome;
        }
        drop(s);
        self.done.notify_all();
    }

    /// Blocks until the leader publishes; returns its outcome (a clone).
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut s = self.state.lock();
        while matches!(*s, Outcome::Running) {
            self.done.wait(&mut s);
        }
        match &*s {
            Outcome::Running => Outcome::Abandoned,
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(Arc::clone(e)),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}
