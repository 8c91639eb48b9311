//! The state one (rule set, key) holds in a policy: the newest time seen
//! and every rule's state, inline for the usual sets, and its evaluation.

use std::cmp::Reverse;
use std::time::Instant;

use crate::compiled::{BucketSet, CompiledSet, INLINE_WORDS};
use crate::decision::Decision;
use crate::gcra::Gcra;
use crate::policy::decision::{Buckets, PolicyDecision, Report, bucket_decision, choose};
use crate::rule::{States, StatesMut};
use crate::sliding_log::LogState;

/// One (rule set, key)'s state: 40 bytes held next to its key in the
/// shard's table, with every rule's state inline when the set is inline,
/// else in one heap block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    seen: u64,
    words: [u64; INLINE_WORDS],
    spill: Option<Box<Spill>>,
}

/// The states of a set that does not fit inline (a sliding log, or more
/// than [`INLINE_WORDS`] words).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Spill {
    words: Vec<u64>,
    logs: Vec<LogState>,
}

impl Entry {
    /// Every rule full, newest time `floor`. Allocates only for sets that
    /// are not inline.
    pub(crate) fn fresh(set: &CompiledSet, floor: u64) -> Self {
        Self {
            seen: floor,
            words: [0; INLINE_WORDS],
            spill: (!set.inline).then(|| {
                Box::new(Spill {
                    words: vec![0; set.words],
                    logs: vec![LogState::default(); set.logs],
                })
            }),
        }
    }

    #[inline]
    fn states(&self) -> States<'_> {
        match &self.spill {
            None => States {
                words: &self.words,
                logs: &[],
            },
            Some(s) => States {
                words: &s.words,
                logs: &s.logs,
            },
        }
    }

    #[inline]
    fn states_mut(&mut self) -> StatesMut<'_> {
        match &mut self.spill {
            None => StatesMut {
                words: &mut self.words,
                logs: &mut [],
            },
            Some(s) => StatesMut {
                words: &mut s.words,
                logs: &mut s.logs,
            },
        }
    }

    /// `(seen, full_at)` for sweeps: the newest time and the effective time
    /// from which every rule is full again. O(rules).
    #[inline]
    pub(crate) fn idle(&self, set: &CompiledSet) -> (u64, u64) {
        if let Some(b) = &set.buckets {
            // A bucket is full from its TAT on.
            let tats = &self.words[..b.n];
            return (self.seen, tats.iter().copied().max().unwrap_or(0));
        }
        let st = self.states();
        let full_at = set
            .rules
            .iter()
            .map(|r| r.alg.full_at(r.slot, &st))
            .max()
            .unwrap_or(0);
        (self.seen, full_at)
    }

    /// The state for a new version `new` of its set (`old`): rules with the
    /// same id keep their state, new rules start full.
    pub(crate) fn migrate(&self, old: &CompiledSet, new: &CompiledSet) -> Self {
        let mut e = Self::fresh(new, self.seen);
        let from = self.states();
        let to = e.states_mut();
        for r in &new.rules {
            let Some(o) = old.rules.iter().find(|o| o.id == r.id) else {
                continue;
            };
            // Same id: same limit and algorithm, so the same state type.
            if r.alg.is_log() {
                to.logs[usize::from(r.slot.log)] = from.logs[usize::from(o.slot.log)].clone();
            } else {
                let n = r.alg.words();
                let (a, b) = (usize::from(r.slot.word), usize::from(o.slot.word));
                to.words[a..a + n].copy_from_slice(&from.words[b..b + n]);
            }
        }
        e
    }

    /// A consuming check of `cost` at `t` (`at` the same instant), as a
    /// decision for subject 0 reporting one rule: records the time, drops
    /// expired state and, when every rule fits and `commit`, charges every
    /// rule. O(rules), plus the sliding log's O(expired entries).
    #[inline(always)]
    pub(crate) fn check(
        &mut self,
        set: &CompiledSet,
        t: u64,
        at: Instant,
        cost: u32,
        commit: bool,
    ) -> PolicyDecision {
        match &set.buckets {
            None => self.check_general(set, t, at, cost, commit),
            Some(b) => self.check_buckets(b, t, at, cost, commit),
        }
    }

    /// [`check`](Self::check) for any set. Inlined with the bucket path: as
    /// a call, its by-pointer return made the compiler build the bucket
    /// path's decision in a temporary and copy it out (measured slower).
    #[inline(always)]
    fn check_general(
        &mut self,
        set: &CompiledSet,
        t: u64,
        at: Instant,
        cost: u32,
        commit: bool,
    ) -> PolicyDecision {
        let t_eff = t.max(self.seen);
        self.seen = t_eff;
        let mut st = self.states_mut();
        if set.logs > 0 {
            for r in &set.rules {
                r.alg.advance(r.slot, &mut st, t_eff);
            }
        }
        let fits = {
            let ro = States {
                words: &*st.words,
                logs: &*st.logs,
            };
            set.rules
                .iter()
                .all(|r| r.alg.fits(r.slot, &ro, t_eff, cost))
        };
        if fits && commit {
            for r in &set.rules {
                r.alg.commit(r.slot, &mut st, t_eff, cost);
            }
        }
        eval(set, &self.states(), t, t_eff, at, cost, fits)
    }

    /// [`check`](Self::check) for a set of token buckets held inline (the
    /// usual case): the same decisions, on the TATs directly, unrolled for
    /// each number of buckets.
    #[inline(always)]
    fn check_buckets(
        &mut self,
        b: &BucketSet,
        t: u64,
        at: Instant,
        cost: u32,
        commit: bool,
    ) -> PolicyDecision {
        match b.n {
            1 => self.check_n_buckets::<1>(b, t, at, cost, commit),
            2 => self.check_n_buckets::<2>(b, t, at, cost, commit),
            _ => self.check_n_buckets::<INLINE_WORDS>(b, t, at, cost, commit),
        }
    }

    #[inline(always)]
    fn check_n_buckets<const N: usize>(
        &mut self,
        bs: &BucketSet,
        t: u64,
        at: Instant,
        cost: u32,
        commit: bool,
    ) -> PolicyDecision {
        let (Some(rs), Some(tats)) = (
            bs.rules.first_chunk::<N>(),
            self.words.first_chunk_mut::<N>(),
        ) else {
            unreachable!("a set of N buckets keeps N TATs inline")
        };
        let b: [&Gcra; N] = std::array::from_fn(|i| &rs[i].gcra);
        let t_eff = t.max(self.seen);
        self.seen = t_eff;
        let mut fits = true;
        for i in 0..N {
            fits &= b[i].fits_tat(tats[i], t_eff, cost);
        }
        if fits && commit {
            for i in 0..N {
                tats[i] = b[i].charged(tats[i], t_eff, cost);
            }
        }
        if N == 2
            && let (Some(&rules), Some(&tats)) = (rs.first_chunk::<2>(), tats.first_chunk::<2>())
        {
            // The rule to report is ranked when asked: a copy of both rules
            // (no dependence on the state just loaded) and the TATs.
            return PolicyDecision {
                allowed: fits,
                subject: 0,
                report: Report::Buckets(Buckets {
                    rules,
                    tats,
                    cost,
                    t,
                    at,
                    t_eff,
                }),
            };
        }
        // One bucket reports itself; three are ranked now (see
        // `PolicyDecision`).
        let i = if N == 1 {
            0
        } else {
            choose(rs, tats, cost, t, t_eff, fits)
        };
        let d = bucket_decision(b[i], tats[i], fits, cost, t, at, t_eff);
        PolicyDecision::reporting(fits, rs[i].info, d)
    }

    /// Whether `cost` would fit at `t`, changing nothing. O(rules).
    pub(crate) fn peek(&self, set: &CompiledSet, t: u64, at: Instant, cost: u32) -> PolicyDecision {
        let t_eff = t.max(self.seen);
        let st = self.states();
        let fits = set
            .rules
            .iter()
            .all(|r| r.alg.fits(r.slot, &st, t_eff, cost));
        eval(set, &st, t, t_eff, at, cost, fits)
    }

    /// Panics if the entry does not match its set's layout or a rule's state
    /// breaks an invariant.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self, set: &CompiledSet) {
        match &self.spill {
            None => assert!(set.inline, "inline entry for a spilled set"),
            Some(s) => {
                assert!(!set.inline, "spilled entry for an inline set");
                assert_eq!(s.words.len(), set.words, "spilled words");
                assert_eq!(s.logs.len(), set.logs, "spilled logs");
            }
        }
        let st = self.states();
        for r in &set.rules {
            r.alg.check_invariants(r.slot, &st, self.seen);
        }
    }
}

/// The decision of an evaluation: allowed iff `fits`, reporting one rule.
#[inline]
pub(crate) fn eval(
    set: &CompiledSet,
    st: &States<'_>,
    t: u64,
    t_eff: u64,
    at: Instant,
    cost: u32,
    fits: bool,
) -> PolicyDecision {
    let rule = report(set, st, t, t_eff, cost, fits);
    let r = &set.rules[rule];
    PolicyDecision::reporting(
        fits,
        r.info,
        Decision {
            allowed: fits,
            source: crate::decision::Source::State,
            limit: r.alg.capacity(),
            cost,
            now: t,
            at,
            t_eff,
            detail: r.alg.detail(r.slot, st, t_eff, cost, fits),
        },
    )
}

/// The rule a response should report: when allowed the tightest (least
/// remaining, then the latest reset), on denial the rule that denies with
/// the longest wait (the earliest such rule on ties). Ranks with integers
/// computed from each rule's state; the caller builds one decision, for the
/// rule returned. A one-rule set skips the ranking.
#[inline]
fn report(set: &CompiledSet, st: &States<'_>, t: u64, t_eff: u64, cost: u32, fits: bool) -> usize {
    if set.rules.len() == 1 {
        return 0;
    }
    let mut best = 0;
    if fits {
        let mut best_key = (u32::MAX, Reverse(0));
        for (i, r) in set.rules.iter().enumerate() {
            let (remaining, reset_at) = r.alg.remaining_reset(r.slot, st, t_eff, cost);
            let key = (remaining, Reverse(reset_at.saturating_sub(t)));
            if i == 0 || key < best_key {
                (best, best_key) = (i, key);
            }
        }
    } else {
        let mut best_key = None;
        for (i, r) in set.rules.iter().enumerate() {
            // Nothing was charged: report only the rules that deny.
            if r.alg.fits(r.slot, st, t_eff, cost) {
                continue;
            }
            let key = r.alg.fit_at(r.slot, st, t_eff, cost).saturating_sub(t);
            if best_key.is_none_or(|b| key > b) {
                (best, best_key) = (i, Some(key));
            }
        }
    }
    best
}
