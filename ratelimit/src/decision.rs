//! What a check answers: allowed or not, and the numbers a caller needs
//! for `429` responses and rate-limit headers.

use std::time::{Duration, Instant};

/// The outcome of one check (or peek) of one rule.
///
/// All durations are measured from the `now` the check was given. The
/// numbers are derived on demand from a snapshot of the state taken
/// atomically with the decision, so a hot loop that only looks at
/// [`is_allowed`](Decision::is_allowed) pays for no arithmetic it ignores.
///
/// ```
/// use dispatchkit_ratelimit::{Gcra, Quota, RateLimiter};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let limiter = RateLimiter::new_at(Gcra::new(Quota::per_second(2)?), t0);
/// assert!(limiter.check_at(t0).is_allowed());
/// assert!(limiter.check_at(t0).is_allowed());
/// let d = limiter.check_at(t0);
/// assert!(!d.is_allowed());
/// assert_eq!(d.remaining(), 0);
/// assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
/// assert_eq!(d.reset_after(), Duration::from_secs(1));
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
///
/// A dropped decision would silently fail open, so it is `#[must_use]`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use dispatchkit_ratelimit::{Gcra, Quota, RateLimiter};
/// let limiter = RateLimiter::new(Gcra::new(Quota::per_second(1).unwrap()));
/// limiter.check(); // error: unused `Decision` that must be used
/// ```
///
/// ```
/// #![deny(unused_must_use)]
/// use dispatchkit_ratelimit::{Gcra, Quota, RateLimiter};
/// let limiter = RateLimiter::new(Gcra::new(Quota::per_second(1).unwrap()));
/// assert!(limiter.check().is_allowed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a dropped decision fails open: check is_allowed()"]
pub struct Decision {
    pub(crate) allowed: bool,
    pub(crate) source: Source,
    pub(crate) limit: u32,
    pub(crate) cost: u32,
    /// The caller's `now`, in nanoseconds since the limiter's origin.
    pub(crate) now: u64,
    /// The caller's `now`.
    pub(crate) at: Instant,
    /// The effective time of the decision: `max(now, newest time seen)`.
    pub(crate) t_eff: u64,
    pub(crate) detail: Detail,
}

/// Where a verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The key's state.
    State,
    /// A keyed limiter's full table (its `FailMode`).
    KeyCap,
    /// An unavailable remote backend (its configured fail mode).
    Fallback,
    /// Tokens a process leased from a remote bucket earlier.
    Lease,
}

/// State after the decision, enough to derive every number lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// GCRA: theoretical arrival time after the decision, emission interval
    /// and tolerance (`tau = (burst - 1) * t`).
    Gcra { tat: u64, t: u64, tau: u64 },
    /// Fixed window: the window's end and the units used in it.
    Fixed { end: u64, count: u32 },
    /// Sliding counter: window length, current window index, previous and
    /// current counts.
    Counter {
        window: u64,
        idx: u64,
        prev: u32,
        curr: u32,
    },
    /// Numbers computed eagerly (sliding log, fail-mode verdicts).
    Eager {
        remaining: u32,
        reset_at: u64,
        retry_at: u64,
        next_at: u64,
    },
}

impl Decision {
    /// Whether the units were granted (for a peek: would be granted).
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// True when a keyed limiter's key table was at its hard cap and the
    /// verdict came from its [`FailMode`](crate::FailMode), not from a
    /// key's state.
    pub fn from_key_cap(&self) -> bool {
        self.source == Source::KeyCap
    }

    /// True when a remote backend could not answer and the verdict came
    /// from its configured fail mode (`RedisConfig::on_unavailable`), not
    /// from the key's state: nothing was charged anywhere.
    pub fn is_fallback(&self) -> bool {
        self.source == Source::Fallback
    }

    /// True when the units came from tokens this process leased from a
    /// remote bucket earlier (`LeasedLimiter`), without a round trip; then
    /// [`remaining`](Self::remaining) counts the lease's tokens left.
    pub fn from_lease(&self) -> bool {
        self.source == Source::Lease
    }

    /// The rule's capacity, as `X-RateLimit-Limit` shows it: the burst for
    /// the token bucket, the limit per window for the window algorithms.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The cost this decision was asked for.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// The `now` the check was given.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Units that could still be granted right after this decision, at its
    /// effective time. O(1).
    pub fn remaining(&self) -> u32 {
        self.detail.remaining(self.limit, self.t_eff)
    }

    /// Time until the state is back to full (nothing used); zero when it is
    /// full. `X-RateLimit-Reset` is this instant.
    pub fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.reset_at_ns().saturating_sub(self.now))
    }

    /// The instant of [`reset_after`](Self::reset_after), in nanoseconds
    /// since the origin.
    pub(crate) fn reset_at_ns(&self) -> u64 {
        self.detail.reset_at(self.t_eff)
    }

    /// The instant the state is back to full: [`at`](Self::at) plus
    /// [`reset_after`](Self::reset_after) (`None` only past the range of
    /// `Instant`, for a fabricated far-future `now`).
    pub fn reset_at(&self) -> Option<Instant> {
        self.at.checked_add(self.reset_after())
    }

    /// On denial, the instant from which the same cost would be granted if
    /// nothing else is charged meanwhile: [`at`](Self::at) plus
    /// [`retry_after`](Self::retry_after). `None` when allowed (or past the
    /// range of `Instant`).
    ///
    /// ```
    /// use dispatchkit_ratelimit::{Gcra, Quota, RateLimiter};
    /// use std::time::{Duration, Instant};
    ///
    /// let t0 = Instant::now();
    /// let lim = RateLimiter::new_at(Gcra::new(Quota::with_period(Duration::from_secs(2))?), t0);
    /// assert_eq!(lim.check_at(t0).retry_at(), None);
    /// let d = lim.check_at(t0);
    /// assert_eq!(d.retry_at(), Some(t0 + Duration::from_secs(2)));
    /// assert_eq!(d.reset_at(), Some(t0 + Duration::from_secs(2)));
    /// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
    /// ```
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_after().and_then(|d| self.at.checked_add(d))
    }

    /// On denial, the time after which the same cost would be granted if
    /// nothing else is charged meanwhile; `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        if self.allowed {
            return None;
        }
        Some(Duration::from_nanos(
            self.retry_at_ns().saturating_sub(self.now),
        ))
    }

    /// The effective time from which the same cost fits (for a denial, the
    /// instant of [`retry_after`](Self::retry_after)).
    pub(crate) fn retry_at_ns(&self) -> u64 {
        self.detail.retry_at(self.limit, self.t_eff, self.cost)
    }

    /// The draft's "effective window": the time within which no more than
    /// [`remaining`](Decision::remaining) units can be granted, i.e. until
    /// the available quota next grows. Zero when the state is full.
    pub fn effective_window(&self) -> Duration {
        let r = self.remaining();
        if r >= self.limit {
            return Duration::ZERO;
        }
        let at = match self.detail {
            Detail::Eager { next_at, .. } => next_at,
            _ => self.detail.earliest_fit(self.limit, self.t_eff, r + 1),
        };
        Duration::from_nanos(at.saturating_sub(self.now))
    }
}

impl Detail {
    /// Units available at `t_eff` (≥ the snapshot's time) under capacity
    /// `limit`: [`Decision::remaining`].
    #[inline]
    pub(crate) fn remaining(&self, limit: u32, t_eff: u64) -> u32 {
        match *self {
            Detail::Gcra { tat, t, tau } => {
                let avail = (t_eff.saturating_add(tau).saturating_add(t)).saturating_sub(tat) / t;
                avail.min(u64::from(limit)) as u32
            }
            Detail::Fixed { count, .. } => limit.saturating_sub(count),
            Detail::Counter {
                window,
                idx,
                prev,
                curr,
            } => {
                let e = t_eff - idx * window;
                let budget = u128::from(limit) * u128::from(window);
                let used_prev = u128::from(prev) * u128::from(window - e);
                let free = budget.saturating_sub(used_prev) / u128::from(window);
                (free.min(u128::from(limit)) as u32).saturating_sub(curr)
            }
            Detail::Eager { remaining, .. } => remaining,
        }
    }

    /// Effective time from which the state is full: the instant of
    /// [`Decision::reset_after`].
    #[inline]
    pub(crate) fn reset_at(&self, t_eff: u64) -> u64 {
        match *self {
            Detail::Gcra { tat, .. } => tat,
            Detail::Fixed { end, count } => {
                if count > 0 {
                    end
                } else {
                    t_eff
                }
            }
            Detail::Counter {
                window,
                idx,
                prev,
                curr,
            } => {
                if curr > 0 {
                    (idx + 2) * window
                } else if prev > 0 {
                    (idx + 1) * window
                } else {
                    t_eff
                }
            }
            Detail::Eager { reset_at, .. } => reset_at,
        }
    }

    /// Effective time from which `cost` fits again: the instant of
    /// [`Decision::retry_after`] on a denial.
    #[inline]
    pub(crate) fn retry_at(&self, limit: u32, t_eff: u64, cost: u32) -> u64 {
        match *self {
            Detail::Eager { retry_at, .. } => retry_at,
            _ => self.earliest_fit(limit, t_eff, cost),
        }
    }

    /// Earliest effective time `≥ t_eff` at which `cost` (≤ `limit`) fits,
    /// given the snapshot.
    fn earliest_fit(&self, limit: u32, t_eff: u64, cost: u32) -> u64 {
        match *self {
            Detail::Gcra { tat, t, tau } => {
                let need = tat.saturating_add(u64::from(cost - 1) * t);
                need.saturating_sub(tau).max(t_eff)
            }
            Detail::Fixed { end, count } => {
                if count + cost <= limit {
                    t_eff
                } else {
                    end
                }
            }
            Detail::Counter {
                window,
                idx,
                prev,
                curr,
            } => crate::counter_estimate::earliest_fit(window, limit, idx, prev, curr, t_eff, cost),
            Detail::Eager { next_at, .. } => next_at,
        }
    }
}
