//! Sliding-window counter: the previous window's count weighted by its
//! overlap with the sliding window, plus the current window's count.

use crate::algorithm::{Algorithm, LockedCell, Plain, windowed};
use crate::counter_estimate::fits_counts;
use crate::decision::Detail;
use crate::quota::Quota;

/// Sliding-window counter (the approximation large CDNs use): two counters
/// per key instead of a log.
///
/// Definition: with `W = quota.period()`, window `k = ⌊t / W⌋`, elapsed
/// `e = t − k·W`, `prev` / `curr` the units granted in windows `k − 1` / `k`,
/// a request of cost `n` is granted iff
/// `prev·(W − e) + (curr + n)·W ≤ limit·W` — the estimate
/// `prev·(W − e)/W + curr + n ≤ limit`, evaluated in exact integer
/// arithmetic (no floating point).
///
/// Error bound: every aligned window holds at most `limit` units, and any
/// window `(t − W, t]` holds at most `limit + ⌊prev·e/W⌋ ≤ 2·limit − 1`
/// units; the estimate is exact (never over-admits) when the previous
/// window's grants were spread uniformly over it. The worst case needs the
/// previous window's whole quota granted at its very end.
///
/// Memory: 24 bytes per key (window number, two counts, newest time seen)
/// plus a one-byte lock, 32 bytes with padding.
///
/// ```
/// use dispatchkit_ratelimit::{Quota, RateLimiter, SlidingCounter};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let lim = RateLimiter::new_at(SlidingCounter::new(Quota::per_minute(100)?), t0);
/// lim.check_n_at(100, t0)?; // the first minute's quota, all at once
/// // 45 s into the next minute the previous one still weighs 100 · 15/60 = 25.
/// let d = lim.peek_n_at(75, t0 + Duration::from_secs(105))?;
/// assert!(d.is_allowed());
/// assert_eq!(d.remaining(), 75);
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingCounter {
    quota: Quota,
    w: u64,
}

impl SlidingCounter {
    /// A sliding counter of window `quota.period()` allowing `quota.limit()`.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            w: quota.period_ns(),
        }
    }

    /// `(window index, prev, curr)` of `st` seen from time `t`.
    fn at(&self, st: &CounterState, t: u64) -> (u64, u32, u32) {
        let idx = t / self.w;
        if !st.used {
            (idx, 0, 0)
        } else if st.idx == idx {
            (idx, st.prev, st.curr)
        } else if st.idx + 1 == idx {
            (idx, st.curr, 0)
        } else {
            (idx, 0, 0)
        }
    }
}

/// Counters of one key, as of window `idx`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    idx: u64,
    prev: u32,
    curr: u32,
    used: bool,
}

impl CounterState {
    /// The state as two words (a policy keeps it inline in the key's entry).
    pub(crate) fn to_words(self) -> [u64; 2] {
        if self.used {
            [self.idx, u64::from(self.prev) | u64::from(self.curr) << 32]
        } else {
            [0, 0]
        }
    }

    /// The state stored by [`to_words`](Self::to_words). All zeros read as
    /// unused, which behaves exactly as a used state with both counts 0.
    pub(crate) fn from_words(w: [u64; 2]) -> Self {
        Self {
            idx: w[0],
            prev: w[1] as u32,
            curr: (w[1] >> 32) as u32,
            used: w != [0, 0],
        }
    }
}

impl Algorithm for SlidingCounter {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn capacity(&self) -> u32 {
        self.quota.limit()
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<LockedCell<CounterState>>()
    }
}

impl Plain for SlidingCounter {
    type State = CounterState;

    fn cap(&self) -> u32 {
        self.quota.limit()
    }

    fn fits(&self, st: &CounterState, t: u64, cost: u32) -> bool {
        let (idx, prev, curr) = self.at(st, t);
        fits_counts(
            self.w,
            self.quota.limit(),
            prev,
            curr,
            t - idx * self.w,
            cost,
        )
    }

    fn commit(&self, st: &mut CounterState, t: u64, cost: u32) {
        let (idx, prev, curr) = self.at(st, t);
        *st = CounterState {
            idx,
            prev,
            curr: curr + cost,
            used: true,
        };
    }

    fn detail(&self, st: &CounterState, t: u64, _cost: u32, _allowed: bool) -> Detail {
        let (idx, prev, curr) = self.at(st, t);
        Detail::Counter {
            window: self.w,
            idx,
            prev,
            curr,
        }
    }

    fn full_at(&self, st: &CounterState) -> u64 {
        if !st.used {
            0
        } else if st.curr > 0 {
            (st.idx + 2) * self.w
        } else if st.prev > 0 {
            (st.idx + 1) * self.w
        } else {
            0
        }
    }

    #[cfg(any(test, fuzzing))]
    fn validate_state(&self, st: &CounterState, seen: u64) {
        assert!(
            st.curr <= self.quota.limit() && st.prev <= self.quota.limit(),
            "counter over limit"
        );
        assert!(
            !st.used || st.idx <= seen / self.w,
            "counter window ahead of time seen"
        );
    }
}

windowed!(SlidingCounter, CounterState);
