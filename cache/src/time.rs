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
/// `Copy`, so the rare out-of-line paths of a read take it by value and
/// the hit path's tick never needs an address (it stays in registers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LazyTick<'a> {
    epoch: &'a Epoch,
    at: Option<i64>,
    /// Read from the clock (not given by the caller): `refresh` forgets it.
    lazy: bool,
}

impl<'a> LazyTick<'a> {
    /// A tick fixed to `now`.
    pub(crate) fn at(epoch: &'a Epoch, now: Instant) -> Self {
        Self {
            epoch,
            at: Some(epoch.tick(now)),
            lazy: false,
        }
    }

    /// A tick that reads `Instant::now()` the first time it is needed.
    pub(crate) fn lazy(epoch: &'a Epoch) -> Self {
        Self {
            epoch,
            at: None,
            lazy: true,
        }
    }

    /// After a wait or a load: a clock-read tick is read again when next
    /// needed (a caller's `now` stays).
    pub(crate) fn refresh(&mut self) {
        if self.lazy {
            self.at = None;
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
        match self.at {
            Some(t) => t,
            None => {
                let t = read_clock(self.epoch);
                self.at = Some(t);
                t
            }
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
