//! The algorithm abstraction: a sealed trait the four algorithms implement,
//! and the plain (single-threaded) state machines they share with policies.

use std::fmt;
use std::time::Instant;

use parking_lot::Mutex;

use crate::decision::{Decision, Detail};
use crate::quota::Quota;

/// A rate-limiting algorithm: [`Gcra`](crate::Gcra),
/// [`FixedWindow`](crate::FixedWindow), [`SlidingLog`](crate::SlidingLog)
/// or [`SlidingCounter`](crate::SlidingCounter). Sealed: the limiters rely
/// on each implementation's exactness proofs.
pub trait Algorithm: sealed::Sealed + Clone + Send + Sync + fmt::Debug + 'static {
    /// The quota the algorithm enforces.
    fn quota(&self) -> Quota;

    /// The largest cost that can ever be granted at once (the burst for
    /// GCRA, the limit for the window algorithms).
    fn capacity(&self) -> u32;

    /// Bytes of state one key holds when it has been used (the cell, not
    /// counting the key or the table's own overhead); for the sliding log
    /// this is the worst case, which grows with the limit.
    fn state_bytes(&self) -> usize;
}

pub(crate) mod sealed {
    use std::time::Instant;

    use crate::decision::Decision;

    /// The internal half of [`Algorithm`](super::Algorithm).
    pub trait Sealed {
        /// Per-key (or per-limiter) state, shared between threads.
        type Cell: Send + Sync;

        /// A cell in the full (unused) state that has seen time `floor`.
        fn new_cell(&self, floor: u64) -> Self::Cell;

        /// Checks `cost` (already validated: `1..=capacity`) at `now`
        /// (nanoseconds since the origin; `at` is the same instant);
        /// consumes when `consume` and granted.
        fn check_cell(
            &self,
            cell: &Self::Cell,
            now: u64,
            at: Instant,
            cost: u32,
            consume: bool,
        ) -> Decision;

        /// `(seen, full_at)`: the newest time the cell has seen and the
        /// effective time from which it is full again.
        fn idle_cell(&self, cell: &mut Self::Cell) -> (u64, u64);

        /// Panics when the cell breaks an invariant (tests only).
        #[cfg(any(test, fuzzing))]
        fn validate_cell(&self, cell: &Self::Cell);
    }
}

/// The plain state machine of an algorithm, used under a lock (window
/// algorithms, policies) or inside a CAS loop (GCRA).
pub(crate) trait Plain {
    type State: Default + Clone + fmt::Debug + Send;

    /// Capacity as shown in `X-RateLimit-Limit`.
    fn cap(&self) -> u32;

    /// Drops what can never matter again at effective time `t` (only ever
    /// called with non-decreasing `t` per state).
    fn advance(&self, _st: &mut Self::State, _t: u64) {}

    /// Whether `cost` fits at effective time `t`.
    fn fits(&self, st: &Self::State, t: u64, cost: u32) -> bool;

    /// Charges `cost` at `t` (only after `fits`).
    fn commit(&self, st: &mut Self::State, t: u64, cost: u32);

    /// The decision's detail for the state `st` at `t`.
    fn detail(&self, st: &Self::State, t: u64, cost: u32, allowed: bool) -> Detail;

    /// Effective time from which `st` is equivalent to the empty state.
    fn full_at(&self, st: &Self::State) -> u64;

    /// Panics when `st` breaks an invariant at time `seen`.
    #[cfg(any(test, fuzzing))]
    fn validate_state(&self, st: &Self::State, seen: u64);
}

/// A lock-protected cell for the window algorithms: state plus the newest
/// time seen (so an older `now` is treated as no time passed).
#[derive(Debug, Default)]
pub struct LockedCell<S> {
    inner: Mutex<Locked<S>>,
}

#[derive(Debug, Default)]
struct Locked<S> {
    seen: u64,
    state: S,
}

impl<S: Default> LockedCell<S> {
    pub(crate) fn new(floor: u64) -> Self {
        Self {
            inner: Mutex::new(Locked {
                seen: floor,
                state: S::default(),
            }),
        }
    }
}

/// `check_cell` of the window algorithms: a [`Plain`] state machine under
/// a mutex.
pub(crate) fn locked_check<P: Plain>(
    alg: &P,
    cell: &LockedCell<P::State>,
    now: u64,
    at: Instant,
    cost: u32,
    consume: bool,
) -> Decision {
    let mut g = cell.inner.lock();
    let t = now.max(g.seen);
    let allowed;
    let detail = if consume {
        g.seen = t;
        alg.advance(&mut g.state, t);
        allowed = alg.fits(&g.state, t, cost);
        if allowed {
            alg.commit(&mut g.state, t, cost);
        }
        alg.detail(&g.state, t, cost, allowed)
    } else {
        allowed = alg.fits(&g.state, t, cost);
        alg.detail(&g.state, t, cost, allowed)
    };
    drop(g);
    Decision {
        allowed,
        source: crate::decision::Source::State,
        limit: alg.cap(),
        cost,
        now,
        at,
        t_eff: t,
        detail,
    }
}

pub(crate) fn locked_idle<P: Plain>(alg: &P, cell: &mut LockedCell<P::State>) -> (u64, u64) {
    let g = cell.inner.get_mut();
    (g.seen, alg.full_at(&g.state))
}

#[cfg(any(test, fuzzing))]
pub(crate) fn locked_validate<P: Plain>(alg: &P, cell: &LockedCell<P::State>) {
    let g = cell.inner.lock();
    alg.validate_state(&g.state, g.seen);
}

/// The one skeleton of the window algorithms ([`FixedWindow`](crate::FixedWindow),
/// [`SlidingLog`](crate::SlidingLog), [`SlidingCounter`](crate::SlidingCounter)):
/// `windowed!(Algorithm, State)` makes an algorithm whose counting rule is
/// its [`Plain`] impl a sealed algorithm over a [`LockedCell`]. (A macro,
/// not a blanket impl: the public `Sealed::Cell` would name the
/// crate-private `Plain::State`.)
macro_rules! windowed {
    ($alg:ty, $state:ty) => {
        impl $crate::algorithm::sealed::Sealed for $alg {
            type Cell = $crate::algorithm::LockedCell<$state>;

            fn new_cell(&self, floor: u64) -> Self::Cell {
                $crate::algorithm::LockedCell::new(floor)
            }

            fn check_cell(
                &self,
                cell: &Self::Cell,
                now: u64,
                at: std::time::Instant,
                cost: u32,
                consume: bool,
            ) -> $crate::decision::Decision {
                $crate::algorithm::locked_check(self, cell, now, at, cost, consume)
            }

            fn idle_cell(&self, cell: &mut Self::Cell) -> (u64, u64) {
                $crate::algorithm::locked_idle(self, cell)
            }

            #[cfg(any(test, fuzzing))]
            fn validate_cell(&self, cell: &Self::Cell) {
                $crate::algorithm::locked_validate(self, cell);
            }
        }
    };
}
pub(crate) use windowed;

/// The allowing decision of a backend that could not answer, configured to
/// fail open: nothing charged, full capacity shown.
#[cfg(feature = "redis")]
pub(crate) fn fallback_decision(limit: u32, cost: u32, at: Instant) -> Decision {
    let mut d = cap_decision(true, limit, cost, 0, at, 0);
    d.source = crate::decision::Source::Fallback;
    d
}

/// A decision that did not come from any state: the key table was full.
pub(crate) fn cap_decision(
    allowed: bool,
    limit: u32,
    cost: u32,
    now: u64,
    at: Instant,
    retry_at: u64,
) -> Decision {
    Decision {
        allowed,
        source: crate::decision::Source::KeyCap,
        limit,
        cost,
        now,
        at,
        t_eff: now,
        detail: Detail::Eager {
            remaining: if allowed { limit - cost } else { 0 },
            reset_at: now,
            retry_at,
            next_at: retry_at,
        },
    }
}
