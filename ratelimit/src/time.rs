//! Time base: every limiter measures time in nanoseconds since its origin
//! `Instant`, so state fits in `u64` and needs no clock of its own.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// The last conversion made on this thread. Hot loops pass the same
    /// `now` to many checks (the clock is read once per batch), and std's
    /// `Instant` subtraction is an out-of-line call costing several ns, so
    /// one cached pair turns the conversion into two comparisons.
    static LAST: Cell<Option<(Instant, Instant, u64)>> = const { Cell::new(None) };
}

/// Nanoseconds from `origin` to `now`; an earlier `now` gives 0 and a
/// later one saturates at `u64::MAX` (584 years). A pure function of its
/// arguments (memoised per thread).
#[inline]
pub(crate) fn nanos_since(origin: Instant, now: Instant) -> u64 {
    LAST.with(|last| {
        if let Some((o, n, ns)) = last.get()
            && o == origin
            && n == now
        {
            return ns;
        }
        let ns = duration_nanos(now.saturating_duration_since(origin));
        last.set(Some((origin, now, ns)));
        ns
    })
}

/// A duration in whole nanoseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}
