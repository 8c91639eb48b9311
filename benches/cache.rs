//! `dispatchkit::cache` beside moka, quick_cache and a mutex-wrapped `lru`.
//!
//! Workload: Zipf(s = 1.0) keys over 1,000,000 (`dispatchkit::workload::
//! zipf_keys`, seed 7), capacity 100,000, `u64 → u64`.
//!
//! - `cache_zipf_90get`: op `i` of a thread inserts its key when `i % 10 ==
//!   9`, otherwise gets it and inserts it on a miss (demand fill).
//! - `cache_get_only`: the cache is prefilled with keys `0..100_000` (the
//!   100k hottest), then only gets (hits and misses) — read scaling.
//! - `cache_tiered_get`: a `TieredCache` GET answered by L1, by L2 (L1
//!   misses), or loaded from an in-memory L3 store (both tiers miss).
//!
//! `N/1t` runs the batch on one thread; `N/2t` splits the same batch
//! between two `std::thread::scope` threads (each runs its half `iters`
//! times, through `iter_custom`), and the reported time is the wall time of
//! both, so the throughput is total operations / wall time.
//!
//! Before the benchmarks the binary prints each cache's hit ratio on this
//! workload and on the ARC OLTP trace, and its memory overhead per entry at
//! 1,000,000 entries (`cap::Cap` counting allocator; bytes allocated per
//! entry minus the 16 bytes of key and value).

#[path = "common/notes.rs"]
mod notes;
#[path = "common/traces.rs"]
mod traces;

use std::alloc::System;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use cap::Cap;
use criterion::{BenchmarkId, Criterion, Throughput};
use dispatchkit::cache::{Admission, Cache, Policy, SharedTier, Store, TierConfig};
use dispatchkit::workload::zipf_keys;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const UNIVERSE: u64 = 1_000_000;
const CAPACITY: u64 = 100_000;
/// Operations per iteration (split between the threads).
const BATCH: usize = 200_000;

/// The operations every peer implements.
trait Peer: Sync {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
    /// Runs deferred maintenance (moka's pending tasks).
    fn settle(&self) {}
}

struct Dk(Cache<u64, u64>);
impl Peer for Dk {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        let _ = self.0.insert(k, v);
    }
}

struct Moka(moka::sync::Cache<u64, u64>);
impl Peer for Moka {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.0.insert(k, v);
    }
    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

struct Quick(quick_cache::sync::Cache<u64, u64>);
impl Peer for Quick {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.get(&k)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.0.insert(k, v);
    }
}

struct LruMutex(Mutex<lru::LruCache<u64, u64>>);
impl Peer for LruMutex {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.0.lock().ok()?.get(&k).copied()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        if let Ok(mut g) = self.0.lock() {
            g.put(k, v);
        }
    }
}

fn dk(cap: u64) -> Dk {
    Dk(Cache::new(cap).expect("valid capacity"))
}
fn dk_admission(cap: u64) -> Dk {
    Dk(Cache::builder(cap)
        .admission(Admission::TinyLfu)
        .build()
        .expect("valid capacity"))
}
fn dk_wtinylfu(cap: u64) -> Dk {
    Dk(Cache::builder(cap)
        .policy(Policy::WTinyLfu)
        .build()
        .expect("valid capacity"))
}
fn moka(cap: u64) -> Moka {
    Moka(moka::sync::Cache::new(cap))
}
fn quick(cap: u64) -> Quick {
    Quick(quick_cache::sync::Cache::new(cap as usize))
}
fn lru_mutex(cap: u64) -> LruMutex {
    LruMutex(Mutex::new(lru::LruCache::new(
        NonZeroUsize::new(cap as usize).expect("capacity > 0"),
    )))
}

/// The 90 % get / 10 % insert mix with demand fill; returns hits.
#[inline]
fn mix<P: Peer + ?Sized>(p: &P, keys: &[u64]) -> usize {
    let mut hits = 0;
    for (i, &k) in keys.iter().enumerate() {
        if i % 10 == 9 {
            p.insert(k, k);
        } else if p.get(k).is_some() {
            hits += 1;
        } else {
            p.insert(k, k);
        }
    }
    hits
}

/// Gets only; returns hits.
#[inline]
fn gets<P: Peer + ?Sized>(p: &P, keys: &[u64]) -> usize {
    keys.iter().filter(|&&k| p.get(k).is_some()).count()
}

/// Runs `work` over `keys` split between `threads` threads, `iters` times
/// each; returns the wall time.
fn timed<P: Peer>(
    p: &P,
    keys: &[u64],
    threads: usize,
    iters: u64,
    work: fn(&P, &[u64]) -> usize,
) -> Duration {
    let share = keys.len() / threads;
    let t0 = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let part = &keys[t * share..(t + 1) * share];
            s.spawn(move || {
                for _ in 0..iters {
                    black_box(work(p, part));
                }
            });
        }
    });
    t0.elapsed()
}

fn bench_peer<P: Peer>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    make: fn(u64) -> P,
    keys: &[u64],
    prefilled: bool,
) {
    for threads in [1usize, 2] {
        let cache = make(CAPACITY);
        if prefilled {
            for k in (0..CAPACITY).rev() {
                cache.insert(k, k);
            }
            cache.settle();
        }
        let work: fn(&P, &[u64]) -> usize = if prefilled { gets::<P> } else { mix::<P> };
        g.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
            b.iter_custom(|iters| timed(&cache, keys, threads, iters, work))
        });
    }
}

fn bench_group(c: &mut Criterion, keys: &[u64], group: &str, prefilled: bool) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(keys.len() as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    bench_peer(&mut g, "dispatchkit", dk, keys, prefilled);
    bench_peer(&mut g, "dispatchkit_wtinylfu", dk_wtinylfu, keys, prefilled);
    bench_peer(&mut g, "moka", moka, keys, prefilled);
    bench_peer(&mut g, "quick_cache", quick, keys, prefilled);
    bench_peer(&mut g, "lru_mutex", lru_mutex, keys, prefilled);
    g.finish();
}

/// An in-memory L3 (value = 2 × key) that never fails: the tiered group
/// measures the tiers, not a database.
struct MemStore;

impl Store<u64, u64> for MemStore {
    type Error = std::io::Error;
    fn get(&self, key: &u64) -> Result<Option<u64>, Self::Error> {
        Ok(Some(key.wrapping_mul(2)))
    }
    fn put(&self, _: &u64, _: &u64) -> Result<(), Self::Error> {
        Ok(())
    }
    fn delete(&self, _: &u64) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// GETs per iteration in the tiered group.
const TIER_BATCH: u64 = 10_000;

fn bench_tiered(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_tiered_get");
    g.throughput(Throughput::Elements(TIER_BATCH))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let shared = SharedTier::new(
        Cache::new(4 * CAPACITY).expect("valid capacity"),
        MemStore,
        TierConfig::default(),
    )
    .expect("valid tier config");

    // L1 hit: 10k keys resident in a 100k L1.
    let warm = shared.instance(Cache::new(CAPACITY).expect("valid capacity"));
    for k in 0..TIER_BATCH {
        let _ = warm.get(&k);
    }
    g.bench_function(BenchmarkId::new("l1_hit", "1t"), |b| {
        b.iter(|| {
            for k in 0..TIER_BATCH {
                black_box(warm.get(&k).ok());
            }
        })
    });

    // L2 hit: a cycle over 100k keys resident in L2; the 1k-entry L1 never
    // holds a key until its next turn (S3-FIFO sends one-pass keys back out).
    let cold = shared.instance(Cache::new(1_000).expect("valid capacity"));
    for k in 0..CAPACITY {
        let _ = cold.get(&(1_000_000 + k));
    }
    let mut next = 0u64;
    g.bench_function(BenchmarkId::new("l2_hit", "1t"), |b| {
        b.iter(|| {
            for _ in 0..TIER_BATCH {
                black_box(cold.get(&(1_000_000 + next)).ok());
                next = (next + 1) % CAPACITY;
            }
        })
    });

    // L3 load: never-seen keys, so both tiers miss and fill.
    let fresh = shared.instance(Cache::new(1_000).expect("valid capacity"));
    let mut key = 1u64 << 40;
    g.bench_function(BenchmarkId::new("l3_load", "1t"), |b| {
        b.iter(|| {
            for _ in 0..TIER_BATCH {
                black_box(fresh.get(&key).ok());
                key += 1;
            }
        })
    });
    g.finish();
}

fn main() {
    let keys = zipf_keys(UNIVERSE, 1.0, BATCH, 7).expect("valid Zipf parameters");
    let test_mode = std::env::args().any(|a| a == "--test" || a == "--list");
    if !test_mode {
        report();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_group(&mut c, &keys, "cache_zipf_90get", false);
    bench_group(&mut c, &keys, "cache_get_only", true);
    bench_tiered(&mut c);
    c.final_summary();
}

/// Hit ratio of the 90 % get mix (one thread, one pass over 1M keys).
fn mix_ratio<P: Peer + ?Sized>(p: &P, keys: &[u64]) -> f64 {
    let gets = keys.len() - keys.len() / 10;
    mix(p, keys) as f64 / gets as f64
}

fn demand_ratio<P: Peer + ?Sized>(p: &P, trace: &[u64]) -> f64 {
    let mut hits = 0usize;
    for &k in trace {
        if p.get(k).is_some() {
            hits += 1;
        } else {
            p.insert(k, k);
        }
    }
    hits as f64 / trace.len() as f64
}

/// Bytes allocated per entry beyond the 16 of key and value, at `n` entries.
fn overhead(make: MakePeer, n: u64) -> f64 {
    let before = ALLOC.allocated();
    let cache = make(n);
    for k in 0..n {
        cache.insert(k, k);
    }
    cache.settle();
    let bytes = ALLOC.allocated().saturating_sub(before);
    drop(black_box(cache));
    bytes as f64 / n as f64 - 16.0
}

/// A cache of the given capacity behind the common interface.
type MakePeer = fn(u64) -> Box<dyn Peer>;

/// Every cache the printed report compares, with its constructor.
const CACHES: [(&str, MakePeer); 6] = [
    ("dispatchkit", |c| Box::new(dk(c))),
    ("dispatchkit+TinyLFU", |c| Box::new(dk_admission(c))),
    ("dispatchkit W-TinyLFU", |c| Box::new(dk_wtinylfu(c))),
    ("moka", |c| Box::new(moka(c))),
    ("quick_cache", |c| Box::new(quick(c))),
    ("lru_mutex", |c| Box::new(lru_mutex(c))),
];

fn report() {
    let long = zipf_keys(UNIVERSE, 1.0, 1_000_000, 8).expect("valid Zipf parameters");
    notes::line(
        "cache",
        "hit ratio, Zipf 1.0 over 1M keys, capacity 100k, 90% get (1 thread, 1M ops):",
    );
    for (name, make) in CACHES {
        notes::line(
            "cache",
            &format!("  {name:<22} {:.4}", mix_ratio(&*make(CAPACITY), &long)),
        );
    }
    let trace = traces::keys("OLTP.lis.zst");
    for cap in [1000u64, 2000] {
        notes::line(
            "cache",
            &format!("hit ratio, ARC OLTP trace, capacity {cap} (demand fill):"),
        );
        for (name, make) in CACHES {
            notes::line(
                "cache",
                &format!("  {name:<22} {:.4}", demand_ratio(&*make(cap), &trace)),
            );
        }
    }
    const N: u64 = 1_000_000;
    notes::line(
        "cache",
        "memory overhead per entry at 1M u64->u64 entries (bytes beyond key+value):",
    );
    for (name, make) in CACHES {
        notes::line("cache", &format!("  {name:<22} {:.1}", overhead(make, N)));
    }
}
