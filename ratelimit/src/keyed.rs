//! Keyed limiters: one state per key, sharded, with bounded memory.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use crate::RateLimitError;
use crate::algorithm::{Algorithm, cap_decision};
use crate::decision::Decision;
use crate::direct::check_cost;
use crate::store::Store;
use crate::time::Origin;

/// The default hasher of keyed limiters: hashbrown's default (foldhash,
/// seeded per limiter), the hasher of `hashbrown` and `dashmap` users.
/// Pass `std::hash::RandomState` to [`KeyedRateLimiter::with_config`] for
/// SipHash.
pub type DefaultHasher = hashbrown::DefaultHashBuilder;

/// What a keyed limiter answers for a **new** key when its table is at the
/// hard cap and no stored key can be dropped yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FailMode {
    /// Deny (the safe default): the decision is denied, with
    /// `retry_after` = when a stored key can next be dropped.
    #[default]
    Closed,
    /// Allow without tracking the key.
    Open,
}

/// Sizing of a keyed limiter's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedConfig {
    /// Number of shards (rounded up to a power of two; default 256, at
    /// least 4 per available thread). More shards, fewer threads meeting
    /// on one lock word.
    pub shards: usize,
    /// Hard cap on stored keys (default 4,194,304). Enforced per shard:
    /// each of the `S` shards holds at most `max_keys / S`.
    pub max_keys: usize,
    /// What to answer for a new key at the cap.
    pub fail_mode: FailMode,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            shards: (threads * 4).next_power_of_two().max(256),
            max_keys: 1 << 22,
            fail_mode: FailMode::Closed,
        }
    }
}

impl KeyedConfig {
    /// `(shards, max_keys)` checked: shards a power of two, no more shards
    /// than keys.
    pub(crate) fn resolve(&self) -> Result<(usize, usize), RateLimitError> {
        if self.max_keys == 0 {
            return Err(RateLimitError::InvalidConfig {
                name: "max_keys",
                value: 0,
                reason: "a keyed limiter must be able to hold at least one key",
            });
        }
        if self.shards == 0 || self.shards > 1 << 16 {
            return Err(RateLimitError::InvalidConfig {
                name: "shards",
                value: self.shards as u64,
                reason: "shards must be between 1 and 65536",
            });
        }
        let mut shards = self.shards.next_power_of_two();
        while shards > self.max_keys {
            shards /= 2;
        }
        Ok((shards, self.max_keys))
    }
}

/// One state per key (user id, API key, IP, `(user, endpoint)`, …): any
/// `Hash + Eq + Clone` key, sharded, `Send + Sync`.
///
/// Memory stays bounded without any manual cleanup: a key whose state is
/// back to full (indistinguishable from a new key) is dropped by amortised
/// sweeps that run when a shard would otherwise double — at the first sweep
/// after one at which it was already full, so that a key which returns
/// soon is not dropped and inserted again each time — and a hard cap
/// ([`KeyedConfig::max_keys`]) bounds the table, failing closed or open
/// ([`FailMode`]) for new keys beyond it. A dropped key that comes back
/// starts full, at a time no older than any it had seen.
///
/// Cost of a check on a stored key: one hash, a shard read lock, one probe,
/// and the algorithm's update (GCRA: one CAS on the key's own state).
///
/// ```
/// use dispatchkit_ratelimit::{Gcra, KeyedRateLimiter, Quota};
/// use std::time::Instant;
///
/// let t0 = Instant::now();
/// let per_ip = KeyedRateLimiter::new_at(Gcra::new(Quota::per_minute(2)?), t0);
/// assert!(per_ip.check_at(&[10, 0, 0, 1], t0).is_allowed());
/// assert!(per_ip.check_at(&[10, 0, 0, 1], t0).is_allowed());
/// assert!(!per_ip.check_at(&[10, 0, 0, 1], t0).is_allowed());
/// assert!(per_ip.check_at(&[10, 0, 0, 2], t0).is_allowed()); // another key
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub struct KeyedRateLimiter<K, A: Algorithm, S = DefaultHasher> {
    alg: A,
    origin: Origin,
    fail_mode: FailMode,
    store: Store<K, A::Cell, S>,
}

impl<K, A: Algorithm, S> fmt::Debug for KeyedRateLimiter<K, A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("algorithm", &self.alg)
            .field("origin", &self.origin)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, A: Algorithm> KeyedRateLimiter<K, A> {
    /// An empty keyed limiter with the default configuration, time origin
    /// `Instant::now()`.
    pub fn new(alg: A) -> Self {
        Self::new_at(alg, Instant::now())
    }

    /// An empty keyed limiter with the default configuration and time
    /// origin `origin`.
    pub fn new_at(alg: A, origin: Instant) -> Self {
        let (shards, max_keys) = KeyedConfig::default().resolve().unwrap_or((256, 1 << 22));
        Self {
            alg,
            origin: Origin::new(origin),
            fail_mode: FailMode::Closed,
            store: Store::new(shards, max_keys, DefaultHasher::default(), ()),
        }
    }
}

impl<K: Hash + Eq + Clone, A: Algorithm, S: BuildHasher> KeyedRateLimiter<K, A, S> {
    /// An empty keyed limiter sized by `config`, hashing with `hasher`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidConfig`] when `max_keys` is 0 or `shards`
    /// is 0 or above 65,536.
    pub fn with_config(
        alg: A,
        config: KeyedConfig,
        hasher: S,
        origin: Instant,
    ) -> Result<Self, RateLimitError> {
        let (shards, max_keys) = config.resolve()?;
        Ok(Self {
            alg,
            origin: Origin::new(origin),
            fail_mode: config.fail_mode,
            store: Store::new(shards, max_keys, hasher, ()),
        })
    }

    /// The algorithm (and through it the quota).
    pub fn algorithm(&self) -> &A {
        &self.alg
    }

    /// [`check_at`](Self::check_at) with `Instant::now()`.
    pub fn check<Q>(&self, key: &Q) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_at(key, Instant::now())
    }

    /// Checks and, if granted, consumes one unit of `key`'s quota at `now`.
    /// Amortised O(1).
    #[inline]
    pub fn check_at<Q>(&self, key: &Q, now: Instant) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.run(key, 1, now, true)
    }

    /// [`check_n_at`](Self::check_n_at) with `Instant::now()`.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn check_n<Q>(&self, key: &Q, cost: u32) -> Result<Decision, RateLimitError>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_n_at(key, cost, Instant::now())
    }

    /// Checks and, if granted, consumes `cost` units of `key`'s quota at
    /// `now`, all or none.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] for `cost == 0`;
    /// [`RateLimitError::InsufficientCapacity`] when `cost` can never fit.
    /// No state is created or changed.
    pub fn check_n_at<Q>(
        &self,
        key: &Q,
        cost: u32,
        now: Instant,
    ) -> Result<Decision, RateLimitError>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        check_cost(&self.alg, cost)?;
        Ok(self.run(key, cost, now, true))
    }

    /// [`peek_at`](Self::peek_at) with `Instant::now()`.
    pub fn peek<Q>(&self, key: &Q) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.peek_at(key, Instant::now())
    }

    /// [`peek_n_at`](Self::peek_n_at) with `Instant::now()`.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn peek_n<Q>(&self, key: &Q, cost: u32) -> Result<Decision, RateLimitError>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.peek_n_at(key, cost, Instant::now())
    }

    /// Whether one unit of `key` would be granted at `now`, consuming
    /// nothing and creating no state.
    pub fn peek_at<Q>(&self, key: &Q, now: Instant) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.run(key, 1, now, false)
    }

    /// Like [`peek_at`](Self::peek_at) for `cost` units.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn peek_n_at<Q>(&self, key: &Q, cost: u32, now: Instant) -> Result<Decision, RateLimitError>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        check_cost(&self.alg, cost)?;
        Ok(self.run(key, cost, now, false))
    }

    /// Number of keys currently stored. O(shards).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is stored. O(shards).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Upper bound on stored keys (the configured cap, rounded down to a
    /// multiple of the shard count).
    pub fn max_keys(&self) -> usize {
        self.store.cap_per_shard() * self.store.shards().count()
    }

    #[inline]
    pub(crate) fn run<Q>(&self, key: &Q, cost: u32, now: Instant, consume: bool) -> Decision
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let t = self.origin.nanos_to(now);
        let h = self.store.hash(key);
        let shard = self.store.shard(h);
        let floor = {
            let g = shard.read();
            if let Some((_, cell)) = g.table.find(h, |(k, _)| k.borrow() == key) {
                return self.alg.check_cell(cell, t, now, cost, consume);
            }
            g.floor
        };
        if !consume {
            // A key never seen (or dropped while full) is full.
            return self
                .alg
                .check_cell(&self.alg.new_cell(floor), t, now, cost, false);
        }
        let mut g = shard.write();
        if let Some((_, cell)) = g.table.find(h, |(k, _)| k.borrow() == key) {
            return self.alg.check_cell(cell, t, now, cost, true);
        }
        let alg = &self.alg;
        match self.store.insert_locked(
            &mut g,
            h,
            &key.to_owned(),
            t,
            |_, floor| alg.new_cell(floor),
            |_, _, c| alg.idle_cell(c),
            |_| false,
        ) {
            Ok((_, cell, _)) => alg.check_cell(cell, t, now, cost, true),
            Err(at_cap) => cap_decision(
                self.fail_mode == FailMode::Open,
                alg.capacity(),
                cost,
                t,
                now,
                at_cap.retry_at,
            ),
        }
    }

    /// Panics if the table or any state breaks an invariant.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self) {
        self.store
            .validate(|k| self.store.hash(k), |_, _, c| self.alg.validate_cell(c));
    }
}
