//! Fixed window counter: the seed's `INCR ratelimit:{user}:{api}:{window}`
//! with a TTL of one window.

use crate::algorithm::{Algorithm, LockedCell, Plain, windowed};
use crate::decision::Detail;
use crate::quota::Quota;

/// Fixed window counter: at most `quota.limit()` units in each window
/// `[k·W, (k+1)·W)` of length `W = quota.period()`, counted from the
/// limiter's origin (windows are aligned, like Redis keys named by the
/// window number). The burst is ignored.
///
/// Definition: a request of cost `n` at time `t` is granted iff the units
/// already granted in window `⌊t / W⌋` plus `n` are at most `limit`.
/// Exact per aligned window; a window of length `W` that straddles a
/// boundary can hold up to `2·limit` (the known weakness of the method).
///
/// Memory: 24 bytes per key (window number, count, newest time seen) plus
/// a one-byte lock, so 32 bytes with padding.
///
/// ```
/// use dispatchkit_ratelimit::{FixedWindow, Quota, RateLimiter};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let hourly = RateLimiter::new_at(FixedWindow::new(Quota::per_hour(1000)?), t0);
/// let d = hourly.check_n_at(153, t0 + Duration::from_secs(600))?;
/// assert_eq!(d.remaining(), 847);
/// assert_eq!(d.reset_after(), Duration::from_secs(3000)); // end of the hour
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    quota: Quota,
    w: u64,
}

impl FixedWindow {
    /// A fixed window of `quota.period()` allowing `quota.limit()`.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            w: quota.period_ns(),
        }
    }
}

/// State of one key: the window number last used and its count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FixedState {
    idx: u64,
    count: u32,
}

impl FixedState {
    /// The state as two words (a policy keeps it inline in the key's entry).
    pub(crate) fn to_words(self) -> [u64; 2] {
        [self.idx, u64::from(self.count)]
    }

    /// The state stored by [`to_words`](Self::to_words).
    pub(crate) fn from_words(w: [u64; 2]) -> Self {
        Self {
            idx: w[0],
            count: w[1] as u32,
        }
    }
}

impl FixedWindow {
    fn count_at(&self, st: &FixedState, t: u64) -> u32 {
        if st.idx == t / self.w { st.count } else { 0 }
    }
}

impl Algorithm for FixedWindow {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn capacity(&self) -> u32 {
        self.quota.limit()
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<LockedCell<FixedState>>()
    }
}

impl Plain for FixedWindow {
    type State = FixedState;

    fn cap(&self) -> u32 {
        self.quota.limit()
    }

    fn fits(&self, st: &FixedState, t: u64, cost: u32) -> bool {
        u64::from(self.count_at(st, t)) + u64::from(cost) <= u64::from(self.quota.limit())
    }

    fn commit(&self, st: &mut FixedState, t: u64, cost: u32) {
        let count = self.count_at(st, t) + cost;
        *st = FixedState {
            idx: t / self.w,
            count,
        };
    }

    fn detail(&self, st: &FixedState, t: u64, _cost: u32, _allowed: bool) -> Detail {
        Detail::Fixed {
            end: (t / self.w + 1) * self.w,
            count: self.count_at(st, t),
        }
    }

    fn full_at(&self, st: &FixedState) -> u64 {
        if st.count == 0 {
            0
        } else {
            (st.idx + 1) * self.w
        }
    }

    #[cfg(any(test, fuzzing))]
    fn validate_state(&self, st: &FixedState, seen: u64) {
        assert!(
            st.count <= self.quota.limit(),
            "fixed window count over limit"
        );
        assert!(
            st.idx <= seen / self.w,
            "fixed window ahead of the newest time seen"
        );
    }
}

windowed!(FixedWindow, FixedState);
