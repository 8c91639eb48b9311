//! Time as milliseconds since the index's epoch (40 bits ≈ 34.8 years).

use std::time::{Duration, Instant};

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

    /// Milliseconds since the epoch, saturating at 0 and at 2^40 − 1.
    #[inline]
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.epoch).as_millis() as u64).min(TIME_MASK)
    }

    /// The instant `ms` milliseconds after the epoch.
    #[inline]
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}
