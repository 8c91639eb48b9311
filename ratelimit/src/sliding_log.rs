//! Exact sliding log: the seed's sorted set (`ZREMRANGEBYSCORE`, `ZADD`,
//! `ZCARD`) of grant times.

use std::collections::VecDeque;

use crate::algorithm::{Algorithm, LockedCell, Plain, windowed};
use crate::decision::Detail;
use crate::quota::Quota;

/// Exact sliding log: at most `quota.limit()` units in **every** window
/// `(t − W, t]` of length `W = quota.period()`.
///
/// Definition: the log holds the grants `(time, cost)`; a request of cost
/// `n` at `t` is granted iff the units granted at times `> t − W` plus `n`
/// are at most `limit`; a grant is appended to the log. Unlike the seed's
/// Redis version, denied requests are not logged, so a client that keeps
/// knocking while denied still recovers after `W`.
///
/// Memory: O(limit) per key — one 16-byte entry per distinct grant time in
/// the window (at most `limit` entries), plus a 48-byte header.
///
/// ```
/// use dispatchkit_ratelimit::{Quota, RateLimiter, SlidingLog};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let log = RateLimiter::new_at(SlidingLog::new(Quota::per_minute(2)?), t0);
/// assert!(log.check_at(t0).is_allowed());
/// assert!(log.check_at(t0 + Duration::from_secs(30)).is_allowed());
/// let d = log.check_at(t0 + Duration::from_secs(59));
/// assert!(!d.is_allowed());
/// assert_eq!(d.retry_after(), Some(Duration::from_secs(1))); // the t0 grant leaves the window
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    quota: Quota,
    w: u64,
}

impl SlidingLog {
    /// A sliding log of window `quota.period()` allowing `quota.limit()`.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            w: quota.period_ns(),
        }
    }

    /// Units of `st` still in the window at `t` and the index of the first
    /// entry in it.
    fn in_window(&self, st: &LogState, t: u64) -> (u32, usize) {
        let mut sum = st.sum;
        let mut first = 0;
        for &(g, c) in &st.entries {
            if g + self.w > t {
                break;
            }
            sum -= c;
            first += 1;
        }
        (sum, first)
    }
}

/// The log of one key: grants `(time, cost)` in time order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogState {
    entries: VecDeque<(u64, u32)>,
    sum: u32,
}

impl LogState {
    /// A log of `entries` (time order, one per time), as the Redis backend
    /// reads it back.
    #[cfg(feature = "redis")]
    pub(crate) fn from_entries(entries: Vec<(u64, u32)>) -> Self {
        let sum = entries.iter().map(|&(_, c)| c).sum();
        Self {
            entries: entries.into(),
            sum,
        }
    }
}

impl Algorithm for SlidingLog {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn capacity(&self) -> u32 {
        self.quota.limit()
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<LockedCell<LogState>>()
            + self.quota.limit() as usize * std::mem::size_of::<(u64, u32)>()
    }
}

impl Plain for SlidingLog {
    type State = LogState;

    fn cap(&self) -> u32 {
        self.quota.limit()
    }

    fn advance(&self, st: &mut LogState, t: u64) {
        while let Some(&(g, c)) = st.entries.front() {
            if g + self.w > t {
                break;
            }
            st.entries.pop_front();
            st.sum -= c;
        }
    }

    fn fits(&self, st: &LogState, t: u64, cost: u32) -> bool {
        let (sum, _) = self.in_window(st, t);
        u64::from(sum) + u64::from(cost) <= u64::from(self.quota.limit())
    }

    fn commit(&self, st: &mut LogState, t: u64, cost: u32) {
        match st.entries.back_mut() {
            Some((g, c)) if *g == t => *c += cost,
            _ => st.entries.push_back((t, cost)),
        }
        st.sum += cost;
    }

    fn detail(&self, st: &LogState, t: u64, cost: u32, allowed: bool) -> Detail {
        let (sum, first) = self.in_window(st, t);
        let live = st.entries.range(first..);
        let limit = self.quota.limit();
        let remaining = limit - sum.min(limit);
        let reset_at = st.entries.back().map_or(t, |&(g, _)| (g + self.w).max(t));
        let next_at = if remaining < limit {
            st.entries.get(first).map_or(t, |&(g, _)| g + self.w)
        } else {
            t
        };
        let retry_at = if allowed {
            t
        } else {
            // Expire the oldest grants until `cost` fits.
            let mut s = sum;
            let mut at = t;
            for &(g, c) in live {
                if u64::from(s) + u64::from(cost) <= u64::from(limit) {
                    break;
                }
                s -= c;
                at = g + self.w;
            }
            at
        };
        Detail::Eager {
            remaining,
            reset_at,
            retry_at,
            next_at,
        }
    }

    fn full_at(&self, st: &LogState) -> u64 {
        st.entries.back().map_or(0, |&(g, _)| g + self.w)
    }

    #[cfg(any(test, fuzzing))]
    fn validate_state(&self, st: &LogState, seen: u64) {
        let total: u64 = st.entries.iter().map(|&(_, c)| u64::from(c)).sum();
        assert_eq!(total, u64::from(st.sum), "sliding log sum out of step");
        assert!(
            st.entries
                .iter()
                .zip(st.entries.iter().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "sliding log entries not strictly increasing in time"
        );
        assert!(
            st.entries.iter().all(|&(g, c)| c > 0 && g <= seen),
            "bad log entry"
        );
        let (in_w, _) = self.in_window(st, seen);
        assert!(
            in_w <= self.quota.limit(),
            "sliding log over limit in window"
        );
        assert!(
            st.entries.len() <= self.quota.limit() as usize,
            "log longer than limit"
        );
    }
}

windowed!(SlidingLog, LogState);
