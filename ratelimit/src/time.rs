//! Time base: every limiter measures time in nanoseconds since its origin
//! `Instant`, so state fits in `u64` and needs no clock of its own.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds from a process-wide base instant to `now`, memoised per
/// thread. The base is 2^32 s (136 years) before the first conversion, so
/// every `Instant` a program meets is after it and within `u64`
/// nanoseconds of it.
///
/// Hot loops pass the same `now` to many checks (the clock is read once
/// per batch), and std's `Instant` subtraction is an out-of-line call
/// costing several ns, so the memo turns the conversion into two
/// comparisons; measuring from one base (not from each limiter's origin)
/// lets one memo serve every limiter.
#[inline]
fn base_nanos(now: Instant) -> u64 {
    LAST.with(|last| match last.get() {
        Some((n, ns)) if n == now => ns,
        _ => convert(last, now),
    })
}

/// The conversion the memo did not hold, recorded in it: out of line, so
/// that a check whose `now` the memo holds does not first write `now` to
/// the stack for a call it does not make (inlined, the miss path's call
/// took `now` by reference, and the compiler stored it on every check).
#[cold]
#[inline(never)]
fn convert(last: &Cell<Option<(Instant, u64)>>, now: Instant) -> u64 {
    let ns = duration_nanos(now.saturating_duration_since(base())).min(MAX_ELAPSED);
    last.set(Some((now, ns)));
    ns
}

thread_local! {
    /// The last conversion made on this thread.
    static LAST: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = Instant::now();
        // Platforms whose `Instant` cannot go that far back use the
        // earliest instant they can (conversions before it saturate at 0).
        (0..=32)
            .rev()
            .find_map(|shift| now.checked_sub(Duration::from_secs(1 << shift)))
            .unwrap_or(now)
    })
}

/// The latest time the base tells apart, 2^63 − 1 ns after it: later
/// instants read as this one (saturated once per conversion, in the memo,
/// not on every check).
pub(crate) const MAX_ELAPSED: u64 = (1 << 63) - 1;

/// A limiter's time origin: the `Instant` and its offset from the base.
#[derive(Clone, Copy)]
pub(crate) struct Origin {
    at: Instant,
    ns: u64,
}

impl Origin {
    pub(crate) fn new(at: Instant) -> Self {
        Origin {
            at,
            ns: base_nanos(at),
        }
    }

    /// Nanoseconds from the origin to `now`; an earlier `now` gives 0. Times
    /// from the base saturate at [`MAX_ELAPSED`] (2^63 − 1 ns, 292 years;
    /// the base is 136 years before first use, so an instant about 156
    /// years after that reads as that), which keeps a time plus two spans
    /// of at most 2^62 ns ([`MAX_SPAN`](crate::MAX_SPAN)) within `u64`. A
    /// pure function of the origin and `now` (memoised per thread).
    #[inline]
    pub(crate) fn nanos_to(&self, now: Instant) -> u64 {
        base_nanos(now).saturating_sub(self.ns)
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.at.fmt(f)
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}
