//! Two threads on one hot key, on Zipf keys, and through a per-user AND
//! per-IP policy: never more granted than the quota allows over the elapsed
//! span, and contention really happened.

use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dispatchkit::ratelimit::{
    AlgorithmKind, Gcra, KeyKind, KeyedRateLimiter, Limit, PolicyLimiter, Quota, RateLimiter,
    Request, RuleSet, RuleTable, Window, cas_retries_on_this_thread,
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

/// Runs `work(thread)` on [`THREADS`] scoped threads released together by
/// a barrier; their results in thread order.
fn on_threads<T: Send>(work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|th| {
                let (work, barrier) = (&work, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    work(th)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    })
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
    let per_thread = 400_000u64;
    let results: Vec<(u64, u64, Instant)> = on_threads(|_| {
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
    });
    let granted: u64 = results.iter().map(|r| r.0).sum();
    let retries: u64 = results.iter().map(|r| r.1).sum();
    let end = results.iter().map(|r| r.2).max().expect("threads");
    let bound = allowance(&q, end - t0);
    assert!(granted <= bound, "granted {granted} > allowed {bound}");
    assert!(granted > 0);
    retries
}

/// Time frozen, a burst of exactly as many units as the two threads ask
/// for: every check must be granted however the CASes race (a lost race is
/// retried, never turned into a denial while units remain), and the races
/// must have happened.
#[test]
fn hot_key_two_threads_lose_no_unit_to_a_race() {
    until_contended(|_| frozen_round());
}

/// One round of the test above; the CAS retries seen.
fn frozen_round() -> u64 {
    let per_thread = 100_000u32;
    let burst = per_thread * THREADS as u32;
    let q = Quota::per_hour(1)
        .and_then(|q| q.with_burst(burst))
        .expect("quota");
    let t0 = Instant::now();
    let lim = RateLimiter::new_at(Gcra::new(q), t0);
    let results: Vec<(u64, u64)> = on_threads(|_| {
        let before = cas_retries_on_this_thread();
        let granted = (0..per_thread)
            .filter(|_| lim.check_at(t0).is_allowed())
            .count() as u64;
        (granted, cas_retries_on_this_thread() - before)
    });
    let granted: u64 = results.iter().map(|r| r.0).sum();
    assert_eq!(granted, u64::from(burst), "units lost to races");
    assert!(!lim.check_at(t0).is_allowed(), "more than the burst");
    results.iter().map(|r| r.1).sum()
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
    let results: Vec<(Vec<u64>, u64, Instant)> = on_threads(|th| {
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

/// Per-user AND per-IP policy checks from two threads on Zipf users (the
/// city stage's shape): no user and no IP is granted more than its rules
/// allow over the elapsed span, and the threads' checks of the hottest user
/// interleave (they contended for its shard's lock). Multi-subject checks
/// lock several shards; a deadlock would hang this test.
#[test]
fn policy_two_threads_never_over_grant_per_user_or_ip() {
    let mut interleavings = 0;
    for _ in 0..20 {
        interleavings += policy_round();
        if interleavings > 0 {
            break;
        }
    }
    assert!(
        interleavings > 0,
        "the threads never alternated on the hot user"
    );
}

/// Grants by user and by IP, the hottest user's (sequence, thread) checks,
/// and the last time read, of one thread.
type PolicyThread = (Vec<u64>, Vec<u64>, Vec<(u64, usize)>, Instant);

/// One round; returns how often the hottest user's checks switched thread.
fn policy_round() -> u64 {
    let w = |s: &str| s.parse::<Window>().expect("window");
    let table = RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                limits: vec![
                    Limit::new(2_000, w("second")).with_burst(20).named("burst"),
                    Limit::new(100_000, w("minute")).named("minute"),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::Ip),
                limits: vec![
                    Limit::new(3_000, w("second"))
                        .with_algorithm(AlgorithmKind::SlidingLog)
                        .named("ip"),
                ],
                ..RuleSet::default()
            },
        ],
    };
    let users = zipf_keys(200, 1.0, 100_000, 5).expect("keys");
    let t0 = Instant::now();
    let lim = PolicyLimiter::<u64>::new_at(&table, t0).expect("table");
    let seq = AtomicU64::new(0);
    let results: Vec<PolicyThread> = on_threads(|th| {
        let mut by_user = vec![0u64; 200];
        let mut by_ip = vec![0u64; 50];
        let mut hot = Vec::new();
        let mut last = t0;
        for (i, &u) in users
            .iter()
            .cycle()
            .skip(th * 777)
            .take(100_000)
            .enumerate()
        {
            if i % 64 == 0 {
                last = Instant::now();
            }
            let ip = u % 50;
            let reqs = [
                Request {
                    tier: None,
                    endpoint: "/v1/rides",
                    kind: KeyKind::User,
                    key: &u,
                },
                Request {
                    tier: None,
                    endpoint: "/v1/rides",
                    kind: KeyKind::Ip,
                    key: &ip,
                },
            ];
            let d = lim.check_all_at(&reqs, 1, last).expect("check");
            if u == 0 {
                hot.push((seq.fetch_add(1, Ordering::Relaxed), th));
            }
            if d.is_allowed() {
                by_user[u as usize] += 1;
                by_ip[ip as usize] += 1;
            }
        }
        (by_user, by_ip, hot, last)
    });
    let span = results.iter().map(|r| r.3).max().expect("threads") - t0;
    // Token buckets: burst + span / T; the sliding log: limit per second,
    // so at most limit · (⌊span / 1 s⌋ + 1).
    let user_bound = (20 + span.as_nanos() / 500_000) as u64;
    let user_minute = 100_000 * (span.as_secs() / 60 + 1);
    let ip_bound = 3_000 * (span.as_secs() + 1);
    for u in 0..200 {
        let g: u64 = results.iter().map(|r| r.0[u]).sum();
        assert!(
            g <= user_bound.min(user_minute),
            "user {u}: {g} > {user_bound}"
        );
    }
    for ip in 0..50 {
        let g: u64 = results.iter().map(|r| r.1[ip]).sum();
        assert!(g <= ip_bound, "ip {ip}: {g} > {ip_bound}");
    }
    let mut hot: Vec<(u64, usize)> = results.iter().flat_map(|r| r.2.iter().copied()).collect();
    hot.sort_unstable();
    hot.windows(2).filter(|w| w[0].1 != w[1].1).count() as u64
}
