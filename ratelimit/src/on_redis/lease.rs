//! [`LeasedLimiter`]: token leases over a Redis GCRA bucket. A process
//! takes `lease` tokens from the shared bucket in one round trip and
//! spends them locally (no round trip per check) until they run out or
//! the lease lapses.
//!
//! Every local grant is backed by a unit charged on Redis, so the units a
//! key grants across all processes never exceed what the bucket charged;
//! what leases change is *when*: a token charged at `t` may be spent up to
//! `ttl` later, after the bucket has refilled. In any window the grants
//! exceed the bucket's own bound by at most `lease` tokens per process
//! holding a lease on the key (each process holds at most one per key), and
//! unspent tokens of a lapsed lease are lost (under-granting, never over).
//! This is the seed's "local rate limiting per region, eventual consistency
//! acceptable", with the bound stated: `limit + processes × lease`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{RedisKey, RedisRateLimiter};
use crate::decision::{Decision, Detail, Source};
use crate::direct::check_cost;
use crate::{Algorithm, Gcra, KeyedLimit, RateLimitError};

/// Tokens of one key leased by this process.
#[derive(Debug, Clone, Copy)]
struct Lease {
    left: u32,
    until: Instant,
}

/// A keyed GCRA limit on Redis with token leases (see the module docs for
/// the over-grant bound).
///
/// ```no_run
/// use std::time::Duration;
/// use dispatchkit_ratelimit::{Gcra, KeyedLimit, LeasedLimiter, Quota, RedisConfig, RedisRateLimiter};
///
/// let shared = RedisRateLimiter::new(Gcra::new(Quota::per_second(10_000)?), RedisConfig::new("redis://127.0.0.1:6379/"))?;
/// // 100 tokens per round trip, spent within 1 s: at most 100 extra per process.
/// let leased = LeasedLimiter::new(shared, 100, Duration::from_secs(1))?;
/// assert!(leased.check(&"tenant-7")?.is_allowed());
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub struct LeasedLimiter<K> {
    remote: RedisRateLimiter<Gcra>,
    lease: u32,
    /// Lease sizes tried, largest first: `lease`, `lease / 2`, …, 1.
    sizes: Vec<u32>,
    ttl: Duration,
    hasher: foldhash::fast::RandomState,
    shards: Box<[Mutex<HashMap<K, Lease, foldhash::fast::RandomState>>]>,
}

impl<K> fmt::Debug for LeasedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedLimiter")
            .field("remote", &self.remote)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + RedisKey + Send + Sync> LeasedLimiter<K> {
    /// Leases of `lease` tokens (at most the bucket's burst) from `remote`,
    /// each spendable for `ttl`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidConfig`] for a lease of 0 or above the
    /// burst, or a zero `ttl`.
    pub fn new(
        remote: RedisRateLimiter<Gcra>,
        lease: u32,
        ttl: Duration,
    ) -> Result<Self, RateLimitError> {
        let burst = remote.algorithm().capacity();
        if lease == 0 || lease > burst {
            return Err(RateLimitError::InvalidConfig {
                name: "lease",
                value: u64::from(lease),
                reason: "a lease takes 1 ..= burst tokens",
            });
        }
        if ttl.is_zero() {
            return Err(RateLimitError::InvalidConfig {
                name: "ttl",
                value: 0,
                reason: "a lease must be spendable for some time",
            });
        }
        let n =
            (std::thread::available_parallelism().map_or(1, |n| n.get()) * 16).next_power_of_two();
        let mut sizes = vec![lease];
        while let Some(&s) = sizes.last()
            && s > 1
        {
            sizes.push(s / 2);
        }
        Ok(Self {
            remote,
            lease,
            sizes,
            ttl,
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..n).map(|_| Mutex::new(HashMap::default())).collect(),
        })
    }

    /// The most tokens one process can grant beyond the bucket's own bound
    /// for one key in any window: one lease.
    pub fn max_overgrant_per_process(&self) -> u32 {
        self.lease
    }

    /// One unit of `key` at `now`: from this process's lease when it has
    /// tokens left and has not lapsed, else from a new lease of the
    /// largest of `lease`, `lease / 2`, …, 1 tokens the bucket holds (one
    /// round trip), else a denial with the bucket's retry time.
    ///
    /// # Errors
    /// As [`KeyedLimit::check_n`].
    pub fn check_at(&self, key: &K, now: Instant) -> Result<Decision, RateLimitError> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) & (self.shards.len() - 1)];
        let mut leases = shard.lock();
        if let Some(l) = leases.get_mut(key)
            && l.left > 0
            && now < l.until
        {
            l.left -= 1;
            return Ok(lease_decision(self.lease, l.left, now));
        }
        // Refill under the shard's lock (one lease per key per process):
        // the largest of lease, lease/2, …, 1 tokens the bucket holds.
        let (d, taken) = self.remote.lease(key, &self.sizes)?;
        if taken == 0 {
            leases.remove(key);
            return Ok(d);
        }
        let left = taken - 1;
        leases.insert(
            key.clone(),
            Lease {
                left,
                // A fabricated far-future `now` past `Instant`'s range:
                // the lease lapses at once (tokens lost, never over-granted).
                until: now.checked_add(self.ttl).unwrap_or(now),
            },
        );
        Ok(lease_decision(taken, left, now))
    }
}

/// A grant from a lease with `left` tokens left.
fn lease_decision(lease: u32, left: u32, at: Instant) -> Decision {
    Decision {
        allowed: true,
        source: Source::Lease,
        limit: lease,
        cost: 1,
        now: 0,
        at,
        t_eff: 0,
        detail: Detail::Eager {
            remaining: left,
            reset_at: 0,
            retry_at: 0,
            next_at: 0,
        },
    }
}

impl<K: Hash + Eq + Clone + RedisKey + Send + Sync> KeyedLimit<K> for LeasedLimiter<K> {
    fn quota(&self) -> crate::Quota {
        self.remote.algorithm().quota()
    }

    fn capacity(&self) -> u32 {
        self.remote.algorithm().capacity()
    }

    /// One unit comes from the lease; more than one is checked on Redis
    /// directly (a lease holds single tokens).
    fn check_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError> {
        self.check_n_at(key, cost, Instant::now())
    }

    fn check_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        check_cost(self.remote.algorithm(), cost)?;
        if cost == 1 {
            self.check_at(key, now)
        } else {
            self.remote.check_n(key, cost)
        }
    }

    fn peek_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError> {
        self.remote.peek_n(key, cost)
    }

    fn peek_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        self.remote.peek_n_at(key, cost, now)
    }
}
