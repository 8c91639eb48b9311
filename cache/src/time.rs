//! Time as signed nanosecond ticks from a per-cache epoch.
//!
//! Entries store deadlines as `i64` nanoseconds relative to the `Instant`
//! the cache was built at (8 bytes instead of a 16-byte `Instant`); ticks
//! before the epoch are negative, so a test may pass an `Instant` taken
//! before the cache existed.

use std::time::{Duration, Instant};

use crate::CacheError;

/// "No deadline".
pub(crate) const NEVER: i64 = i64::MAX;

/// The longest accepted time-to-live / time-to-idle (100 years): any tick a
/// process can observe plus this stays far below `i64::MAX` nanoseconds
/// (292 years), so deadline arithmetic never overflows.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How far from the cache's creation an instant that sets a deadline may
/// be (150 years either way): a deadline is that tick plus at most
/// [`MAX_TTL`], which then stays below the ±292 years of `i64` nanoseconds
/// instead of saturating (an entry that expired the moment it was stored).
pub(crate) const MAX_OFFSET: Duration = Duration::from_secs(150 * 365 * 86_400);

/// The epoch of one cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(Instant);

impl Epoch {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    /// `now` as nanoseconds since the epoch (negative before it),
    /// saturating at ±292 years.
    pub(crate) fn tick(&self, now: Instant) -> i64 {
        match now.checked_duration_since(self.0) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(NEVER - 1),
            None => -i64::try_from((self.0 - now).as_nanos()).unwrap_or(NEVER - 1),
        }
    }
}

/// A tick read at most once, on first use: the plain (non-`_at`) forms of
/// the API only read the clock when an entry actually has a deadline.
/// `Copy` and two words, so the rare out-of-line paths of a read take it
/// by value in registers and the hit path never stores it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LazyTick<'a> {
    /// The clock's epoch for a tick read from the clock; `None` for a tick
    /// the caller gave (it is never read again).
    clock: Option<&'a Epoch>,
    /// The tick, or [`UNREAD`] before a clock tick's first use.
    at: i64,
}

/// A clock tick not read yet ([`Epoch::tick`] never returns it: it
/// saturates at `-(NEVER - 1)`).
const UNREAD: i64 = i64::MIN;

impl<'a> LazyTick<'a> {
    /// A tick fixed to `now`.
    pub(crate) fn at(epoch: &'a Epoch, now: Instant) -> Self {
        Self {
            clock: None,
            at: epoch.tick(now),
        }
    }

    /// A tick that reads `Instant::now()` the first time it is needed.
    pub(crate) fn lazy(epoch: &'a Epoch) -> Self {
        Self {
            clock: Some(epoch),
            at: UNREAD,
        }
    }

    /// After a wait or a load: a clock-read tick is read again when next
    /// needed (a caller's `now` stays).
    pub(crate) fn refresh(&mut self) {
        if self.clock.is_some() {
            self.at = UNREAD;
        }
    }

    /// The tick, refused when it is too far from the epoch to set a
    /// deadline at ([`MAX_OFFSET`]).
    ///
    /// # Errors
    /// [`CacheError::InstantOutOfRange`].
    pub(crate) fn checked(&mut self) -> Result<i64, CacheError> {
        let t = self.get();
        // MAX_OFFSET is 4.7e18 ns < i64::MAX.
        let max = MAX_OFFSET.as_nanos() as i64;
        if t.unsigned_abs() > max.unsigned_abs() {
            return Err(CacheError::InstantOutOfRange {
                offset_secs: t / 1_000_000_000,
                reason: "an instant that sets a deadline (TTL, time-to-idle) must be within 150 years of the cache's creation",
            });
        }
        Ok(t)
    }

    #[inline]
    pub(crate) fn get(&mut self) -> i64 {
        match self.clock {
            Some(epoch) if self.at == UNREAD => {
                self.at = read_clock(epoch);
                self.at
            }
            _ => self.at,
        }
    }
}

/// The clock read of a lazy tick, out of line and taking no reference to
/// the tick, so a tick that is never read stays in registers.
#[cold]
#[inline(never)]
fn read_clock(epoch: &Epoch) -> i64 {
    epoch.tick(Instant::now())
}

/// Checks a time-to-live / time-to-idle / negative TTL and converts it to
/// nanoseconds.
pub(crate) fn checked_ttl(name: &'static str, d: Duration) -> Result<i64, CacheError> {
    if d.is_zero() {
        return Err(CacheError::InvalidDuration {
            name,
            value: d,
            reason: "must be greater than zero (a zero TTL would make every entry expire on insert)",
        });
    }
    if d > MAX_TTL {
        return Err(CacheError::InvalidDuration {
            name,
            value: d,
            reason: "exceeds MAX_TTL (100 years); use no TTL for entries that never expire",
        });
    }
    // MAX_TTL is 3.15e18 ns < i64::MAX, so this cannot fail.
    Ok(i64::try_from(d.as_nanos()).unwrap_or(NEVER - 1))
}

/// `tick + ttl`, never reaching `NEVER` (ticks are bounded by the process
/// lifetime, TTLs by `MAX_TTL`, so saturation is unreachable in practice).
pub(crate) fn deadline(tick: i64, ttl: i64) -> i64 {
    tick.saturating_add(ttl).min(NEVER - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_tick_reads_the_clock_once_until_refreshed() {
        let epoch = Epoch::new();
        let mut t = LazyTick::lazy(&epoch);
        let first = t.get();
        assert!(first >= 0);
        std::thread::yield_now();
        assert_eq!(t.get(), first, "a read tick is kept");
        t.refresh();
        assert!(t.get() >= first, "a refreshed tick reads the clock again");
    }

    #[test]
    fn a_given_tick_survives_refresh_and_is_never_the_unread_mark() {
        let epoch = Epoch::new();
        let at = epoch.0 + Duration::from_secs(5);
        let mut t = LazyTick::at(&epoch, at);
        assert_eq!(t.get(), 5_000_000_000);
        t.refresh();
        assert_eq!(t.get(), 5_000_000_000, "a caller's tick stays");
        // The earliest instant the platform can represent saturates well
        // above the mark a lazy tick uses for "not read yet".
        let far = (1..=63)
            .rev()
            .find_map(|s| epoch.0.checked_sub(Duration::from_secs(1u64 << s)))
            .expect("some instant before the epoch");
        let mut t = LazyTick::at(&epoch, far);
        assert!(t.get() > UNREAD);
        assert!(t.get() < 0);
    }
}
