//! The limiters on Redis (feature `redis`): the same algorithms and the
//! same decisions as in-process, with the state in a Redis server that
//! every application instance shares.
//!
//! # Time
//! By default a check runs at the server's clock (`TIME`, read inside the
//! script), so instances whose clocks differ still agree: a client's
//! clock skew changes nothing. The `_at` forms map the caller's `Instant`
//! to wall-clock time through the limiter's [`ClockMap`] (taken at
//! construction) and pass it to the script, which is what tests use; mixing
//! the two on one key is safe (an older time counts as no time passed) but
//! makes the key's decisions depend on the client clocks' skew.
//!
//! # Keys
//! One Redis key per limited key, `{<prefix>:<key>}` with the key
//! percent-encoded (every byte outside `A-Z a-z 0-9 . _ -`), so a key's
//! value cannot reach another key's state, and the braces make the whole
//! name the Redis Cluster hash tag. A key expires when its state is full
//! again (plus a margin), so memory is bounded by the keys in use.

mod conn;
mod lease;
mod policy;
mod scripts;

use std::fmt;
use std::time::{Instant, UNIX_EPOCH};

use conn::Pool;
pub use conn::RedisConfig;

use crate::algorithm::fallback_decision;
use crate::backend::KeyedLimit;
use crate::decision::Decision;
use crate::direct::check_cost;
use crate::{ClockMap, FailMode, RateLimitError};

/// A value that names a limited key on Redis: its bytes, escaped into the
/// key name.
pub trait RedisKey {
    /// Appends the key's bytes (unescaped) to `out`.
    fn key_bytes(&self, out: &mut Vec<u8>);
}

impl RedisKey for str {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for String {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for [u8] {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for Vec<u8> {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn key_bytes(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.to_string().as_bytes());
            }
        }
    )*};
}
int_keys!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize
);

/// Per-IP limits: the address's text form (`203.0.113.9`, `2001:db8::1`).
impl RedisKey for std::net::IpAddr {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(out, "{self}");
    }
}

impl<T: RedisKey + ?Sized> RedisKey for &T {
    fn key_bytes(&self, out: &mut Vec<u8>) {
        (**self).key_bytes(out);
    }
}

/// `{<prefix>:<escaped key>}`: the key percent-encoded, the whole name one
/// Redis Cluster hash tag (the prefix, from the configuration, has no
/// braces: checked at construction).
pub(crate) fn key_name<K: RedisKey + ?Sized>(prefix: &str, key: &K) -> Vec<u8> {
    let mut raw = Vec::with_capacity(32);
    key.key_bytes(&mut raw);
    let mut out = Vec::with_capacity(prefix.len() + raw.len() + 4);
    out.push(b'{');
    out.extend_from_slice(prefix.as_bytes());
    out.push(b':');
    escape_into(&raw, &mut out);
    out.push(b'}');
    out
}

/// A key prefix must not hold braces (they would change the Cluster hash
/// tag) and must not be empty.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), RateLimitError> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(RateLimitError::InvalidRule {
            rule: prefix.to_string(),
            reason: "a Redis key prefix must be non-empty and hold no `{` or `}`",
        });
    }
    Ok(())
}

pub(crate) fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

pub use lease::LeasedLimiter;
pub use policy::RedisPolicyLimiter;
pub use scripts::RedisAlgorithm;

/// A keyed limiter whose state lives in Redis: every instance that
/// connects to the same server (and prefix) shares every key's limit.
///
/// One round trip per check (`EVALSHA` of the algorithm's script, loaded
/// again on `NOSCRIPT`), atomic on the server; the decisions are the
/// in-process algorithm's, number for number. Errors reaching Redis
/// (refused, timed out, `BUSY`, `READONLY`) are
/// [`RateLimitError::Unavailable`]; nothing blocks past
/// [`RedisConfig::io_timeout`].
///
/// ```no_run
/// use dispatchkit_ratelimit::{Gcra, KeyedLimit, Quota, RedisConfig, RedisRateLimiter};
///
/// let limiter = RedisRateLimiter::new(
///     Gcra::new(Quota::per_hour(1000)?),
///     RedisConfig::new("redis://127.0.0.1:6379/"),
/// )?;
/// let d = limiter.check(&"user:42")?; // at the server's clock, shared by every instance
/// if !d.is_allowed() { /* 429, Retry-After from d.retry_after() */ }
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
pub struct RedisRateLimiter<A> {
    alg: A,
    pool: Pool,
    prefix: String,
    clock: ClockMap,
    margin_ms: u64,
    on_unavailable: FailMode,
    #[cfg(feature = "tokio")]
    apool: dispatchkit_redis_conn::AsyncPool,
}

impl<A: fmt::Debug> fmt::Debug for RedisRateLimiter<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("algorithm", &self.alg)
            .field("prefix", &self.prefix)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl<A: RedisAlgorithm> RedisRateLimiter<A> {
    /// A limiter for `alg` on the server of `config`; `_at` times map to
    /// wall-clock time through `ClockMap::now()`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidConfig`] for a URL the client rejects or a
    /// zero timeout, [`RateLimitError::InvalidRule`] for a key prefix that
    /// is empty or holds braces, [`RateLimitError::InvalidQuota`] for a
    /// window algorithm whose window is not a whole number of milliseconds
    /// (or whose `limit × window in ms` reaches 2^53). No connection is
    /// opened until the first check.
    pub fn new(alg: A, config: RedisConfig) -> Result<Self, RateLimitError> {
        Self::with_clock(alg, config, ClockMap::now())
    }

    /// [`new`](Self::new) with the `Instant` ↔ wall-clock mapping `clock`
    /// for the `_at` forms (tests give two limiters the same one).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_clock(
        alg: A,
        config: RedisConfig,
        clock: ClockMap,
    ) -> Result<Self, RateLimitError> {
        check_prefix(&config.key_prefix)?;
        alg.check_redis()?;
        let pool = conn::pool(&config)?;
        #[cfg(feature = "tokio")]
        let apool = dispatchkit_redis_conn::AsyncPool::of(&pool);
        Ok(Self {
            alg,
            pool,
            prefix: config.key_prefix,
            clock,
            margin_ms: 1_000,
            on_unavailable: config.on_unavailable,
            #[cfg(feature = "tokio")]
            apool,
        })
    }

    /// The algorithm (and through it the quota).
    pub fn algorithm(&self) -> &A {
        &self.alg
    }

    /// `now` as nanoseconds since the Unix epoch, through the clock map.
    fn unix_ns(&self, now: Instant) -> u64 {
        let d = self
            .clock
            .system_at(now)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The time argument and the decision's instant of a check at `now`
    /// (`None`: the server's clock).
    fn times(&self, now: Option<Instant>) -> (Option<u64>, Instant) {
        (
            now.map(|n| self.unix_ns(n)),
            now.unwrap_or_else(Instant::now),
        )
    }

    /// An unavailable backend's answer per the fail mode.
    fn unavailable<T>(
        &self,
        e: RateLimitError,
        open: impl FnOnce() -> T,
    ) -> Result<T, RateLimitError> {
        match (self.on_unavailable, &e) {
            (FailMode::Open, RateLimitError::Unavailable { .. }) => Ok(open()),
            _ => Err(e),
        }
    }

    fn run<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u32,
        now: Option<Instant>,
        consume: bool,
    ) -> Result<Decision, RateLimitError> {
        check_cost(&self.alg, cost)?;
        let name = key_name(&self.prefix, key);
        let (now_ns, at) = self.times(now);
        let call = self.alg.call(&name, cost, now_ns, consume, self.margin_ms);
        conn::run(&self.pool, |con| scripts::eval(con, &call))
            .and_then(|reply| self.alg.decide(reply, cost, at))
            .or_else(|e| self.unavailable(e, || fallback_decision(self.alg.capacity(), cost, at)))
    }

    /// [`KeyedLimit::check_n`] without blocking the thread (feature
    /// `tokio`): one `EVALSHA` on the process's multiplexed async
    /// connection, the same decision as the blocking form.
    ///
    /// # Errors
    /// As [`KeyedLimit::check_n`].
    #[cfg(feature = "tokio")]
    pub async fn check_n_async<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        self.run_async(key, cost, None, true).await
    }

    /// [`check_n_async`](Self::check_n_async) at the caller's `now`.
    ///
    /// # Errors
    /// As [`KeyedLimit::check_n`].
    #[cfg(feature = "tokio")]
    pub async fn check_n_at_async<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u32,
        now: Instant,
    ) -> Result<Decision, RateLimitError> {
        self.run_async(key, cost, Some(now), true).await
    }

    /// [`KeyedLimit::peek_n`] without blocking the thread.
    ///
    /// # Errors
    /// As [`KeyedLimit::check_n`].
    #[cfg(feature = "tokio")]
    pub async fn peek_n_async<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        self.run_async(key, cost, None, false).await
    }

    #[cfg(feature = "tokio")]
    async fn run_async<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u32,
        now: Option<Instant>,
        consume: bool,
    ) -> Result<Decision, RateLimitError> {
        check_cost(&self.alg, cost)?;
        let name = key_name(&self.prefix, key);
        let (now_ns, at) = self.times(now);
        let call = self.alg.call(&name, cost, now_ns, consume, self.margin_ms);
        self.apool
            .run(|con| scripts::eval_async(con, &call))
            .await
            .map_err(conn::unavailable)
            .and_then(|reply| self.alg.decide(reply, cost, at))
            .or_else(|e| self.unavailable(e, || fallback_decision(self.alg.capacity(), cost, at)))
    }

    /// Checks and, if granted, consumes `cost` units of each of `keys` at
    /// the server's clock, in one round trip: GCRA checks them all in one
    /// script call, the window algorithms pipeline one call per key. Each
    /// key's check is atomic and they run in order; the batch is not
    /// all-or-nothing (that is what a policy is for). Decisions in the
    /// order of `keys`. On a Redis Cluster the keys of a batch live in
    /// different slots, so each is its own call.
    ///
    /// # Errors
    /// As [`KeyedLimit::check_n`]; no key is checked when `cost` is
    /// invalid.
    pub fn check_many<K: RedisKey + ?Sized>(
        &self,
        keys: &[&K],
        cost: u32,
    ) -> Result<Vec<Decision>, RateLimitError> {
        self.run_many(keys, cost, None)
    }

    /// [`check_many`](Self::check_many) at the caller's `now`.
    ///
    /// # Errors
    /// As [`check_many`](Self::check_many).
    pub fn check_many_at<K: RedisKey + ?Sized>(
        &self,
        keys: &[&K],
        cost: u32,
        now: Instant,
    ) -> Result<Vec<Decision>, RateLimitError> {
        self.run_many(keys, cost, Some(now))
    }

    fn run_many<K: RedisKey + ?Sized>(
        &self,
        keys: &[&K],
        cost: u32,
        now: Option<Instant>,
    ) -> Result<Vec<Decision>, RateLimitError> {
        check_cost(&self.alg, cost)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (now_ns, at) = self.times(now);
        let names: Vec<Vec<u8>> = keys.iter().map(|k| key_name(&self.prefix, *k)).collect();
        let decided = if self.pool.is_cluster() {
            // Keys of a batch live in different slots: one call per key.
            names
                .iter()
                .map(|name| {
                    let call = self.alg.call(name, cost, now_ns, true, self.margin_ms);
                    conn::run(&self.pool, |con| scripts::eval(con, &call))
                        .and_then(|reply| self.alg.decide(reply, cost, at))
                })
                .collect()
        } else if let Some(call) = self
            .alg
            .call_many(names.clone(), cost, now_ns, self.margin_ms)
        {
            // One script call for every key (one node holds them all).
            conn::run(&self.pool, |con| scripts::eval(con, &call))
                .and_then(|reply| self.alg.decide_many(reply, cost, at))
        } else {
            let calls: Vec<_> = names
                .iter()
                .map(|name| self.alg.call(name, cost, now_ns, true, self.margin_ms))
                .collect();
            conn::run(&self.pool, |con| scripts::eval_many(con, &calls)).and_then(|replies| {
                replies
                    .into_iter()
                    .map(|r| self.alg.decide(r, cost, at))
                    .collect()
            })
        };
        decided.or_else(|e| {
            self.unavailable(e, || {
                vec![fallback_decision(self.alg.capacity(), cost, at); keys.len()]
            })
        })
    }
}

impl RedisRateLimiter<crate::Gcra> {
    /// Takes the largest of `costs` (largest first) that fits `key`'s
    /// bucket now, in one round trip: the decision and the units taken (0
    /// when none fits; then the decision is the smallest cost's denial).
    pub(crate) fn lease<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        costs: &[u32],
    ) -> Result<(Decision, u32), RateLimitError> {
        let name = key_name(&self.prefix, key);
        let at = Instant::now();
        let call = self.alg.lease_call(&name, costs, self.margin_ms);
        conn::run(&self.pool, |con| scripts::eval(con, &call))
            .and_then(|reply| self.alg.decide_lease(reply, costs, at))
    }
}

impl<K: RedisKey + ?Sized, A: RedisAlgorithm> KeyedLimit<K> for RedisRateLimiter<A> {
    fn quota(&self) -> crate::Quota {
        self.alg.quota()
    }

    fn capacity(&self) -> u32 {
        self.alg.capacity()
    }

    fn check_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError> {
        self.run(key, cost, None, true)
    }

    fn check_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        self.run(key, cost, Some(now), true)
    }

    fn peek_n(&self, key: &K, cost: u32) -> Result<Decision, RateLimitError> {
        self.run(key, cost, None, false)
    }

    fn peek_n_at(&self, key: &K, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        self.run(key, cost, Some(now), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_escape_everything_but_plain_bytes() {
        assert_eq!(key_name("dk:rl", "user:42"), b"{dk:rl:user%3A42}".to_vec());
        assert_eq!(key_name("p", "a}{b%"), b"{p:a%7D%7Bb%25}".to_vec());
        assert_eq!(key_name("p", &7u64), b"{p:7}".to_vec());
        // Distinct keys, distinct names (no escaping collision).
        assert_ne!(key_name("p", "a:b"), key_name("p:a", "b"));
    }
}
