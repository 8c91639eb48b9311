//! Two threads on one hot key and on Zipf keys: never more granted than the
//! quota allows over the elapsed span, and contention really happened.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use dispatchkit::ratelimit::{
    Gcra, KeyedRateLimiter, Quota, RateLimiter, cas_retries_on_this_thread,
};
use dispatchkit::workload::zipf_keys;

const THREADS: usize = 2;

/// Most a GCRA of rate 1/T and burst b can grant over a span: b + span/T.
fn allowance(q: &Quota, span: Duration) -> u64 {
    let t = q.period().as_nanos() / u128::from(q.limit());
    u64::from(q.burst()) + (span.as_nanos() / t) as u64
}

/// Runs rounds at rising rates (as governor's `stresstest_collisions`
/// does) until CASes collide; every round must respect the bound.
fn until_contended(mut round: impl FnMut(u32) -> u64) {
    // On a loaded machine the two threads may not overlap in one round, so
    // the fastest rate is retried (bounded) until they do.
    let mut retries = 0;
    let rates = [1_000_000u32, 10_000_000, 100_000_000]
        .into_iter()
        .chain(std::iter::repeat_n(1_000_000_000, 40));
    for rate in rates {
        retries += round(rate);
        if retries > 0 {
            break;
        }
    }
    assert!(
        retries > 0,
        "no CAS ever lost a race: no contention happened"
    );
}

#[test]
fn hot_key_two_threads_never_over_grant() {
    until_contended(hot_key_round);
}

/// One hot key at `rate`/s, burst 100: both threads hammer it with real
/// time; returns the CAS retries seen.
fn hot_key_round(rate: u32) -> u64 {
    let q = Quota::per_second(rate)
        .and_then(|q| q.with_burst(100))
        .expect("quota");
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(Gcra::new(q), t0);
    let barrier = Barrier::new(THREADS);
    let per_thread = 400_000u64;
    let results: Vec<(u64, u64, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let before = cas_retries_on_this_thread();
                    let mut granted = 0;
                    let mut last = t0;
                    for i in 0..per_thread {
                        // Real time, read once per batch of 64.
                        if i % 64 == 0 {
                            last = Instant::now();
                        }
                        granted += u64::from(lim.check_at(last).is_allowed());
                    }
                    (granted, cas_retries_on_this_thread() - before, last)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let granted: u64 = results.iter().map(|r| r.0).sum();
    let retries: u64 = results.iter().map(|r| r.1).sum();
    let end = results.iter().map(|r| r.2).max().expect("threads");
    let bound = allowance(&q, end - t0);
    assert!(granted <= bound, "granted {granted} > allowed {bound}");
    assert!(granted > 0);
    retries
}

#[test]
fn zipf_keys_two_threads_never_over_grant_per_key() {
    until_contended(|rate| zipf_round(rate / 1_000));
}

/// Zipf keys (s = 1.0 over 1,000 keys) at `rate`/s per key, burst 10.
fn zipf_round(rate: u32) -> u64 {
    let q = Quota::per_second(rate)
        .and_then(|q| q.with_burst(10))
        .expect("quota");
    let t0 = Instant::now();
    let lim = KeyedRateLimiter::new_at(Gcra::new(q), t0);
    let keys = zipf_keys(1_000, 1.0, 400_000, 11).expect("keys");
    let barrier = Barrier::new(THREADS);
    let results: Vec<(Vec<u64>, u64, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|th| {
                let keys = &keys;
                let (lim, barrier) = (&lim, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let before = cas_retries_on_this_thread();
                    let mut granted = vec![0u64; 1_000];
                    let mut last = t0;
                    // Each thread walks the same hot keys from its own offset.
                    for (i, &k) in keys
                        .iter()
                        .cycle()
                        .skip(th * 1_000)
                        .take(400_000)
                        .enumerate()
                    {
                        if i % 64 == 0 {
                            last = Instant::now();
                        }
                        if lim.check_at(&k, last).is_allowed() {
                            granted[k as usize] += 1;
                        }
                    }
                    (granted, cas_retries_on_this_thread() - before, last)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let end = results.iter().map(|r| r.2).max().expect("threads");
    let bound = allowance(&q, end - t0);
    for k in 0..1_000 {
        let g: u64 = results.iter().map(|r| r.0[k]).sum();
        assert!(g <= bound, "key {k}: granted {g} > allowed {bound}");
    }
    assert!(lim.len() <= lim.max_keys());
    results.iter().map(|r| r.1).sum()
}
