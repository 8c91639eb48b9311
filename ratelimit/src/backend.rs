//! The interface an application programs against, whatever holds the
//! state: [`KeyedLimit`] is implemented by the in-process
//! [`KeyedRateLimiter`](crate::KeyedRateLimiter) and, with the `redis`
//! feature, by `RedisRateLimiter`, so the backend is chosen at
//! construction only. One conformance suite (`tests/conformance.rs`) runs
//! unchanged against both.

use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::{KeyedRateLimiter, PolicyDecision, PolicyLimiter, Quota, RateLimitError, Request};

/// A rate limit with one state per key.
///
/// Every method decides all or nothing and leaves the key's state
/// unchanged when it returns an error. The plain forms read the backend's
/// clock (in-process: `Instant::now()`; Redis: the server's `TIME`, so
/// that every instance agrees); the `_at` forms take the time from the
/// caller.
///
/// ```
/// use dispatchkit_ratelimit::{Gcra, KeyedLimit, KeyedRateLimiter, Quota};
/// use std::time::Instant;
///
/// // Code written against the trait runs on either backend.
/// fn admit(limit: &impl KeyedLimit<str>, api_key: &str, now: Instant) -> bool {
///     limit.check_n_at(api_key, 1, now).is_ok_and(|d| d.is_allowed())
/// }
///
/// let t0 = Instant::now();
/// let local = KeyedRateLimiter::<String, _>::new_at(Gcra::new(Quota::per_second(1)?), t0);
/// assert!(admit(&local, "key-1", t0));
/// assert!(!admit(&local, "key-1", t0));
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub trait KeyedLimit<K: ?Sized>: Send + Sync {
    /// The quota every key is held to (what `RateLimit-Policy` advertises).
    fn quota(&self) -> Quota;

    /// The most units one check can ever be granted (the burst for GCRA,
    /// the limit per window for the window algorithms).
    fn capacity(&self) -> u32;

    /// Checks and, if granted, consumes `cost` units of `key` at the
    /// backend's clock.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] / [`RateLimitError::InsufficientCapacity`]
    /// for a cost of 0 or above [`capacity`](Self::capacity);
    /// [`RateLimitError::Unavailable`] when a remote backend cannot answer
    /// and it is configured to fail closed.
    fn check_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError>;

    /// [`check_n`](Self::check_n) at the caller's `now`.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn check_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError>;

    /// Whether `cost` units of `key` would be granted, consuming nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn peek_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError>;

    /// [`peek_n`](Self::peek_n) at the caller's `now`.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn peek_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError>;

    /// One unit: [`check_n`](Self::check_n)`(key, 1)`.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn check(&self, key: &K) -> Result<Decision, RateLimitError> {
        self.check_n(key, 1)
    }
}

impl<K, Q, A, S> KeyedLimit<Q> for KeyedRateLimiter<K, A, S>
where
    K: Hash + Eq + Clone + Send + Sync + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    A: Algorithm,
    S: BuildHasher + Send + Sync,
{
    fn quota(&self) -> Quota {
        self.algorithm().quota()
    }

    fn capacity(&self) -> u32 {
        self.algorithm().capacity()
    }

    fn check_n(&self, key: &Q, cost: u32) -> Result<Decision, RateLimitError> {
        KeyedRateLimiter::check_n(self, key, cost)
    }

    fn check_n_at(&self, key: &Q, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        KeyedRateLimiter::check_n_at(self, key, cost, now)
    }

    fn peek_n(&self, key: &Q, cost: u32) -> Result<Decision, RateLimitError> {
        KeyedRateLimiter::peek_n(self, key, cost)
    }

    fn peek_n_at(&self, key: &Q, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        KeyedRateLimiter::peek_n_at(self, key, cost, now)
    }
}

/// A multi-rule policy (a [`RuleTable`](crate::RuleTable) applied per
/// request, every rule charged or none): the in-process
/// [`PolicyLimiter`] or, with the `redis` feature, `RedisPolicyLimiter`.
/// The plain forms read the backend's clock; the `_at` forms take the
/// caller's.
pub trait PolicyLimit<K>: Send + Sync {
    /// Checks `cost` units against every rule that applies to `req` and
    /// charges all of them or none.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] / [`RateLimitError::InsufficientCapacity`]
    /// (nothing charged); [`RateLimitError::Unavailable`] from a remote
    /// backend configured to fail closed.
    fn check(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError>;

    /// [`check`](Self::check) at the caller's `now`.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    fn check_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError>;

    /// Whether [`check`](Self::check) would allow, charging nothing.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    fn peek(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError>;

    /// [`peek`](Self::peek) at the caller's `now`.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    fn peek_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError>;
}

impl<K, S> PolicyLimit<K> for PolicyLimiter<K, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    S: BuildHasher + Send + Sync,
{
    fn check(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError> {
        PolicyLimiter::check(self, req, cost)
    }

    fn check_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        PolicyLimiter::check_at(self, req, cost, now)
    }

    fn peek(&self, req: &Request<'_, K>, cost: u32) -> Result<PolicyDecision, RateLimitError> {
        PolicyLimiter::peek_at(self, req, cost, Instant::now())
    }

    fn peek_at(
        &self,
        req: &Request<'_, K>,
        cost: u32,
        now: Instant,
    ) -> Result<PolicyDecision, RateLimitError> {
        PolicyLimiter::peek_at(self, req, cost, now)
    }
}
