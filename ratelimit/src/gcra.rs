//! The token bucket as GCRA (generic cell rate algorithm): one
//! theoretical arrival time (TAT) per key, updated by a lock-free CAS.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::sync::OnceLock;
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
/// Memory: 16 bytes per key (TAT and a newest-time-seen mark, two
/// `AtomicU64` on the key's own cache line). A grant is one CAS (retried
/// only under contention on the same key, after a short back-off), as in
/// governor; a denial of one unit writes nothing. The mark is written only
/// when the newest time seen leaves a unit available, which a hot,
/// saturated key never does; this keeps "an older `now` counts as no time
/// passed" exact, because a decision depends on the newest time only
/// through the units available at it (the proof is in the source, on the
/// per-key cell).
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
    /// `T`, never zero: a division by it cannot panic, so a decision's
    /// unused numbers cost nothing once inlined.
    t: NonZeroU64,
    tau: u64,
}

impl Gcra {
    /// GCRA for `quota` (rate `limit / period`, capacity `burst`).
    pub fn new(quota: Quota) -> Self {
        let t = NonZeroU64::new(quota.emission_interval_ns()).unwrap_or(NonZeroU64::MIN);
        Self {
            quota,
            t,
            tau: t.get() * u64::from(quota.burst() - 1),
        }
    }

    /// The emission interval `T`, ns (the Redis scripts' argument).
    #[cfg(feature = "redis")]
    pub(crate) fn interval_ns(&self) -> u64 {
        self.t.get()
    }

    /// The tolerance `τ = (burst − 1)·T`, ns (the Redis scripts' argument).
    #[cfg(feature = "redis")]
    pub(crate) fn tolerance_ns(&self) -> u64 {
        self.tau
    }

    /// Whether `cost` fits a bucket whose TAT is `tat` at time `t_eff`.
    #[inline]
    pub(crate) fn fits_tat(&self, tat: u64, t_eff: u64, cost: u32) -> bool {
        // `TAT + cost·T ≤ t_eff + τ + T`, with `T` taken from both sides:
        // one unit (the hot loops' constant cost) tests `TAT ≤ t_eff + τ`.
        tat.saturating_add(u64::from(cost).saturating_sub(1) * self.t.get()) <= t_eff + self.tau
    }

    /// The TAT after charging `cost` at `t_eff` (only after `fits_tat`).
    #[inline]
    pub(crate) fn charged(&self, tat: u64, t_eff: u64, cost: u32) -> u64 {
        tat.max(t_eff) + u64::from(cost) * self.t.get()
    }

    /// Units available at `t_eff` (`Decision::remaining`).
    #[inline]
    pub(crate) fn remaining_tat(&self, tat: u64, t_eff: u64) -> u32 {
        let avail = (t_eff.saturating_add(self.tau).saturating_add(self.t.get()))
            .saturating_sub(tat)
            / self.t;
        avail.min(u64::from(self.quota.burst())) as u32
    }

    /// Effective time from which `cost` fits (`Decision::retry_after`).
    #[inline]
    pub(crate) fn fit_at_tat(&self, tat: u64, t_eff: u64, cost: u32) -> u64 {
        let need = tat.saturating_add(u64::from(cost - 1) * self.t.get());
        need.saturating_sub(self.tau).max(t_eff)
    }

    #[inline]
    pub(crate) fn detail_tat(&self, tat: u64) -> Detail {
        Detail::Gcra {
            tat,
            t: self.t.get(),
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

/// GCRA state of one key, in nanoseconds since the limiter's origin: the
/// TAT and `seen`, a mark standing for the newest `now` a consuming check
/// has seen. A TAT of 0 means "never charged" (full since `seen`).
///
/// # Why `seen` is written so rarely, and stays exact
///
/// With `k(x)` = units available at time `x` for the current TAT (0 below
/// `TAT − τ`, then one more every `T`, `burst` from `TAT` on), a check at
/// `now` behaves as at `t = max(now, newest)` and, since `k` is monotone,
/// `k(t) = max(k(now), k(newest))`: the verdict and every number of the
/// decision depend on the newest time only through `k(newest)`, and the
/// TAT update `max(TAT, t) + cost·T` only when `t ≥ TAT`, which cannot
/// happen for the newest time (after any consuming check `newest < TAT`,
/// unless nothing was ever charged, when `seen` is exact). So the cell keeps
/// the invariant
///
/// > `seen ≤ newest`, and `seen = newest` or `k(newest) = 0`
///
/// by writing `seen` only when a consuming check's `now` is newer than
/// `seen` and leaves `k(now) ≥ 1` after the check. A denial of one unit
/// has `k(now) = 0`, and so does a grant of the last available unit (the
/// steady state of a saturated key): neither writes `seen`. A grant is
/// then one CAS on the TAT, like governor's, and a denial writes nothing.
/// The property tests check the invariant against a model that records
/// every newest time, and that every decision equals the model's.
///
/// Under races `seen` may lag (a store from a slower thread may land after
/// a newer one): that lowers `k(newest)`, so decisions only get stricter.
#[derive(Debug, Default)]
pub struct GcraCell {
    tat: AtomicU64,
    seen: AtomicU64,
}

thread_local! {
    /// CAS attempts on GCRA state that lost a race, per thread. Touched
    /// only on the contended path, and thread-local so that counting adds
    /// no shared write.
    static CAS_RETRIES: Cell<u64> = const { Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// Writes to GCRA state (CAS attempts and `seen` stores) on this thread
    /// (unit tests count them against governor's one CAS per grant).
    pub(crate) static STATE_WRITES: Cell<u64> = const { Cell::new(0) };
}

/// Counts one write to shared GCRA state (tests only).
#[inline(always)]
fn count_write() {
    #[cfg(test)]
    STATE_WRITES.with(|c| c.set(c.get() + 1));
}

/// Contention management of the TAT's CAS loop: after a lost race, wait
/// before re-reading the TAT, without touching it.
///
/// Two threads granting from one hot state otherwise move its cache line
/// back and forth on every grant (a load to share it, the CAS to own it,
/// each a cross-core transfer), and each CAS is likely to fail again. A
/// thread that lost waits [`FIRST_WAIT_NS`], doubling up to
/// [`MAX_WAIT_NS`] on further losses in the same check, so the winner
/// keeps the line for a run of grants (the two-thread `ratelimit_direct`
/// bench measures what that buys); one thread never loses a race, so it
/// never waits.
///
/// The wait is a time, not a count of spin-loop hints: what one hint
/// costs differs by an order of magnitude between processors (x86's
/// `pause` takes a few cycles on some cores and over a hundred on others),
/// so a count tuned on one machine is a different wait on the next. The
/// hint's cost is measured once, at the first lost race in the process.
const FIRST_WAIT_NS: u64 = 2_000;
/// The longest wait after a lost race.
const MAX_WAIT_NS: u64 = 32_000;

/// Picoseconds one spin-loop hint takes on this machine: the fastest of a
/// few short timed runs (a run the scheduler interrupts only reads slower,
/// which shortens the waits).
fn hint_ps() -> u64 {
    static HINT_PS: OnceLock<u64> = OnceLock::new();
    *HINT_PS.get_or_init(|| {
        const HINTS: u32 = 64;
        (0..4)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..HINTS {
                    std::hint::spin_loop();
                }
                start.elapsed().as_nanos() * 1000 / u128::from(HINTS)
            })
            .min()
            .map_or(1, |ps| u64::try_from(ps).unwrap_or(u64::MAX))
    })
}

/// Spin-loop hints that take about `wait_ns` when one takes `hint_ps`
/// picoseconds: at least one, at most 2^16.
fn hints_for(wait_ns: u64, hint_ps: u64) -> u64 {
    (wait_ns.saturating_mul(1000) / hint_ps.max(1)).clamp(1, 1 << 16)
}

/// Waits about `wait_ns`; the wait after the next lost race. Takes and
/// returns it by value so that the uncontended path keeps no back-off
/// state in memory.
#[cold]
fn back_off(wait_ns: u64) -> u64 {
    for _ in 0..hints_for(wait_ns, hint_ps()) {
        std::hint::spin_loop();
    }
    (wait_ns * 2).min(MAX_WAIT_NS)
}

/// GCRA CAS attempts that lost a race on the calling thread since it
/// started (stress tests assert contention with it).
#[doc(hidden)]
pub fn cas_retries_on_this_thread() -> u64 {
    CAS_RETRIES.with(Cell::get)
}

impl GcraCell {
    /// `(TAT, seen)`.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (
            self.tat.load(Ordering::Relaxed),
            self.seen.load(Ordering::Relaxed),
        )
    }
}

impl Gcra {
    /// Units available at `x` for the TAT `tat`: `k(x)` of [`GcraCell`].
    #[cfg(any(test, fuzzing))]
    pub(crate) fn units_at(&self, tat: u64, x: u64) -> u64 {
        (x.saturating_add(self.tau + self.t.get())
            .saturating_sub(tat)
            / self.t)
            .min(u64::from(self.quota.burst()))
    }
}

impl Gcra {
    /// Decides `cost` at effective time `t_eff` from the TAT `tat` just
    /// read and, when `consume` and it fits, charges it with one CAS; a
    /// lost race goes to [`charge_contended`](Self::charge_contended), out
    /// of line, so that the uncontended path keeps no retry state in
    /// registers (inlined into a caller's loop, that state made the
    /// compiler spill the limiter's address and reload it on every check).
    /// `(allowed, TAT in force)`.
    #[inline(always)]
    fn charge(
        &self,
        cell: &GcraCell,
        tat: u64,
        t_eff: u64,
        cost: u32,
        consume: bool,
    ) -> (bool, u64) {
        if !consume {
            return (self.fits_tat(tat, t_eff, cost), tat);
        }
        match self.attempt(cell, tat, t_eff, cost) {
            Attempt::Denied => (false, tat),
            Attempt::Charged(next) => (true, next),
            Attempt::Lost => self.charge_contended(cell, t_eff, cost),
        }
    }

    /// One attempt to charge `cost` at `t_eff` from the TAT `tat`.
    #[inline(always)]
    fn attempt(&self, cell: &GcraCell, tat: u64, t_eff: u64, cost: u32) -> Attempt {
        if !self.fits_tat(tat, t_eff, cost) {
            return Attempt::Denied;
        }
        let next = self.charged(tat, t_eff, cost);
        count_write();
        // Strong CAS: a failure is a lost race, never spurious, so the
        // back-off runs only under contention.
        match cell
            .tat
            .compare_exchange(tat, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Attempt::Charged(next),
            Err(_) => Attempt::Lost,
        }
    }

    /// The CAS loop after a lost race: backs off, re-reads the TAT and
    /// attempts again until a CAS succeeds or the cost no longer fits.
    #[cold]
    #[inline(never)]
    fn charge_contended(&self, cell: &GcraCell, t_eff: u64, cost: u32) -> (bool, u64) {
        let mut wait = FIRST_WAIT_NS;
        loop {
            CAS_RETRIES.with(|c| c.set(c.get() + 1));
            wait = back_off(wait);
            let tat = cell.tat.load(Ordering::Acquire);
            match self.attempt(cell, tat, t_eff, cost) {
                Attempt::Denied => return (false, tat),
                Attempt::Charged(next) => return (true, next),
                Attempt::Lost => {}
            }
        }
    }

    /// Records `now` as the newest time seen when that is needed, and
    /// builds the decision (`seen` as read before the check, `tat` the TAT
    /// in force after it).
    #[expect(
        clippy::too_many_arguments,
        reason = "the check's inputs and its outcome, all needed for the decision"
    )]
    #[inline(always)]
    fn finish(
        &self,
        cell: &GcraCell,
        seen: u64,
        tat: u64,
        now: u64,
        at: Instant,
        cost: u32,
        allowed: bool,
        consume: bool,
    ) -> Decision {
        // `now` is newer than `seen` and leaves a unit available at the TAT
        // now in force (`k(now) ≥ 1 ⇔ TAT ≤ now + τ`): record it. Otherwise
        // `k(now) = 0` and `seen` already stands for it (see `GcraCell`).
        // A denied single unit means `TAT > t_eff + τ ≥ now + τ`, so the
        // last test cannot pass: denials of one unit (the common hot-loop
        // case, `cost` a constant 1 once inlined) skip the tests.
        // No overflow: `now ≤ 2^63 − 1` (`MAX_ELAPSED`) and `τ < 2^62`
        // (`MAX_SPAN`).
        if consume && (allowed || cost > 1) && now > seen && tat <= now + self.tau {
            count_write();
            cell.seen.store(now, Ordering::Relaxed);
        }
        Decision {
            allowed,
            source: crate::decision::Source::State,
            limit: self.quota.burst(),
            cost,
            now,
            at,
            t_eff: now.max(seen),
            detail: self.detail_tat(tat),
        }
    }
}

/// The outcome of one CAS attempt on the TAT.
enum Attempt {
    /// The cost does not fit the TAT read.
    Denied,
    /// Charged: the new TAT.
    Charged(u64),
    /// Another thread changed the TAT first.
    Lost,
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
        // the newest time seen (through `seen`, exact where it matters).
        let seen = cell.seen.load(Ordering::Relaxed);
        let tat = cell.tat.load(Ordering::Acquire);
        let (allowed, tat) = self.charge(cell, tat, now.max(seen), cost, consume);
        self.finish(cell, seen, tat, now, at, cost, allowed, consume)
    }

    fn idle_cell(&self, cell: &mut GcraCell) -> (u64, u64) {
        (*cell.seen.get_mut(), *cell.tat.get_mut())
    }

    #[cfg(any(test, fuzzing))]
    fn validate_cell(&self, cell: &GcraCell) {
        let (tat, seen) = cell.snapshot();
        // Charged at least once: every time seen is before the TAT.
        assert!(
            tat == 0 || seen < tat,
            "GCRA mark {seen} not before TAT {tat}"
        );
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
        *tat = self.charged(*tat, t, cost);
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
            *tat <= seen + self.tau + self.t.get(),
            "GCRA TAT {tat} beyond seen {seen} + τ {} + T {}",
            self.tau,
            self.t
        );
    }
}

#[cfg(test)]
mod back_off_tests {
    use super::{FIRST_WAIT_NS, MAX_WAIT_NS, hints_for};

    #[test]
    fn the_wait_is_a_time_whatever_a_hint_costs() {
        // A cheap hint (4 ns) and a dear one (36 ns, this project's Zen 2):
        // the same wait, in different counts.
        assert_eq!(hints_for(FIRST_WAIT_NS, 4_000), 500);
        assert_eq!(hints_for(FIRST_WAIT_NS, 36_000), 55);
        // Bounds: never zero hints, never an unbounded count.
        assert_eq!(hints_for(FIRST_WAIT_NS, u64::MAX), 1);
        assert_eq!(hints_for(MAX_WAIT_NS, 0), 1 << 16);
        assert_eq!(hints_for(u64::MAX, 1), 1 << 16);
    }
}
