//! The W-TinyLFU window's size, by hill climbing on the hit ratio
//! (Caffeine's `SimpleClimber`, Einziger et al., "Adaptive Software Cache
//! Management", Middleware 2018).
//!
//! Every sample of `10 × capacity` lookups (the same period as the
//! sketch's halving, so each sample sees one "generation" of frequencies)
//! the cache-wide hit ratio of the sample is compared with the previous
//! one: if it did not fall, the window moves again the same way by the
//! current step, otherwise it turns back. Steps start at 3.125 % of the
//! capacity and shrink by 2 % per sample, so the split settles; a change
//! of the hit ratio by 5 points or more (a new phase) restarts them.
//! Caffeine starts at 6.25 %; half of it measured better on both traces
//! (mean of 4 runs, 32 shards: OLTP at 2,000 entries +0.5 points, P3 at
//! 32,768 +0.4): P3's hit ratio rises through the trace, so every move
//! looks like a gain and big steps carry the window far from its best.
//! A decay of 0.98 halves the step in about 35 samples, long enough for a
//! trace's phase.
//! The window ranges over 0–80 % of the capacity (main keeps its
//! frequency-filtered fifth at least). Samples start once the cache has
//! evicted: before that every policy has the same hits.

/// The window's share of the capacity before any sample.
pub(crate) const INITIAL_WINDOW: f64 = 0.01;
/// The step a climb starts (and restarts) with, as a share of capacity.
const STEP: f64 = 0.031_25;
/// The step's decay per sample.
const DECAY: f64 = 0.98;
/// A change of the sampled hit ratio that restarts the step.
const RESTART: f64 = 0.05;
/// The largest window share.
const MAX_WINDOW: f64 = 0.8;
/// A sampled hit ratio below this is a scan: W-TinyLFU's sketch then keeps
/// its counts longer (see `SCAN_MIN_SAMPLE` in the policy).
pub(crate) const SCAN_RATE: f64 = 0.03;

/// The climber's state (one per cache).
#[derive(Debug, Clone)]
pub(crate) struct Climber {
    window: f64,
    step: f64,
    previous: f64,
    /// Lookups per sample.
    sample: u64,
    /// Cumulative hits and misses at the start of the sample.
    hits: u64,
    misses: u64,
    /// Whether the last sample was a scan, and whether that changed since
    /// [`Self::take_scan_change`] last looked.
    scan: bool,
    scan_changed: bool,
}

impl Climber {
    /// A climber sampling every `sample` lookups.
    pub(crate) fn new(sample: u64) -> Self {
        Self {
            window: INITIAL_WINDOW,
            // Caffeine starts by shrinking the window.
            step: -STEP,
            previous: 0.0,
            sample: sample.max(1),
            hits: 0,
            misses: 0,
            scan: false,
            scan_changed: false,
        }
    }

    /// Whether the cache went into a scan or out of one since the last
    /// call (`Some(in_scan)`).
    pub(crate) fn take_scan_change(&mut self) -> Option<bool> {
        std::mem::take(&mut self.scan_changed).then_some(self.scan)
    }

    /// Takes the cache's cumulative `hits` and `misses` and whether it has
    /// evicted for capacity yet; returns the new window share when a
    /// sample completed and the window moved.
    pub(crate) fn observe(&mut self, hits: u64, misses: u64, evicting: bool) -> Option<f64> {
        if !evicting {
            (self.hits, self.misses) = (hits, misses);
            return None;
        }
        let (h, m) = (
            hits.saturating_sub(self.hits),
            misses.saturating_sub(self.misses),
        );
        let n = h + m;
        if n < self.sample {
            return None;
        }
        (self.hits, self.misses) = (hits, misses);
        let rate = h as f64 / n as f64;
        if (rate < SCAN_RATE) != self.scan {
            self.scan = !self.scan;
            self.scan_changed = true;
        }
        let change = rate - self.previous;
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART {
            STEP.copysign(amount)
        } else {
            DECAY * amount
        };
        self.previous = rate;
        let next = (self.window + amount).clamp(0.0, MAX_WINDOW);
        if next == self.window {
            return None;
        }
        self.window = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds samples whose hit ratio is `f(window)`; returns the windows.
    fn climb(f: impl Fn(f64) -> f64, samples: usize) -> Vec<f64> {
        let mut c = Climber::new(1_000);
        let (mut hits, mut misses) = (0, 0);
        c.observe(0, 0, true);
        let mut out = Vec::new();
        for _ in 0..samples {
            let h = (f(c.window) * 1_000.0) as u64;
            hits += h;
            misses += 1_000 - h;
            c.observe(hits, misses, true);
            out.push(c.window);
        }
        out
    }

    #[test]
    fn climbs_towards_the_best_window_and_settles() {
        // Hit ratio peaks with a 30 % window.
        let w = climb(|w| 0.6 - (w - 0.3).abs() * 0.5, 300);
        let last = w[w.len() - 50..].iter().sum::<f64>() / 50.0;
        assert!((last - 0.3).abs() < 0.08, "settled at {last}");
    }

    #[test]
    fn a_frequency_workload_keeps_the_window_small() {
        let w = climb(|w| 0.6 - w * 0.5, 300);
        let last = w[w.len() - 50..].iter().sum::<f64>() / 50.0;
        assert!(last < 0.08, "settled at {last}");
    }

    #[test]
    fn a_scan_is_reported_once_on_entry_and_once_on_exit() {
        let mut c = Climber::new(1_000);
        c.observe(0, 0, true);
        assert_eq!(c.take_scan_change(), None);
        // 1 % hits: a scan.
        c.observe(10, 990, true);
        assert_eq!(c.take_scan_change(), Some(true));
        c.observe(20, 1_980, true);
        assert_eq!(c.take_scan_change(), None, "still in it: no change");
        // 50 % hits: out of it.
        c.observe(520, 2_480, true);
        assert_eq!(c.take_scan_change(), Some(false));
        assert_eq!(c.take_scan_change(), None);
    }

    #[test]
    fn no_sample_before_evictions_and_partial_samples_wait() {
        let mut c = Climber::new(1_000);
        assert_eq!(c.observe(5_000, 5_000, false), None);
        assert_eq!(c.observe(5_500, 5_400, true), None);
        assert_eq!(c.window, INITIAL_WINDOW);
    }
}
