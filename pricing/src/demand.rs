//! Ride requests per cell over a sliding time window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use h3o::CellIndex;

use crate::hash::FastMap;

/// Exact sliding window: every request is kept until it leaves the window,
/// and per-cell counts are maintained incrementally. A request recorded at
/// `t` counts at `now` while `now − t < window`.
#[derive(Debug, Clone)]
pub(crate) struct DemandWindow {
    window: Duration,
    events: VecDeque<(Instant, CellIndex)>,
    counts: FastMap<CellIndex, u32>,
}

impl DemandWindow {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            events: VecDeque::new(),
            counts: FastMap::default(),
        }
    }

    /// Records a request in `cell` at `at`. Time is treated as monotone: a
    /// request older than the newest recorded one is filed at the newest
    /// time (so the window stays ordered). O(1) amortised.
    pub(crate) fn record(&mut self, cell: CellIndex, at: Instant) {
        let at = match self.events.back() {
            Some(&(newest, _)) if newest > at => newest,
            _ => at,
        };
        self.events.push_back((at, cell));
        *self.counts.entry(cell).or_insert(0) += 1;
    }

    /// Drops requests that left the window at `now`. O(expired).
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, cell)) = self.events.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.events.pop_front();
            if let Some(n) = self.counts.get_mut(&cell) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&cell);
                }
            }
        }
    }

    pub(crate) fn counts(&self) -> &FastMap<CellIndex, u32> {
        &self.counts
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Checks that the counts are the tally of the events, and the events
    /// are in time order.
    pub(crate) fn check_invariants(&self) {
        let mut tally: FastMap<CellIndex, u32> = FastMap::default();
        for (i, &(at, c)) in self.events.iter().enumerate() {
            *tally.entry(c).or_insert(0) += 1;
            if i > 0 {
                assert!(self.events[i - 1].0 <= at);
            }
        }
        assert_eq!(tally, self.counts);
    }
}
