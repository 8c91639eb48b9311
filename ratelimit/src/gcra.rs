//! The token bucket as GCRA (generic cell rate algorithm): one
//! theoretical arrival time (TAT) per key, updated by a lock-free CAS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::algorithm::{Algorithm, Plain, sealed};
use crate::decision::{Decision, Detail};
use crate::quota::Quota;

/// Token bucket as GCRA: `quota.limit()` units per `quota.period()`,
/// refilled continuously, holding at most `quota.burst()` units.
///
/// Definition (virtual scheduling): with emission interval
/// `T = ceil(period / limit)` ns and tolerance `τ = (burst − 1)·T`, a
/// request of cost `n` at time `t` is granted iff
/// `t ≥ TAT + (n − 1)·T − τ`, and then `TAT ← max(TAT, t) + n·T`.
/// Equivalently, over the log of grants `g_j` (with `S_j` units granted
/// from `j` on), it is granted iff `n ≤ burst` and
/// `(S_j + n − burst)·T ≤ t − g_j` for every `j`. Hence in any closed window
/// of length `W` at most `burst + ⌊W / T⌋` units are granted.
///
/// Memory: 16 bytes per key (TAT and newest time seen, two `AtomicU64`
/// on the key's own cache line). A check is one load and one CAS (retried
/// only under contention on the same key); a denial writes nothing.
///
/// ```
/// use dispatchkit_ratelimit::{Gcra, KeyedRateLimiter, Quota};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now();
/// let per_user = KeyedRateLimiter::new_at(Gcra::new(Quota::per_second(10)?.with_burst(20)?), t0);
/// let granted = (0..30).filter(|_| per_user.check_at(&"alice", t0).is_allowed()).count();
/// assert_eq!(granted, 20); // the burst
/// assert!(per_user.check_at(&"alice", t0 + Duration::from_millis(100)).is_allowed()); // 10/s refill
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    quota: Quota,
    t: u64,
    tau: u64,
}

impl Gcra {
    /// GCRA for `quota` (rate `limit / period`, capacity `burst`).
    pub fn new(quota: Quota) -> Self {
        let t = quota.emission_interval_ns();
        Self {
            quota,
            t,
            tau: t * u64::from(quota.burst() - 1),
        }
    }

    /// Whether `cost` fits a bucket whose TAT is `tat` at time `t_eff`.
    #[inline]
    fn fits_tat(&self, tat: u64, t_eff: u64, cost: u32) -> bool {
        tat.saturating_add(u64::from(cost) * self.t) <= t_eff + self.tau + self.t
    }

    #[inline]
    fn detail_tat(&self, tat: u64) -> Detail {
        Detail::Gcra {
            tat,
            t: self.t,
            tau: self.tau,
        }
    }
}

impl Algorithm for Gcra {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn capacity(&self) -> u32 {
        self.quota.burst()
    }

    fn state_bytes(&self) -> usize {
        std::mem::size_of::<GcraCell>()
    }
}

/// GCRA state of one key: TAT and the newest `now` seen, in nanoseconds
/// since the limiter's origin. A TAT at or before `now` means "full".
#[derive(Debug, Default)]
pub struct GcraCell {
    tat: AtomicU64,
    seen: AtomicU64,
}

thread_local! {
    /// CAS attempts on GCRA state that lost a race, per thread. Touched
    /// only on the contended path, and thread-local so that counting adds
    /// no shared write.
    static CAS_RETRIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// GCRA CAS attempts that lost a race on the calling thread since it
/// started (stress tests assert contention with it).
#[doc(hidden)]
pub fn cas_retries_on_this_thread() -> u64 {
    CAS_RETRIES.with(std::cell::Cell::get)
}

impl sealed::Sealed for Gcra {
    type Cell = GcraCell;

    fn new_cell(&self, floor: u64) -> GcraCell {
        GcraCell {
            tat: AtomicU64::new(0),
            seen: AtomicU64::new(floor),
        }
    }

    #[inline]
    fn check_cell(
        &self,
        cell: &GcraCell,
        now: u64,
        at: Instant,
        cost: u32,
        consume: bool,
    ) -> Decision {
        // Time never runs backwards for a key: an older `now` is treated as
        // the newest time seen. A racing store may regress `seen`; that only
        // makes a later decision stricter, never more generous.
        let seen = cell.seen.load(Ordering::Relaxed);
        let t_eff = now.max(seen);
        if consume && now > seen {
            cell.seen.store(now, Ordering::Relaxed);
        }
        let mut tat = cell.tat.load(Ordering::Acquire);
        let allowed = loop {
            if !self.fits_tat(tat, t_eff, cost) {
                break false;
            }
            if !consume {
                break true;
            }
            let next = tat.max(t_eff) + u64::from(cost) * self.t;
            match cell
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    tat = next;
                    break true;
                }
                Err(current) => {
                    CAS_RETRIES.with(|c| c.set(c.get() + 1));
                    tat = current;
                }
            }
        };
        Decision {
            allowed,
            from_key_cap: false,
            limit: self.quota.burst(),
            cost,
            now,
            at,
            t_eff,
            detail: self.detail_tat(tat),
        }
    }

    fn idle_cell(&self, cell: &mut GcraCell) -> (u64, u64) {
        (*cell.seen.get_mut(), *cell.tat.get_mut())
    }

    #[cfg(any(test, fuzzing))]
    fn validate_cell(&self, cell: &GcraCell) {
        let seen = cell.seen.load(Ordering::Relaxed);
        let tat = cell.tat.load(Ordering::Relaxed);
        self.validate_state(&tat, seen);
    }
}

impl Plain for Gcra {
    type State = u64;

    fn cap(&self) -> u32 {
        self.quota.burst()
    }

    fn fits(&self, tat: &u64, t: u64, cost: u32) -> bool {
        self.fits_tat(*tat, t, cost)
    }

    fn commit(&self, tat: &mut u64, t: u64, cost: u32) {
        *tat = (*tat).max(t) + u64::from(cost) * self.t;
    }

    fn detail(&self, tat: &u64, _t: u64, _cost: u32, _allowed: bool) -> Detail {
        self.detail_tat(*tat)
    }

    fn full_at(&self, tat: &u64) -> u64 {
        *tat
    }

    #[cfg(any(test, fuzzing))]
    fn validate_state(&self, tat: &u64, seen: u64) {
        // After a grant at t ≤ seen: TAT ≤ t + τ + T.
        assert!(
            *tat <= seen + self.tau + self.t,
            "GCRA TAT {tat} beyond seen {seen} + τ {} + T {}",
            self.tau,
            self.t
        );
    }
}
