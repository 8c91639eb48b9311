//! Time as milliseconds since the index's epoch (40 bits ≈ 34.8 years).

use std::time::{Duration, Instant};

use crate::GeoError;
use crate::shard::TIME_MASK;

/// Converts `Instant`s to the index's millisecond timeline and back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is `epoch`, or one day before now when `None`
    /// (so instants a caller took shortly before building the index are
    /// still ordered correctly).
    pub(crate) fn new(epoch: Option<Instant>) -> Self {
        let epoch = epoch.unwrap_or_else(|| {
            let now = Instant::now();
            now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now)
        });
        Clock { epoch }
    }

    /// Milliseconds since the epoch for a processing time (reads, liveness):
    /// 0 before the epoch, saturating at `u64::MAX` (584 million years), so
    /// a far-future `now` sees every stored driver expired instead of
    /// wrapping onto the 40-bit timeline.
    #[inline]
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// An update time as the index stores it: on the 40-bit timeline and
    /// at most `max_skew_ms` after the processing time `now_ms`.
    ///
    /// # Errors
    /// [`GeoError::TimeOutOfRange`] before the epoch or 2^40 ms after it;
    /// [`GeoError::FutureUpdate`] beyond the skew.
    #[inline]
    pub(crate) fn update_ms(
        &self,
        at: Instant,
        now_ms: u64,
        max_skew_ms: u64,
    ) -> Result<u64, GeoError> {
        let Some(d) = at.checked_duration_since(self.epoch) else {
            let before = (self.epoch - at).as_millis();
            return Err(GeoError::TimeOutOfRange {
                offset_ms: -i128::try_from(before).unwrap_or(i128::MAX),
                reason: "the update time is before the index's epoch (IndexConfig::epoch)",
            });
        };
        let ms = d.as_millis();
        if ms > u128::from(TIME_MASK) {
            return Err(GeoError::TimeOutOfRange {
                offset_ms: i128::try_from(ms).unwrap_or(i128::MAX),
                reason: "the update time is more than 2^40 ms (34.8 years) after the index's epoch",
            });
        }
        let ms = ms as u64;
        if ms > now_ms.saturating_add(max_skew_ms) {
            return Err(GeoError::FutureUpdate {
                ahead_ms: ms - now_ms,
                max_skew_ms,
            });
        }
        Ok(ms)
    }

    /// The instant `ms` milliseconds after the epoch.
    #[inline]
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}
