//! `get_or_load` and its fallible, timed and async forms: single-flight loads
//! through the shards' flight tables (the flight itself is `crate::load`),
//! with negative caching of failures.

use std::any::Any;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Instant;

use super::{Cache, Out};
use crate::load::{Flight, Outcome};
use crate::shard::Shard;
use crate::time::{LazyTick, NEVER, deadline};
use crate::weigher::Weigher;
#[cfg(doc)]
use crate::{CacheBuilder, CacheStats};

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// The live value of `key`, or the value `loader` produces for it,
    /// inserted with the default TTL. Concurrent callers that miss on the
    /// same key run ONE loader (the first); the others block until it
    /// returns and get its value (single-flight, counted in
    /// [`CacheStats::load_waits`]). A loader result that is too heavy to
    /// cache is still returned. If the leader panics, a waiter retries.
    ///
    /// Waiting blocks the thread: in async code use
    /// [`get_or_load_async`](Self::get_or_load_async) (a blocking waiter on
    /// a runtime thread can stall the task it waits for).
    ///
    /// ```
    /// use dispatchkit_cache::Cache;
    ///
    /// let cache = Cache::<u64, String>::new(100)?;
    /// let v = cache.get_or_load(&7, || "loaded".to_string());
    /// assert_eq!(v, "loaded");
    /// assert_eq!(cache.get_or_load(&7, || unreachable!()), "loaded");
    /// assert_eq!(cache.stats().loads, 1);
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub fn get_or_load(&self, key: &K, loader: impl FnOnce() -> V) -> V
    where
        K: Clone,
        V: Clone,
    {
        match self.load_inner::<std::convert::Infallible>(
            key,
            &mut LazyTick::lazy(&self.epoch),
            || Ok(loader()),
        ) {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// [`get_or_load`](Self::get_or_load) at time `now`.
    pub fn get_or_load_at(&self, key: &K, now: Instant, loader: impl FnOnce() -> V) -> V
    where
        K: Clone,
        V: Clone,
    {
        match self.load_inner::<std::convert::Infallible>(
            key,
            &mut LazyTick::at(&self.epoch, now),
            || Ok(loader()),
        ) {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// Like [`get_or_load`](Self::get_or_load) with a fallible loader. An
    /// error is returned (shared, as `Arc<E>`, with every caller that waited
    /// for this load) and is **not cached**, unless the cache was built with
    /// [`negative_ttl`](CacheBuilder::negative_ttl): then calls within that
    /// TTL get the same error without loading
    /// ([`CacheStats::negative_hits`]). A write or remove of the key forgets
    /// the failure.
    ///
    /// # Errors
    /// The loader's error (this call's, the awaited leader's, or a
    /// negatively cached one).
    ///
    /// ```
    /// use dispatchkit_cache::Cache;
    ///
    /// let cache = Cache::<u64, u64>::new(100)?;
    /// let r = cache.try_get_or_load(&1, || Err::<u64, _>("store down"));
    /// assert_eq!(r.unwrap_err().as_ref(), &"store down");
    /// // Not cached: the next call loads again.
    /// assert_eq!(cache.try_get_or_load(&1, || Ok::<_, &str>(5)), Ok(5));
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub fn try_get_or_load<E>(
        &self,
        key: &K,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        self.load_inner(key, &mut LazyTick::lazy(&self.epoch), loader)
    }

    /// [`try_get_or_load`](Self::try_get_or_load) at time `now`.
    ///
    /// # Errors
    /// As [`try_get_or_load`](Self::try_get_or_load).
    pub fn try_get_or_load_at<E>(
        &self,
        key: &K,
        now: Instant,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        self.load_inner(key, &mut LazyTick::at(&self.epoch, now), loader)
    }

    /// [`get_or_load`](Self::get_or_load) for async code: the loader is a
    /// future, and callers that miss on a key another task is loading wait
    /// as futures (their task's waker is registered; no thread blocks), so
    /// it runs on any executor, a current-thread runtime included. If the
    /// loading task is cancelled (its future dropped mid-load) one of the
    /// waiters runs its own loader instead. A hit returns without awaiting.
    ///
    /// ```
    /// use dispatchkit_cache::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = Cache::<u64, String>::new(100)?;
    /// let v = cache.get_or_load_async(&7, || async { "loaded".to_string() }).await;
    /// assert_eq!(v, "loaded");
    /// assert_eq!(cache.get_or_load_async(&7, || async { unreachable!() }).await, "loaded");
    /// assert_eq!(cache.stats().loads, 1);
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// # })?;
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub async fn get_or_load_async<F, Fut>(&self, key: &K, loader: F) -> V
    where
        K: Clone,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let load = || async { Ok(loader().await) };
        match self
            .load_inner_async::<std::convert::Infallible, _, _>(
                key,
                LazyTick::lazy(&self.epoch),
                load,
            )
            .await
        {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// [`get_or_load_async`](Self::get_or_load_async) at time `now`.
    pub async fn get_or_load_at_async<F, Fut>(&self, key: &K, now: Instant, loader: F) -> V
    where
        K: Clone,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let load = || async { Ok(loader().await) };
        match self
            .load_inner_async::<std::convert::Infallible, _, _>(
                key,
                LazyTick::at(&self.epoch, now),
                load,
            )
            .await
        {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// [`try_get_or_load`](Self::try_get_or_load) for async code, with
    /// [`get_or_load_async`](Self::get_or_load_async)'s waiting: the
    /// loader's error goes to every task that waited for it and is not
    /// cached unless negative caching is on.
    ///
    /// # Errors
    /// The loader's error (this task's, the awaited leader's, or a
    /// negatively cached one).
    ///
    /// ```
    /// use dispatchkit_cache::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = Cache::<u64, u64>::new(100)?;
    /// let r = cache.try_get_or_load_async(&1, || async { Err::<u64, _>("store down") }).await;
    /// assert_eq!(r.unwrap_err().as_ref(), &"store down");
    /// // Not cached: the next call loads again.
    /// assert_eq!(cache.try_get_or_load_async(&1, || async { Ok::<_, &str>(5) }).await, Ok(5));
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// # })?;
    /// # Ok::<(), dispatchkit_cache::CacheError>(())
    /// ```
    pub async fn try_get_or_load_async<E, F, Fut>(&self, key: &K, loader: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.load_inner_async(key, LazyTick::lazy(&self.epoch), loader)
            .await
    }

    /// [`try_get_or_load_async`](Self::try_get_or_load_async) at time `now`.
    ///
    /// # Errors
    /// As [`try_get_or_load_async`](Self::try_get_or_load_async).
    pub async fn try_get_or_load_at_async<E, F, Fut>(
        &self,
        key: &K,
        now: Instant,
        loader: F,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.load_inner_async(key, LazyTick::at(&self.epoch, now), loader)
            .await
    }

    async fn load_inner_async<E, F, Fut>(
        &self,
        key: &K,
        mut now: LazyTick<'_>,
        loader: F,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.with_value(key, &mut now, V::clone) {
            return Ok(v);
        }
        let hash = self.hash(key);
        let mut loader = Some(loader);
        loop {
            match self.enter::<E>(hash, key, &mut now) {
                Step::Done(r) => return r,
                Step::Wait(flight) => {
                    if let Some(r) = waited(flight.wait_async().await) {
                        return r;
                    }
                    now.refresh();
                }
                Step::Lead(flight) => {
                    let Some(load) = loader.take() else { continue };
                    let guard = LeaderGuard::arm(self, hash, key, &flight);
                    let t0 = Instant::now();
                    let result = load().await;
                    now.refresh();
                    return self.settle(guard, result, t0, &mut now);
                }
            }
        }
    }

    fn load_inner<E>(
        &self,
        key: &K,
        now: &mut LazyTick<'_>,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.with_value(key, now, V::clone) {
            return Ok(v);
        }
        let hash = self.hash(key);
        let mut loader = Some(loader);
        loop {
            match self.enter::<E>(hash, key, now) {
                Step::Done(r) => return r,
                Step::Wait(flight) => {
                    if let Some(r) = waited(flight.wait()) {
                        return r;
                    }
                    // Retrying after a wait: the clock moved on.
                    now.refresh();
                }
                Step::Lead(flight) => {
                    // A caller leads at most once (it returns).
                    let Some(load) = loader.take() else { continue };
                    let guard = LeaderGuard::arm(self, hash, key, &flight);
                    let t0 = Instant::now();
                    let result = load();
                    // The value's TTL starts when it was loaded.
                    now.refresh();
                    return self.settle(guard, result, t0, now);
                }
            }
        }
    }

    /// The first look under the shard's write lock: a value or a
    /// remembered failure, else join the key's flight or start one.
    fn enter<E>(&self, hash: u64, key: &K, now: &mut LazyTick<'_>) -> Step<V, E>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        let mut out = self.removed();
        let mut g = self.lock(self.shard(hash));
        if let Some(v) = g.get_exclusive(hash, key, now, &mut out) {
            let v = v.clone();
            drop(g);
            self.finish(out);
            return Step::Done(Ok(v));
        }
        if let Some(neg) = g.negative(key, now)
            && let Ok(e) = Arc::clone(&neg.error).downcast::<E>()
        {
            drop(g);
            self.finish(out);
            self.counters.add(|s| &s.negative_hits, 1);
            return Step::Done(Err(e));
        }
        let step = match g.flight(key) {
            Some(f) => {
                f.join();
                Step::Wait(Arc::clone(f))
            }
            None => {
                let f = Arc::new(Flight::new());
                g.start_flight(key.clone(), Arc::clone(&f));
                Step::Lead(f)
            }
        };
        drop(g);
        self.finish(out);
        if matches!(step, Step::Wait(_)) {
            self.counters.add(|s| &s.load_waits, 1);
        }
        step
    }

    /// The leader's end: counts the load, caches the value (or remembers
    /// the failure when negative caching is on) if the flight is still
    /// current, and hands the outcome to the waiters.
    fn settle<E>(
        &self,
        mut guard: LeaderGuard<'_, K, V, W, S>,
        result: Result<V, E>,
        t0: Instant,
        now: &mut LazyTick<'_>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        // The guard stays armed until the outcome is published: a panic in
        // user code below (the weigher, `Hash`/`Eq`, `Clone`) abandons the
        // flight instead of leaving its waiters parked for ever.
        let (hash, key, flight) = (guard.hash, guard.key, guard.flight);
        let nanos = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.add(|s| &s.loads, 1);
        self.counters.add(|s| &s.load_nanos, nanos);
        match result {
            Ok(v) => {
                // Not cached (but returned) when it cannot be stored: too
                // heavy, or loaded at an instant too far away to set its
                // deadline at.
                let weight = self
                    .weigh(key, &v)
                    .ok()
                    .filter(|_| !self.timed || now.checked().is_ok());
                self.complete(hash, key, flight, now, |g, now, out| {
                    if let Some(w) = weight {
                        let dl = self.ttl.map_or(NEVER, |t| deadline(now.get(), t));
                        g.insert(hash, key.clone(), v.clone(), w, dl, now, &self.hasher, out);
                        true
                    } else {
                        false
                    }
                });
                flight.publish(if flight.has_waiters() {
                    Outcome::Value(v.clone())
                } else {
                    Outcome::Abandoned
                });
                guard.armed = false;
                Ok(v)
            }
            Err(e) => {
                self.counters.add(|s| &s.load_failures, 1);
                let e = Arc::new(e);
                let shared: Arc<dyn Any + Send + Sync> = e.clone();
                self.complete(hash, key, flight, now, |g, now, _| {
                    if let Some(ttl) = self.negative_ttl
                        && now.checked().is_ok()
                    {
                        let dl = deadline(now.get(), ttl);
                        g.remember_failure(key.clone(), dl, Arc::clone(&shared), now);
                    }
                    false
                });
                flight.publish(Outcome::Failed(shared));
                guard.armed = false;
                Err(e)
            }
        }
    }

    /// Unmaps the leader's flight and, if it was still current (no write
    /// or remove of the key meanwhile), applies `fill` under the same lock.
    fn complete(
        &self,
        hash: u64,
        key: &K,
        flight: &Arc<Flight<V>>,
        now: &mut LazyTick<'_>,
        fill: impl FnOnce(&mut Shard<K, V>, &mut LazyTick<'_>, &mut Out<K, V>) -> bool,
    ) where
        V: Clone,
    {
        let mut out = self.removed();
        let filled = {
            let mut g = self.lock(self.shard(hash));
            if g.end_flight(key, flight) {
                fill(&mut *g, now, &mut out)
            } else {
                false
            }
        };
        self.finish(out);
        if filled {
            let n = self.counters.count_insert(&[0; 4]);
            self.maybe_climb(n);
        }
    }
}

/// Where a caller stands after [`Cache::enter`].
enum Step<V, E> {
    Done(Result<V, Arc<E>>),
    Wait(Arc<Flight<V>>),
    Lead(Arc<Flight<V>>),
}

/// A waiter's answer from the leader's outcome; `None`: the leader gave up
/// (panicked, was cancelled, or failed with another error type), retry.
fn waited<V, E: Send + Sync + 'static>(outcome: Outcome<V>) -> Option<Result<V, Arc<E>>> {
    match outcome {
        Outcome::Value(v) => Some(Ok(v)),
        Outcome::Failed(e) => e.downcast::<E>().ok().map(Err),
        Outcome::Running | Outcome::Abandoned => None,
    }
}

/// Publishes `Abandoned` and unmaps the flight if the loader panics or,
/// in the async forms, the leader's future is dropped mid-load: a waiter
/// then takes over.
struct LeaderGuard<'a, K: Hash + Eq, V: Clone, W: Weigher<K, V>, S: BuildHasher> {
    cache: &'a Cache<K, V, W, S>,
    hash: u64,
    key: &'a K,
    flight: &'a Arc<Flight<V>>,
    armed: bool,
}

impl<'a, K: Hash + Eq, V: Clone, W: Weigher<K, V>, S: BuildHasher> LeaderGuard<'a, K, V, W, S> {
    fn arm(
        cache: &'a Cache<K, V, W, S>,
        hash: u64,
        key: &'a K,
        flight: &'a Arc<Flight<V>>,
    ) -> Self {
        Self {
            cache,
            hash,
            key,
            flight,
            armed: true,
        }
    }
}

impl<K: Hash + Eq, V: Clone, W: Weigher<K, V>, S: BuildHasher> Drop
    for LeaderGuard<'_, K, V, W, S>
{
    fn drop(&mut self) {
        if self.armed {
            {
                self.cache
                    .lock(self.cache.shard(self.hash))
                    .end_flight(self.key, self.flight);
            }
            self.flight.publish(Outcome::Abandoned);
        }
    }
}
