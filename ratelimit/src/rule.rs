//! One compiled rule of a policy: an algorithm with its state, evaluated
//! under the key's lock so that several rules commit atomically.

use crate::algorithm::{Algorithm, Plain};
use crate::decision::Detail;
use crate::fixed_window::{FixedState, FixedWindow};
use crate::gcra::Gcra;
use crate::quota::Quota;
use crate::rules::{AlgorithmKind, Limit};
use crate::sliding_counter::{CounterState, SlidingCounter};
use crate::sliding_log::{LogState, SlidingLog};
use crate::{RateLimitError, quota::MAX_SPAN};

/// A rule's algorithm together with one key's state for it.
#[derive(Debug, Clone)]
pub(crate) enum Ruled {
    Gcra(Gcra, u64),
    Fixed(FixedWindow, FixedState),
    Log(SlidingLog, LogState),
    Counter(SlidingCounter, CounterState),
}

macro_rules! each {
    ($self:expr, $a:ident, $s:ident => $body:expr) => {
        match $self {
            Ruled::Gcra($a, $s) => $body,
            Ruled::Fixed($a, $s) => $body,
            Ruled::Log($a, $s) => $body,
            Ruled::Counter($a, $s) => $body,
        }
    };
}

impl Ruled {
    /// A fresh (full) state for `limit`.
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
            AlgorithmKind::TokenBucket => Ruled::Gcra(Gcra::new(q), 0),
            AlgorithmKind::FixedWindow => Ruled::Fixed(FixedWindow::new(q), FixedState::default()),
            AlgorithmKind::SlidingLog => Ruled::Log(SlidingLog::new(q), LogState::default()),
            AlgorithmKind::SlidingCounter => {
                Ruled::Counter(SlidingCounter::new(q), CounterState::default())
            }
        };
        Ok((r, q))
    }

    pub(crate) fn capacity(&self) -> u32 {
        each!(self, a, _s => a.capacity())
    }

    pub(crate) fn advance(&mut self, t: u64) {
        each!(self, a, s => a.advance(s, t))
    }

    pub(crate) fn fits(&self, t: u64, cost: u32) -> bool {
        each!(self, a, s => a.fits(s, t, cost))
    }

    pub(crate) fn commit(&mut self, t: u64, cost: u32) {
        each!(self, a, s => a.commit(s, t, cost))
    }

    pub(crate) fn detail(&self, t: u64, cost: u32, allowed: bool) -> Detail {
        each!(self, a, s => a.detail(s, t, cost, allowed))
    }

    pub(crate) fn full_at(&self) -> u64 {
        each!(self, a, s => a.full_at(s))
    }

    #[cfg(any(test, fuzzing))]
    pub(crate) fn validate(&self, seen: u64) {
        each!(self, a, s => a.validate_state(s, seen))
    }
}
