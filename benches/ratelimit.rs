//! Rate limiter benches: dispatchkit beside governor (and a naive
//! `Mutex<HashMap>` floor) in the same groups.
//!
//! Method, identical for both sides:
//! - **Time** is simulated: one shared clock per run, which each bench
//!   thread advances by `STEP / threads` per batch of `BATCH` checks, so
//!   that simulated time runs at `STEP` per `BATCH` checks in total however
//!   the threads are scheduled, and both sides see the same mix of grants
//!   (CAS) and denials (no write). Dispatchkit reads it once per batch ("hot
//!   loops read the clock once per batch", `now = t0 + clock` as an
//!   argument); governor reads its `FakeRelativeClock` (the same kind of
//!   relaxed atomic) on every check.
//! - **Quota**: the same on both sides, with an emission interval that is
//!   a whole number of nanoseconds so neither side rounds.
//! - **Keys**: `dispatchkit::workload::zipf_keys` (s = 1.0 over 100k keys),
//!   generated ahead; each thread walks the array from its own offset.
//! - **2 threads** (`/2t`): `iter_custom` runs 2 scoped threads, each doing
//!   half of the iterations; the figure is total checks / wall time.
//!   Thread start-up (~50 µs) is amortised over ≥ 1M checks per sample.
//! - Throughput is `Elements(1)` per check.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dispatchkit::ratelimit::{
    Algorithm, FixedWindow, Gcra, KeyKind, KeyedRateLimiter, Limit, PolicyLimiter, Quota,
    RateLimiter, Request, RuleSet, RuleTable, SlidingCounter, SlidingLog, Window,
};
use dispatchkit::workload::zipf_keys;
use governor::clock::FakeRelativeClock;

const BATCH: u64 = 1_000;
const STEP: Duration = Duration::from_millis(1);
const KEYS: usize = 1 << 20;

/// Direct quota: 500k/s (T = 2 µs), burst 1,000: half of the checks of one
/// thread are granted.
const DIRECT_RATE: u32 = 500_000;
const DIRECT_BURST: u32 = 1_000;
/// Keyed quota: 1,000/s per key (T = 1 ms), burst 100.
const KEYED_RATE: u32 = 1_000;
const KEYED_BURST: u32 = 100;

fn dk_quota(rate: u32, burst: u32) -> Quota {
    Quota::per_second(rate)
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota")
}

fn gov_quota(rate: u32, burst: u32) -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(rate).expect("nonzero"))
        .allow_burst(NonZeroU32::new(burst).expect("nonzero"))
}

/// The simulated clock of a multi-thread run, as dispatchkit reads it: each
/// thread advances it by `STEP / threads` per batch (as governor's
/// `FakeRelativeClock` is advanced) and uses the time it reached.
struct SharedClock {
    t0: Instant,
    ns: AtomicU64,
    step: u64,
}

impl SharedClock {
    fn new(t0: Instant, threads: u64) -> Self {
        Self {
            t0,
            ns: AtomicU64::new(0),
            step: STEP.as_nanos() as u64 / threads,
        }
    }

    /// Advances by one thread's step; the new time.
    fn advance(&self) -> Instant {
        let ns = self.ns.fetch_add(self.step, Ordering::Relaxed) + self.step;
        self.t0 + Duration::from_nanos(ns)
    }
}

/// Runs `work(thread, n)` on `threads` scoped threads, `iters / threads`
/// each, and returns the wall time.
fn run_threads(threads: u64, iters: u64, work: impl Fn(u64, u64) + Sync) -> Duration {
    let per = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let work = &work;
            s.spawn(move || work(th, per));
        }
    });
    start.elapsed()
}

fn bench_direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit_direct");
    g.throughput(Throughput::Elements(1));
    for threads in [1u64, 2] {
        g.bench_function(
            BenchmarkId::new("dispatchkit_gcra", format!("{threads}t")),
            |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    let lim =
                        RateLimiter::new_at(Gcra::new(dk_quota(DIRECT_RATE, DIRECT_BURST)), t0);
                    let clock = SharedClock::new(t0, threads);
                    run_threads(threads, iters, |_, n| {
                        let mut done = 0;
                        while done < n {
                            let now = clock.advance();
                            let m = BATCH.min(n - done);
                            for _ in 0..m {
                                black_box(lim.check_at(now).is_allowed());
                            }
                            done += m;
                        }
                    })
                });
            },
        );
        g.bench_function(BenchmarkId::new("governor", format!("{threads}t")), |b| {
            b.iter_custom(|iters| {
                let clock = FakeRelativeClock::default();
                let lim = governor::RateLimiter::direct_with_clock(
                    gov_quota(DIRECT_RATE, DIRECT_BURST),
                    clock.clone(),
                );
                let step = STEP / threads as u32;
                run_threads(threads, iters, |_, n| {
                    let mut done = 0;
                    while done < n {
                        clock.advance(step);
                        let m = BATCH.min(n - done);
                        for _ in 0..m {
                            black_box(lim.check().is_ok());
                        }
                        done += m;
                    }
                })
            });
        });
    }
    g.finish();
}

fn bench_keyed(c: &mut Criterion, keys: &[u64]) {
    let mut g = c.benchmark_group("ratelimit_keyed_zipf");
    g.throughput(Throughput::Elements(1));
    let offset = |th: u64| (th as usize * keys.len() / 2) % keys.len();
    for threads in [1u64, 2] {
        g.bench_function(
            BenchmarkId::new("dispatchkit_gcra", format!("{threads}t")),
            |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    let lim =
                        KeyedRateLimiter::new_at(Gcra::new(dk_quota(KEYED_RATE, KEYED_BURST)), t0);
                    let clock = SharedClock::new(t0, threads);
                    run_threads(threads, iters, |th, n| {
                        let mut i = offset(th);
                        let mut done = 0;
                        while done < n {
                            let now = clock.advance();
                            let m = BATCH.min(n - done);
                            for _ in 0..m {
                                black_box(lim.check_at(&keys[i], now).is_allowed());
                                i = if i + 1 == keys.len() { 0 } else { i + 1 };
                            }
                            done += m;
                        }
                    })
                });
            },
        );
        g.bench_function(BenchmarkId::new("governor", format!("{threads}t")), |b| {
            b.iter_custom(|iters| {
                let clock = FakeRelativeClock::default();
                let lim = governor::RateLimiter::dashmap_with_clock(
                    gov_quota(KEYED_RATE, KEYED_BURST),
                    clock.clone(),
                );
                let step = STEP / threads as u32;
                run_threads(threads, iters, |th, n| {
                    let mut i = offset(th);
                    let mut done = 0;
                    while done < n {
                        clock.advance(step);
                        let m = BATCH.min(n - done);
                        for _ in 0..m {
                            black_box(lim.check_key(&keys[i]).is_ok());
                            i = if i + 1 == keys.len() { 0 } else { i + 1 };
                        }
                        done += m;
                    }
                })
            });
        });
    }
    g.bench_function(BenchmarkId::new("mutex_hashmap", "1t"), |b| {
        b.iter_custom(|iters| {
            let lim = NaiveKeyed::new(KEYED_RATE, KEYED_BURST);
            let start = Instant::now();
            let mut now = 0u64;
            let mut i = 0;
            let mut done = 0;
            while done < iters {
                now += STEP.as_nanos() as u64;
                let m = BATCH.min(iters - done);
                for _ in 0..m {
                    black_box(lim.check(keys[i], now));
                    i = if i + 1 == keys.len() { 0 } else { i + 1 };
                }
                done += m;
            }
            start.elapsed()
        });
    });
    g.finish();
}

/// The naive floor: one `Mutex<HashMap<key, TAT>>` (std SipHash), GCRA.
struct NaiveKeyed {
    t: u64,
    tau: u64,
    map: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
}

impl NaiveKeyed {
    fn new(rate: u32, burst: u32) -> Self {
        let t = 1_000_000_000 / u64::from(rate);
        Self {
            t,
            tau: t * u64::from(burst - 1),
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn check(&self, key: u64, now: u64) -> bool {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let tat = m.entry(key).or_insert(0);
        if *tat + self.t > now + self.tau + self.t {
            return false;
        }
        *tat = (*tat).max(now) + self.t;
        true
    }
}

/// One thread walking the Zipf keys with `check(key, now)`, time advanced
/// once per batch.
fn keyed_loop(keys: &[u64], iters: u64, mut check: impl FnMut(&u64, Instant) -> bool) -> Duration {
    let t0 = Instant::now();
    let start = Instant::now();
    let mut now = t0;
    let mut i = 0;
    let mut done = 0;
    while done < iters {
        now += STEP;
        let m = BATCH.min(iters - done);
        for _ in 0..m {
            black_box(check(&keys[i], now));
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
        }
        done += m;
    }
    start.elapsed()
}

/// The seed's hour + day rules per user (1,000/hour, 10,000/day, token
/// buckets), checked atomically through the rules table; compare with
/// `ratelimit_keyed_zipf/dispatchkit_gcra/1t` (one rule, no table).
fn bench_policy(c: &mut Criterion, keys: &[u64]) {
    let mut g = c.benchmark_group("ratelimit_policy_2rules");
    g.throughput(Throughput::Elements(1));
    let w = |s: &str| s.parse::<Window>().expect("window");
    let table = RuleTable {
        rules: vec![RuleSet {
            kind: Some(KeyKind::User),
            limits: vec![
                Limit::new(3_600_000, w("hour"))
                    .with_burst(100)
                    .named("hourly"),
                Limit::new(86_400_000, w("day"))
                    .with_burst(1_000)
                    .named("daily"),
            ],
            ..RuleSet::default()
        }],
    };
    g.bench_function(BenchmarkId::new("dispatchkit", "1t"), |b| {
        b.iter_custom(|iters| {
            let lim = PolicyLimiter::<u64>::new_at(&table, Instant::now()).expect("table");
            keyed_loop(keys, iters, |k, now| {
                let req = Request {
                    tier: None,
                    endpoint: "/v1/rides",
                    kind: KeyKind::User,
                    key: k,
                };
                lim.check_at(&req, 1, now).is_ok_and(|d| d.is_allowed())
            })
        });
    });
    g.finish();
}

fn bench_algorithms(c: &mut Criterion, keys: &[u64]) {
    let mut g = c.benchmark_group("ratelimit_algorithms_keyed");
    g.throughput(Throughput::Elements(1));
    let q = dk_quota(KEYED_RATE, KEYED_RATE);
    fn one<A: Algorithm>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        alg: A,
        keys: &[u64],
    ) {
        g.bench_function(BenchmarkId::new(name, "1t"), |b| {
            b.iter_custom(|iters| {
                let lim = KeyedRateLimiter::new_at(alg.clone(), Instant::now());
                keyed_loop(keys, iters, |k, now| lim.check_at(k, now).is_allowed())
            });
        });
    }
    one(&mut g, "fixed_window", FixedWindow::new(q), keys);
    one(&mut g, "sliding_log", SlidingLog::new(q), keys);
    one(&mut g, "sliding_counter", SlidingCounter::new(q), keys);
    g.finish();
}

fn benches(c: &mut Criterion) {
    let keys = zipf_keys(100_000, 1.0, KEYS, 7).expect("zipf keys");
    bench_direct(c);
    bench_keyed(c, &keys);
    bench_policy(c, &keys);
    bench_algorithms(c, &keys);
}

criterion_group! {
    name = ratelimit;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(ratelimit);
