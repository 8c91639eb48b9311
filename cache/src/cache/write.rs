//! The cache's writes: inserts (the in-place replace and the general
//! path), removal, expiry purges, clearing, and the W-TinyLFU window
//! climber they drive.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CLIMB_EVERY, Cache};
use crate::CacheError;
use crate::climb::Climber;
use crate::shard::Fast;
use crate::stats::EvictionCause;
use crate::time::{LazyTick, NEVER, checked_ttl, deadline};
use crate::weigher::Weigher;

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    // ----- writes ------------------------------------------------------

    /// Inserts or replaces `key` with the cache's default TTL (if any).
    /// A replaced value is reported with [`EvictionCause::Replaced`]; room
    /// is made by the policy. The entry is present when this returns, except
    /// under [`Policy::WTinyLfu`](crate::Policy::WTinyLfu) with a weigher, which refuses a new entry
    /// heavier than its window when the entry is less frequent than what
    /// it would displace (it is then reported as evicted, cause
    /// [`EvictionCause::Capacity`]).
    ///
    /// # Errors
    /// [`CacheError::EntryTooHeavy`] when the entry weighs more than
    /// [`max_entry_weight`](Self::max_entry_weight); the cache is unchanged
    /// (nothing is evicted for it). [`CacheError::InstantOutOfRange`] (from
    /// the `_at` forms) when the entry gets a deadline and `now` is more
    /// than 150 years from the cache's creation.
    #[inline]
    pub fn insert(&self, key: K, value: V) -> Result<(), CacheError> {
        self.insert_inner(key, value, self.ttl, &mut LazyTick::lazy(&self.epoch))
    }

    /// [`insert`](Self::insert) at time `now`.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn insert_at(&self, key: K, value: V, now: Instant) -> Result<(), CacheError> {
        self.insert_inner(key, value, self.ttl, &mut LazyTick::at(&self.epoch, now))
    }

    /// Inserts with its own time-to-live (overriding the default).
    ///
    /// # Errors
    /// [`CacheError::InvalidDuration`] for a TTL of 0 or above
    /// [`MAX_TTL`](crate::MAX_TTL); otherwise as [`insert`](Self::insert).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), CacheError> {
        let ttl = checked_ttl("ttl", ttl)?;
        self.insert_inner(key, value, Some(ttl), &mut LazyTick::lazy(&self.epoch))
    }

    /// [`insert_with_ttl`](Self::insert_with_ttl) at time `now`.
    ///
    /// # Errors
    /// As [`insert_with_ttl`](Self::insert_with_ttl).
    pub fn insert_with_ttl_at(
        &self,
        key: K,
        value: V,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), CacheError> {
        let ttl = checked_ttl("ttl", ttl)?;
        self.insert_inner(key, value, Some(ttl), &mut LazyTick::at(&self.epoch, now))
    }

    /// Checks that an insert at `now` can set its deadline (see
    /// [`CacheError::InstantOutOfRange`]).
    pub(crate) fn check_instant(&self, now: Instant) -> Result<(), CacheError> {
        if self.timed {
            LazyTick::at(&self.epoch, now).checked()?;
        }
        Ok(())
    }

    #[inline(always)]
    fn insert_inner(
        &self,
        key: K,
        value: V,
        ttl: Option<i64>,
        now: &mut LazyTick<'_>,
    ) -> Result<(), CacheError> {
        if ttl.is_some() || self.timed {
            now.checked()?;
        }
        let weight = self.weigh(&key, &value)?;
        let hash = self.hash(&key);
        self.insert_hashed(hash, key, value, weight, ttl, now);
        Ok(())
    }

    #[inline(always)]
    fn insert_hashed(
        &self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        ttl: Option<i64>,
        now: &mut LazyTick<'_>,
    ) {
        let dl = ttl.map_or(NEVER, |t| deadline(now.get(), t));
        let mut g = self.lock(self.shard(hash));
        // The common replace, when no listener wants the old value: in
        // place, counted, nothing collected.
        let fast = if dl == NEVER && self.listener.is_none() {
            g.replace_in_place(hash, key, value)
        } else {
            Fast::General(key, value)
        };
        let (key, value, absent) = match fast {
            Fast::Replaced(old) => {
                drop(g);
                drop(old);
                let n = self.counters.count_replace();
                self.maybe_climb(n);
                return;
            }
            Fast::Absent(key, value) => (key, value, true),
            Fast::General(key, value) => (key, value, false),
        };
        let mut out = self.removed();
        if absent {
            // The fast path's conditions hold: no weigher (weight 1), no
            // time-to-idle (no idle deadline), no deadline.
            g.insert_new(
                hash,
                key,
                value,
                1,
                NEVER,
                NEVER,
                now,
                &self.hasher,
                &mut out,
            );
        } else {
            g.insert(hash, key, value, weight, dl, now, &self.hasher, &mut out);
        }
        drop(g);
        // One stripe access for the insert and what it evicted.
        let n = self.counters.count_insert(&out.counts);
        self.notify(out);
        self.maybe_climb(n);
    }

    /// Every `CLIMB_EVERY` inserts of a thread (`n`: the thread's count
    /// before this one), a W-TinyLFU cache checks whether a hit-ratio
    /// sample completed and resizes the shards' windows if the climber
    /// moved (one lock per shard, once per sample).
    #[inline]
    pub(crate) fn maybe_climb(&self, n: u64) {
        if n % CLIMB_EVERY == CLIMB_EVERY - 1
            && let Some(c) = &self.climber
        {
            self.climb(c);
        }
    }

    #[cold]
    #[inline(never)]
    fn climb(&self, climber: &Mutex<Climber>) {
        let Ok(mut c) = climber.try_lock() else {
            return;
        };
        let (hits, misses, evicted) = self.counters.lookups();
        let window = c.observe(hits, misses, evicted > 0);
        let scan = c.take_scan_change();
        if window.is_none() && scan.is_none() {
            return;
        }
        for s in self.shards.iter() {
            let mut g = self.lock(&s.0);
            if let Some(share) = window {
                g.set_window(share, &self.hasher);
            }
            if let Some(scan) = scan {
                g.set_scan_memory(scan);
            }
        }
    }

    /// Removes `key`, returning its value if it was live (cause
    /// [`EvictionCause::Explicit`]; an expired one is reclaimed as
    /// `Expired` and `None` is returned). Also cancels the cache fill of an
    /// in-flight load of `key` (its callers still get their value) and
    /// forgets a negatively cached failure. O(1).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, &mut LazyTick::lazy(&self.epoch))
    }

    /// [`remove`](Self::remove) at time `now`.
    pub fn remove_at<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_inner(key, &mut LazyTick::at(&self.epoch, now))
    }

    fn remove_inner<Q>(&self, key: &Q, now: &mut LazyTick<'_>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut out = self.removed();
        let r = self.lock(self.shard(hash)).remove(hash, key, now, &mut out);
        self.finish(out);
        let (k, v) = r?;
        self.counters.add(
            |s| &s.evicted[crate::stats::cause_index(EvictionCause::Explicit)],
            1,
        );
        if let Some(l) = &self.listener {
            l(&k, &v, EvictionCause::Explicit);
        }
        Some(v)
    }

    /// Reclaims every expired entry now; returns how many. O(n) — the
    /// cache otherwise reclaims expired entries as it meets them.
    pub fn purge_expired(&self) -> usize {
        self.purge_expired_at(Instant::now())
    }

    /// [`purge_expired`](Self::purge_expired) at time `now`.
    pub fn purge_expired_at(&self, now: Instant) -> usize {
        let mut tick = LazyTick::at(&self.epoch, now);
        let mut n = 0;
        for s in self.shards.iter() {
            let mut out = self.removed();
            self.lock(&s.0)
                .purge_expired(&mut tick, &self.hasher, &mut out);
            n += out.counts.iter().sum::<u64>() as usize;
            self.finish(out);
        }
        n
    }

    /// Removes every entry (cause `Explicit`). O(n).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut out = self.removed();
            self.lock(&s.0).clear(&mut out);
            self.finish(out);
        }
    }
}
