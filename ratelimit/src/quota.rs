//! Quotas: `limit` units per `period`, with a burst for the token bucket.

use std::time::Duration;

use crate::RateLimitError;
use crate::time::duration_nanos;

/// The largest period, burst span or window a quota may describe:
/// 2^62 ns (about 146 years), so that every time sum in the algorithms
/// stays far from `u64` overflow.
pub const MAX_SPAN: Duration = Duration::from_nanos(1 << 62);

/// A rate: `limit` units per `period`, and for the token bucket (GCRA) a
/// `burst` (how many units a full bucket holds; defaults to `limit`).
///
/// Invalid quotas cannot be built: the constructors check every value.
///
/// ```
/// use dispatchkit_ratelimit::Quota;
/// use std::time::Duration;
///
/// let q = Quota::per_second(10)?.with_burst(20)?; // "10/s burst 20"
/// assert_eq!((q.limit(), q.burst(), q.period()), (10, 20, Duration::from_secs(1)));
/// assert!(Quota::per_hour(0).is_err());
/// # Ok::<(), dispatchkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    period_ns: u64,
    burst: u32,
}

impl Quota {
    /// `limit` units per `period`, burst = `limit`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] when `limit` is 0, `period` is zero,
    /// or `period` is longer than [`MAX_SPAN`].
    pub fn new(limit: u32, period: Duration) -> Result<Self, RateLimitError> {
        if limit == 0 {
            return Err(RateLimitError::InvalidQuota {
                name: "limit",
                value: 0,
                reason: "a quota must allow at least one unit per period",
            });
        }
        if period.is_zero() {
            return Err(RateLimitError::InvalidQuota {
                name: "period",
                value: 0,
                reason: "the period must be longer than zero",
            });
        }
        if period > MAX_SPAN {
            return Err(RateLimitError::InvalidQuota {
                name: "period",
                value: period.as_nanos(),
                reason: "the period must not exceed 2^62 ns (about 146 years)",
            });
        }
        let q = Self {
            limit,
            period_ns: duration_nanos(period),
            burst: limit,
        };
        q.check_span()?;
        Ok(q)
    }

    /// One unit per `period`, burst 1 (governor's `Quota::with_period`);
    /// raise the burst with [`Quota::with_burst`].
    ///
    /// # Errors
    /// As [`Quota::new`] with a limit of 1.
    pub fn with_period(period: Duration) -> Result<Self, RateLimitError> {
        Self::new(1, period)
    }

    /// `limit` units per second.
    ///
    /// The token bucket spaces units by `period / limit` **rounded up** to
    /// the nanosecond (`per_second(3)`: 333,333,334 ns, where governor
    /// rounds down to 333,333,333): rounding may only make the rate a hair
    /// slower, never grant a unit more than `limit` per `period`.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_second(limit: u32) -> Result<Self, RateLimitError> {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` units per minute.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_minute(limit: u32) -> Result<Self, RateLimitError> {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` units per hour.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_hour(limit: u32) -> Result<Self, RateLimitError> {
        Self::new(limit, Duration::from_secs(3_600))
    }

    /// `limit` units per day.
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_day(limit: u32) -> Result<Self, RateLimitError> {
        Self::new(limit, Duration::from_secs(86_400))
    }

    /// The same rate with a different burst (token bucket capacity).
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] when `burst` is 0, or when the time a
    /// full bucket takes to refill (`burst` emission intervals) exceeds
    /// [`MAX_SPAN`].
    pub fn with_burst(self, burst: u32) -> Result<Self, RateLimitError> {
        if burst == 0 {
            return Err(RateLimitError::InvalidQuota {
                name: "burst",
                value: 0,
                reason: "a burst of zero would never grant anything",
            });
        }
        let q = Self { burst, ..self };
        q.check_span()?;
        Ok(q)
    }

    fn check_span(&self) -> Result<(), RateLimitError> {
        let span = u128::from(self.emission_interval_ns()) * u128::from(self.burst);
        if span > 1u128 << 62 {
            return Err(RateLimitError::InvalidQuota {
                name: "burst",
                value: u128::from(self.burst),
                reason: "burst × (period / limit) must not exceed 2^62 ns",
            });
        }
        Ok(())
    }

    /// Units allowed per period.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period (window length).
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// Token bucket capacity (defaults to `limit`).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub(crate) fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// GCRA's emission interval T = period / limit, rounded **up** to the
    /// nanosecond so that rounding can only make the rate slower, never
    /// grant more than `limit` per `period`.
    pub(crate) fn emission_interval_ns(&self) -> u64 {
        self.period_ns.div_ceil(u64::from(self.limit)).max(1)
    }
}
