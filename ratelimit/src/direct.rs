//! A single limiter (one state, no key).

use std::fmt;
use std::time::Instant;

use crate::RateLimitError;
use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::time::Origin;

/// Checks a cost against the algorithm's capacity.
pub(crate) fn check_cost<A: Algorithm>(alg: &A, cost: u32) -> Result<(), RateLimitError> {
    if cost == 0 {
        return Err(RateLimitError::InvalidCost {
            cost,
            reason: "a check must ask for at least one unit",
        });
    }
    let capacity = alg.capacity();
    if cost > capacity {
        return Err(RateLimitError::InsufficientCapacity { cost, capacity });
    }
    Ok(())
}

/// Keeps the state on its own cache line so that neighbours in memory do
/// not share its writes.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// One limiter: a single state shared by all callers (a "direct" limiter
/// in governor's terms), `Send + Sync`.
///
/// Time is measured from an origin `Instant` (the construction time for
/// [`new`](RateLimiter::new)); a `now` before the origin counts as the
/// origin. A `now` older than one already seen is treated as the newest
/// time seen: no time passed, nothing extra granted.
///
/// A GCRA check writes the shared state as governor's does: one CAS per
/// grant, nothing for a denial of one unit (see [`Gcra`](crate::Gcra)).
/// A thread whose CAS loses a race backs off (2 µs, doubling) before
/// retrying, so that threads sharing one limiter take turns owning its
/// cache line instead of moving it on every grant.
///
/// ```
/// use dispatchkit_ratelimit::{Gcra, Quota, RateLimiter, RateLimitError};
/// use std::time::Instant;
///
/// let t0 = Instant::now();
/// let lim = RateLimiter::new_at(Gcra::new(Quota::per_second(5)?), t0);
/// assert!(lim.check_n_at(5, t0)?.is_allowed());
/// assert!(!lim.check_at(t0).is_allowed()); // wait and retry
/// assert!(matches!(lim.check_n_at(6, t0), Err(RateLimitError::InsufficientCapacity { .. }))); // never
/// # Ok::<(), RateLimitError>(())
/// ```
pub struct RateLimiter<A: Algorithm> {
    alg: A,
    origin: Origin,
    cell: Padded<A::Cell>,
}

impl<A: Algorithm> fmt::Debug for RateLimiter<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("algorithm", &self.alg)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm> RateLimiter<A> {
    /// A full limiter whose time origin is `Instant::now()`.
    pub fn new(alg: A) -> Self {
        Self::new_at(alg, Instant::now())
    }

    /// A full limiter whose time origin is `origin`. Fixed windows are
    /// aligned to it.
    pub fn new_at(alg: A, origin: Instant) -> Self {
        let cell = Padded(alg.new_cell(0));
        Self {
            alg,
            origin: Origin::new(origin),
            cell,
        }
    }

    /// The algorithm (and through it the quota).
    pub fn algorithm(&self) -> &A {
        &self.alg
    }

    /// [`check_at`](Self::check_at) with `Instant::now()`.
    pub fn check(&self) -> Decision {
        self.check_at(Instant::now())
    }

    /// Checks and, if granted, consumes one unit at `now`. Lock-free for
    /// GCRA (one CAS), one uncontended lock otherwise; O(1) except the
    /// sliding log's O(expired entries) pruning.
    #[inline]
    pub fn check_at(&self, now: Instant) -> Decision {
        let t = self.origin.nanos_to(now);
        self.alg.check_cell(&self.cell.0, t, now, 1, true)
    }

    /// [`check_n_at`](Self::check_n_at) with `Instant::now()`.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn check_n(&self, cost: u32) -> Result<Decision, RateLimitError> {
        self.check_n_at(cost, Instant::now())
    }

    /// Checks and, if granted, consumes `cost` units at `now`, all or none.
    /// A denial means "wait and retry" ([`Decision::retry_after`]).
    ///
    /// # Errors
    /// [`RateLimitError::InvalidCost`] for `cost == 0`;
    /// [`RateLimitError::InsufficientCapacity`] when `cost` exceeds the
    /// capacity, so that it can never be granted. State is unchanged.
    pub fn check_n_at(&self, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        check_cost(&self.alg, cost)?;
        let t = self.origin.nanos_to(now);
        Ok(self.alg.check_cell(&self.cell.0, t, now, cost, true))
    }

    /// [`peek_at`](Self::peek_at) with `Instant::now()`.
    pub fn peek(&self) -> Decision {
        self.peek_at(Instant::now())
    }

    /// Whether one unit would be granted at `now`, without consuming
    /// anything or recording `now`; remaining and reset describe the
    /// current state.
    pub fn peek_at(&self, now: Instant) -> Decision {
        let t = self.origin.nanos_to(now);
        self.alg.check_cell(&self.cell.0, t, now, 1, false)
    }

    /// [`peek_n_at`](Self::peek_n_at) with `Instant::now()`.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn peek_n(&self, cost: u32) -> Result<Decision, RateLimitError> {
        self.peek_n_at(cost, Instant::now())
    }

    /// Like [`peek_at`](Self::peek_at) for `cost` units.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    pub fn peek_n_at(&self, cost: u32, now: Instant) -> Result<Decision, RateLimitError> {
        check_cost(&self.alg, cost)?;
        let t = self.origin.nanos_to(now);
        Ok(self.alg.check_cell(&self.cell.0, t, now, cost, false))
    }

    /// The state (tests only).
    #[cfg(test)]
    pub(crate) fn cell(&self) -> &A::Cell {
        &self.cell.0
    }

    /// Panics if the state breaks an invariant (tests and fuzzing only).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self) {
        self.alg.validate_cell(&self.cell.0);
    }
}
