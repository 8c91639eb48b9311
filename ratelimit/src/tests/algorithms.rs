//! Each algorithm, as a direct limiter, against its model: random streams of
//! (time step — sometimes backwards —, cost, peek or check).

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::config;
use super::model::{Kind, Model, assert_never_over_grants};
use crate::algorithm::Algorithm;
use crate::{
    Decision, FixedWindow, Gcra, Quota, RateLimitError, RateLimiter, SlidingCounter, SlidingLog,
};

/// (step ns in -40..120, cost 1..=capacity + 1, peek?)
fn ops() -> impl Strategy<Value = Vec<(i64, u32, bool)>> {
    prop::collection::vec((-40i64..120, 1u32..12, prop::bool::weighted(0.15)), 1..80)
}

fn run<A: Algorithm>(
    lim: RateLimiter<A>,
    mut model: Model,
    t0: Instant,
    ops: &[(i64, u32, bool)],
    state: impl Fn(&RateLimiter<A>, &Model),
) {
    let mut now: i64 = 0;
    let mut grants = Vec::new();
    for &(step, cost, peek) in ops {
        now = (now + step).max(0);
        let at = t0 + Duration::from_nanos(now as u64);
        let cap = model.capacity() as u32;
        let res = if peek {
            lim.peek_n_at(cost, at)
        } else {
            lim.check_n_at(cost, at)
        };
        if cost > cap {
            assert_eq!(
                res,
                Err(RateLimitError::InsufficientCapacity {
                    cost,
                    capacity: cap
                })
            );
            continue;
        }
        let d = res.expect("valid cost");
        let m = model.check(now as u64, u64::from(cost), !peek);
        assert_eq!(
            d.is_allowed(),
            m.allowed,
            "verdict at {now} cost {cost} peek {peek}"
        );
        if d.t_eff != m.t_eff {
            // Only GCRA keeps the newest time lazily (see `GcraCell`): its
            // effective time may be older than the model's only where no
            // unit is available at either, which no number can tell apart.
            assert_eq!(model.kind, Kind::Gcra, "effective time at {now}");
            assert!(
                d.t_eff < m.t_eff && m.remaining == 0,
                "effective time {} vs model {} with {} remaining",
                d.t_eff,
                m.t_eff,
                m.remaining
            );
        }
        // The decision is the one at the model's effective time, number for
        // number.
        let exact = Decision {
            t_eff: m.t_eff,
            ..d
        };
        assert_eq!(
            (
                d.remaining(),
                d.reset_after(),
                d.retry_after(),
                d.effective_window()
            ),
            (
                exact.remaining(),
                exact.reset_after(),
                exact.retry_after(),
                exact.effective_window()
            ),
            "decision at {now} differs from the one at the model's time"
        );
        state(&lim, &model);
        assert_eq!(u64::from(d.remaining()), m.remaining, "remaining at {now}");
        if let Some(r) = m.retry_at {
            assert_eq!(
                d.retry_after(),
                Some(Duration::from_nanos(r - now as u64)),
                "retry-after at {now}"
            );
        }
        if !d.is_allowed() {
            // Retrying at retry_after succeeds (nothing else charged).
            let wait = d.retry_after().expect("denials carry retry_after");
            let later = lim.peek_n_at(cost, at + wait).expect("valid cost");
            assert!(later.is_allowed(), "retry at +{wait:?} still denied");
            if wait > Duration::ZERO {
                let before = lim
                    .peek_n_at(cost, at + wait - Duration::from_nanos(1))
                    .expect("valid");
                assert!(
                    !before.is_allowed() || model.kind == Kind::Counter,
                    "retry_after not the earliest"
                );
            }
        }
        if d.is_allowed() && !peek {
            grants.push((d.t_eff, u64::from(cost)));
        }
        lim.check_invariants();
    }
    assert_never_over_grants(&model, &grants);
}

/// The invariant of `GcraCell`: the mark is at most the model's newest time
/// and equals it unless no unit is available at the newest time.
fn gcra_mark_invariant(lim: &RateLimiter<Gcra>, model: &Model) {
    let (tat, seen) = lim.cell().snapshot();
    assert!(
        seen <= model.seen,
        "mark {seen} ahead of newest {}",
        model.seen
    );
    if seen != model.seen {
        assert_eq!(
            lim.algorithm().units_at(tat, model.seen),
            0,
            "mark {seen} lags newest {} where units are available (TAT {tat})",
            model.seen
        );
    }
}

fn quota(limit: u32, period: u64, burst: u32) -> Quota {
    Quota::new(limit, Duration::from_nanos(period))
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gcra_matches_model(limit in 1u32..8, period in prop::sample::select(vec![10u64, 37, 100, 240]), burst in 1u32..10, ops in ops()) {
        let t0 = Instant::now();
        let q = quota(limit, period, burst);
        run(RateLimiter::new_at(Gcra::new(q), t0), Model::new(Kind::Gcra, limit, burst, period), t0, &ops, gcra_mark_invariant);
    }

    /// Two direct limiters used in turn on this thread, and checks of the
    /// first one from another thread in between: every verdict and
    /// remaining count equals the model's, whichever thread checked (no
    /// state is kept per thread).
    #[test]
    fn gcra_direct_checks_from_any_thread_match_the_model(
        limit in 1u32..8,
        period in prop::sample::select(vec![10u64, 37, 100]),
        burst in 1u32..10,
        ops in prop::collection::vec((0u8..3, -20i64..60, 1u32..4), 1..60),
    ) {
        let t0 = Instant::now();
        let q = quota(limit, period, burst);
        let lims = [RateLimiter::new_at(Gcra::new(q), t0), RateLimiter::new_at(Gcra::new(q), t0)];
        let mut models = [Model::new(Kind::Gcra, limit, burst, period), Model::new(Kind::Gcra, limit, burst, period)];
        let mut now: i64 = 0;
        for &(who, step, cost) in &ops {
            now = (now + step).max(0);
            let cost = cost.min(burst);
            let at = t0 + Duration::from_nanos(now as u64);
            let i = usize::from(who == 1);
            let lim = &lims[i];
            let d = if who == 2 {
                std::thread::scope(|s| s.spawn(|| lim.check_n_at(cost, at)).join())
                    .expect("checking thread")
            } else {
                lim.check_n_at(cost, at)
            }
            .expect("valid cost");
            let m = models[i].check(now as u64, u64::from(cost), true);
            prop_assert_eq!(d.is_allowed(), m.allowed, "verdict of limiter {} at {}", i, now);
            prop_assert_eq!(u64::from(d.remaining()), m.remaining, "remaining of limiter {} at {}", i, now);
            lim.check_invariants();
        }
    }

    #[test]
    fn fixed_window_matches_model(limit in 1u32..10, period in prop::sample::select(vec![10u64, 37, 100, 240]), ops in ops()) {
        let t0 = Instant::now();
        let q = quota(limit, period, 1);
        run(RateLimiter::new_at(FixedWindow::new(q), t0), Model::new(Kind::Fixed, limit, 1, period), t0, &ops, |_, _| ());
    }

    #[test]
    fn sliding_log_matches_model(limit in 1u32..10, period in prop::sample::select(vec![10u64, 37, 100, 240]), ops in ops()) {
        let t0 = Instant::now();
        let q = quota(limit, period, 1);
        run(RateLimiter::new_at(SlidingLog::new(q), t0), Model::new(Kind::Log, limit, 1, period), t0, &ops, |_, _| ());
    }

    #[test]
    fn sliding_counter_matches_model_and_bound(limit in 1u32..10, period in prop::sample::select(vec![10u64, 37, 100, 240]), ops in ops()) {
        let t0 = Instant::now();
        let q = quota(limit, period, 1);
        run(RateLimiter::new_at(SlidingCounter::new(q), t0), Model::new(Kind::Counter, limit, 1, period), t0, &ops, |_, _| ());
    }
}

#[test]
fn time_going_backwards_counts_as_no_time_passed() {
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(Gcra::new(Quota::per_second(1).expect("quota")), t0);
    let t10 = t0 + Duration::from_secs(10);
    assert!(lim.check_at(t10).is_allowed());
    // Going back to t0 must not refill (or panic); it is treated as t10.
    let d = lim.check_at(t0);
    assert!(!d.is_allowed());
    assert_eq!(d.retry_after(), Some(Duration::from_secs(11)));
    assert!(lim.check_at(t10 + Duration::from_secs(1)).is_allowed());
    // Before the origin: saturates at the origin, no panic.
    let early = t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0);
    assert!(!lim.check_at(early).is_allowed());
}

#[test]
fn sliding_counter_error_bound_is_reached_but_not_exceeded() {
    // The worst case: a whole window's quota at the very end of one window,
    // then as much as the estimate allows just before the next one ends.
    let t0 = Instant::now();
    let w = Duration::from_secs(60);
    let lim = RateLimiter::new_at(SlidingCounter::new(Quota::new(100, w).expect("quota")), t0);
    assert!(
        lim.check_n_at(100, t0 + w - Duration::from_millis(1))
            .expect("cost")
            .is_allowed()
    );
    let late = t0 + w + w - Duration::from_millis(2);
    let d = lim.peek_at(late);
    // prev weight (W − e)/W = 2 ms / 60 s: 100 · 2/60000 < 1, so 99 fit.
    assert_eq!(d.remaining(), 99);
    assert!(lim.check_n_at(99, late).expect("cost").is_allowed());
    // 199 = 2·limit − 1 units inside (late − W, late].
}

/// A server reading the clock for every request, at twice the rate: governor
/// writes its state once per grant (its CAS) and never for a denial. So
/// does this GCRA: the newest time is not written when no unit is left.
#[test]
fn gcra_writes_once_per_grant_and_never_for_a_denial() {
    use crate::gcra::STATE_WRITES;
    let t0 = Instant::now();
    let q = Quota::per_second(1_000)
        .and_then(|q| q.with_burst(10))
        .expect("quota");
    let lim = RateLimiter::new_at(Gcra::new(q), t0);
    // Drain the burst, then run saturated: one request every 0.5 ms.
    while lim.check_at(t0).is_allowed() {}
    let before = STATE_WRITES.with(std::cell::Cell::get);
    let mut grants = 0u64;
    for i in 1..=10_000u64 {
        let d = lim.check_at(t0 + Duration::from_micros(500 * i));
        grants += u64::from(d.is_allowed());
    }
    let writes = STATE_WRITES.with(std::cell::Cell::get) - before;
    assert_eq!(grants, 5_000);
    assert_eq!(writes, grants, "writes beyond one CAS per grant");
    // The previous design stored the newest time on every check: 15,000.
    lim.check_invariants();
}
