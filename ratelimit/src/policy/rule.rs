//! One compiled rule of a policy: its algorithm (configuration only), and
//! where one key's state for it sits in the key's entry. Keeping the
//! configuration out of the per-key state lets a key's state for the usual
//! rule sets (up to three token buckets, or one window and one bucket) live
//! inline in the key table, with no allocation and no pointer to chase.

use crate::algorithm::{Algorithm, Plain};
use crate::decision::Detail;
use crate::fixed_window::{FixedState, FixedWindow};
use crate::gcra::Gcra;
use crate::quota::Quota;
use crate::rules::{AlgorithmKind, Limit};
use crate::sliding_counter::{CounterState, SlidingCounter};
use crate::sliding_log::{LogState, SlidingLog};
use crate::{RateLimitError, quota::MAX_SPAN};

/// A rule's algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RuleAlg {
    Gcra(Gcra),
    Fixed(FixedWindow),
    Log(SlidingLog),
    Counter(SlidingCounter),
}

/// Where one rule's state sits in a key's entry: words
/// `word .. word + alg.words()` of the entry's words, or for the sliding
/// log, log number `log`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub(crate) word: u16,
    pub(crate) log: u16,
}

/// A key's state for every rule of its set, read-only.
pub(crate) struct States<'a> {
    pub(crate) words: &'a [u64],
    pub(crate) logs: &'a [LogState],
}

/// A key's state for every rule of its set, writable.
pub(crate) struct StatesMut<'a> {
    pub(crate) words: &'a mut [u64],
    pub(crate) logs: &'a mut [LogState],
}

/// Runs `$body` with `$a` bound to the algorithm and `$s` to a shared
/// reference to the rule's state (decoded from its words when packed).
macro_rules! read {
    ($alg:expr, $slot:expr, $st:expr, |$a:ident, $s:ident| $body:expr) => {{
        let w = usize::from($slot.word);
        match $alg {
            RuleAlg::Gcra($a) => {
                let $s = &$st.words[w];
                $body
            }
            RuleAlg::Fixed($a) => {
                let $s = &FixedState::from_words([$st.words[w], $st.words[w + 1]]);
                $body
            }
            RuleAlg::Counter($a) => {
                let $s = &CounterState::from_words([$st.words[w], $st.words[w + 1]]);
                $body
            }
            RuleAlg::Log($a) => {
                let $s = &$st.logs[usize::from($slot.log)];
                $body
            }
        }
    }};
}

/// As `read!` with a mutable reference; packed states are written back.
macro_rules! update {
    ($alg:expr, $slot:expr, $st:expr, |$a:ident, $s:ident| $body:expr) => {{
        let w = usize::from($slot.word);
        match $alg {
            RuleAlg::Gcra($a) => {
                let $s = &mut $st.words[w];
                $body
            }
            RuleAlg::Fixed($a) => {
                let mut x = FixedState::from_words([$st.words[w], $st.words[w + 1]]);
                let r = {
                    let $s = &mut x;
                    $body
                };
                $st.words[w..w + 2].copy_from_slice(&x.to_words());
                r
            }
            RuleAlg::Counter($a) => {
                let mut x = CounterState::from_words([$st.words[w], $st.words[w + 1]]);
                let r = {
                    let $s = &mut x;
                    $body
                };
                $st.words[w..w + 2].copy_from_slice(&x.to_words());
                r
            }
            RuleAlg::Log($a) => {
                let $s = &mut $st.logs[usize::from($slot.log)];
                $body
            }
        }
    }};
}

impl RuleAlg {
    /// The algorithm for `limit`, and its quota.
    pub(crate) fn compile(limit: &Limit) -> Result<(Self, Quota), RateLimitError> {
        let w = limit.window.duration();
        if w > MAX_SPAN {
            return Err(RateLimitError::InvalidQuota {
                name: "period",
                value: w.as_nanos(),
                reason: "the period must not exceed 2^62 ns (about 146 years)",
            });
        }
        let mut q = Quota::new(limit.count, w)?;
        if let Some(b) = limit.burst {
            q = q.with_burst(b)?;
        }
        let r = match limit.algorithm {
            AlgorithmKind::TokenBucket => RuleAlg::Gcra(Gcra::new(q)),
            AlgorithmKind::FixedWindow => RuleAlg::Fixed(FixedWindow::new(q)),
            AlgorithmKind::SlidingLog => RuleAlg::Log(SlidingLog::new(q)),
            AlgorithmKind::SlidingCounter => RuleAlg::Counter(SlidingCounter::new(q)),
        };
        Ok((r, q))
    }

    /// Words of packed state per key (the sliding log keeps a log instead).
    pub(crate) fn words(&self) -> usize {
        match self {
            RuleAlg::Gcra(_) => 1,
            RuleAlg::Fixed(_) | RuleAlg::Counter(_) => 2,
            RuleAlg::Log(_) => 0,
        }
    }

    /// Whether the state is a log.
    pub(crate) fn is_log(&self) -> bool {
        matches!(self, RuleAlg::Log(_))
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u32 {
        match self {
            RuleAlg::Gcra(a) => a.capacity(),
            RuleAlg::Fixed(a) => a.capacity(),
            RuleAlg::Log(a) => a.capacity(),
            RuleAlg::Counter(a) => a.capacity(),
        }
    }

    /// Drops what can never matter again at `t` (non-decreasing per key).
    #[inline]
    pub(crate) fn advance(&self, slot: Slot, st: &mut StatesMut<'_>, t: u64) {
        if let RuleAlg::Log(a) = self {
            a.advance(&mut st.logs[usize::from(slot.log)], t);
        }
    }

    #[inline]
    pub(crate) fn fits(&self, slot: Slot, st: &States<'_>, t: u64, cost: u32) -> bool {
        read!(self, slot, st, |a, s| a.fits(s, t, cost))
    }

    #[inline]
    pub(crate) fn commit(&self, slot: Slot, st: &mut StatesMut<'_>, t: u64, cost: u32) {
        update!(self, slot, st, |a, s| a.commit(s, t, cost))
    }

    #[inline]
    pub(crate) fn detail(
        &self,
        slot: Slot,
        st: &States<'_>,
        t: u64,
        cost: u32,
        allowed: bool,
    ) -> Detail {
        read!(self, slot, st, |a, s| a.detail(s, t, cost, allowed))
    }

    /// `(remaining, reset_at)` of the rule's decision at `t_eff`: the
    /// numbers of [`Decision::remaining`](crate::Decision::remaining) and
    /// [`Decision::reset_after`](crate::Decision::reset_after) (absolute).
    #[inline]
    pub(crate) fn remaining_reset(
        &self,
        slot: Slot,
        st: &States<'_>,
        t_eff: u64,
        cost: u32,
    ) -> (u32, u64) {
        let d = self.detail(slot, st, t_eff, cost, true);
        (d.remaining(self.capacity(), t_eff), d.reset_at(t_eff))
    }

    /// Effective time from which `cost` fits: the instant of
    /// [`Decision::retry_after`](crate::Decision::retry_after).
    #[inline]
    pub(crate) fn fit_at(&self, slot: Slot, st: &States<'_>, t_eff: u64, cost: u32) -> u64 {
        self.detail(slot, st, t_eff, cost, false)
            .retry_at(self.capacity(), t_eff, cost)
    }

    pub(crate) fn full_at(&self, slot: Slot, st: &States<'_>) -> u64 {
        read!(self, slot, st, |a, s| a.full_at(s))
    }

    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self, slot: Slot, st: &States<'_>, seen: u64) {
        read!(self, slot, st, |a, s| a.validate_state(s, seen))
    }
}
