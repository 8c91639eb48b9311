//! Hit ratios on real traces: the ARC paper's OLTP (capacities 1,000 /
//! 2,000 / 5,000) and P3 (1,000 / 10,000 / 32,768 / 100,000), replayed with
//! demand fill (`get`; on a miss, `insert`) through dispatchkit's policies
//! and the peers a user would pick (moka, quick_cache) beside an exact LRU
//! (the `lru` crate), in one run. Every cell is the mean of [`REPLAYS`]
//! replays, each through a fresh cache: the sharded caches draw a random
//! hasher per instance, which moves a point by up to a tenth of a point at
//! hit ratios near 1 % (P3 at 1,000 entries), so one replay would rank
//! them by the seed as much as by the policy; the spread is printed beside
//! the mean. The table goes to the bench notes, which `bench_report` puts
//! in BENCHMARKS.md; a small criterion group times one OLTP replay per
//! cache so the run is a bench like the others.
//!
//! Traces: `cache/tests/data/` (see its README: source, checksums, the
//! citation condition).

#[path = "common/notes.rs"]
mod notes;
#[path = "common/traces.rs"]
mod traces;

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use criterion::{BenchmarkId, Criterion, Throughput};
use dispatchkit::cache::{Admission, Cache, Policy};

/// A cache under replay: `get` answers a hit, `insert` fills a miss.
trait Replay {
    fn get(&self, k: u64) -> bool;
    fn insert(&self, k: u64);
}

impl Replay for Cache<u64, u64> {
    fn get(&self, k: u64) -> bool {
        Cache::get(self, &k).is_some()
    }
    fn insert(&self, k: u64) {
        let _ = Cache::insert(self, k, k);
    }
}

impl Replay for moka::sync::Cache<u64, u64> {
    fn get(&self, k: u64) -> bool {
        moka::sync::Cache::get(self, &k).is_some()
    }
    fn insert(&self, k: u64) {
        moka::sync::Cache::insert(self, k, k);
    }
}

impl Replay for quick_cache::sync::Cache<u64, u64> {
    fn get(&self, k: u64) -> bool {
        quick_cache::sync::Cache::get(self, &k).is_some()
    }
    fn insert(&self, k: u64) {
        quick_cache::sync::Cache::insert(self, k, k);
    }
}

struct ExactLru(Mutex<lru::LruCache<u64, u64>>);

impl Replay for ExactLru {
    fn get(&self, k: u64) -> bool {
        self.0.lock().expect("not poisoned").get(&k).is_some()
    }
    fn insert(&self, k: u64) {
        self.0.lock().expect("not poisoned").put(k, k);
    }
}

type Make = fn(u64) -> Box<dyn Replay>;

/// Every cache of the table (bench id, table name), with its constructor
/// at a capacity.
const CACHES: [(&str, &str, Make); 7] = [
    ("dispatchkit", "dispatchkit (S3-FIFO)", |c| {
        Box::new(Cache::<u64, u64>::new(c).expect("capacity"))
    }),
    ("dispatchkit_wtinylfu", "dispatchkit W-TinyLFU", |c| {
        Box::new(
            Cache::<u64, u64>::builder(c)
                .policy(Policy::WTinyLfu)
                .build()
                .expect("capacity"),
        )
    }),
    ("dispatchkit_tinylfu", "dispatchkit S3-FIFO+TinyLFU", |c| {
        Box::new(
            Cache::<u64, u64>::builder(c)
                .admission(Admission::TinyLfu)
                .build()
                .expect("capacity"),
        )
    }),
    ("dispatchkit_lru", "dispatchkit LRU", |c| {
        Box::new(
            Cache::<u64, u64>::builder(c)
                .policy(Policy::Lru)
                .build()
                .expect("capacity"),
        )
    }),
    ("moka", "moka", |c| {
        Box::new(moka::sync::Cache::<u64, u64>::new(c))
    }),
    ("quick_cache", "quick_cache", |c| {
        Box::new(quick_cache::sync::Cache::<u64, u64>::new(c as usize))
    }),
    ("lru_exact", "lru (exact)", |c| {
        Box::new(ExactLru(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(c as usize).expect("capacity > 0"),
        ))))
    }),
];

/// Replays per point, each through a fresh cache (two at a time).
const REPLAYS: usize = 32;

/// Hit ratios (%) of [`REPLAYS`] replays of `keys` through fresh caches
/// from `make` at capacity `cap`.
fn replays(make: Make, cap: u64, keys: &[u64]) -> Vec<f64> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                s.spawn(move || {
                    (w..REPLAYS)
                        .step_by(2)
                        .map(|_| 100.0 * ratio(&*make(cap), keys))
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("a replay panicked"))
            .collect()
    })
}

fn ratio(cache: &dyn Replay, keys: &[u64]) -> f64 {
    let mut hits = 0usize;
    for &k in keys {
        if cache.get(k) {
            hits += 1;
        } else {
            cache.insert(k);
        }
    }
    hits as f64 / keys.len() as f64
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let oltp = traces::keys("OLTP.lis.zst");
    if !quick {
        let p3 = traces::keys("P3.lis.zst");
        notes::line(
            "cache_traces",
            &format!(
                "hit ratio (%), demand fill, mean of {REPLAYS} replays through fresh caches \
                 [lowest – highest]; best mean per row marked *"
            ),
        );
        let mut header = String::from("trace, capacity");
        for (_, name, _) in CACHES {
            header.push_str(&format!(" | {name}"));
        }
        notes::line("cache_traces", &header);
        for (label, keys, caps) in [
            ("OLTP", &oltp, &[1_000u64, 2_000, 5_000][..]),
            ("P3", &p3, &[1_000u64, 10_000, 32_768, 100_000][..]),
        ] {
            for &cap in caps {
                let runs: Vec<Vec<f64>> = CACHES
                    .iter()
                    .map(|&(_, _, make)| replays(make, cap, keys))
                    .collect();
                let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
                let best = runs.iter().map(|r| mean(r)).fold(f64::MIN, f64::max);
                let mut row = format!("{label}, {cap}");
                for r in &runs {
                    let m = mean(r);
                    let lo = r.iter().copied().fold(f64::MAX, f64::min);
                    let hi = r.iter().copied().fold(f64::MIN, f64::max);
                    let mark = if (m - best).abs() < 1e-12 { "*" } else { "" };
                    row.push_str(&format!(" | {m:.3}{mark} [{lo:.2}–{hi:.2}]"));
                }
                notes::line("cache_traces", &row);
            }
        }
    }
    let mut g = c.benchmark_group("cache_trace_replay_oltp_1000");
    g.throughput(Throughput::Elements(oltp.len() as u64));
    g.sample_size(10);
    for (id, _, make) in CACHES {
        g.bench_function(BenchmarkId::new(id, "1t"), |b| {
            b.iter(|| black_box(ratio(&*make(1_000), &oltp)))
        });
    }
    g.finish();
    c.final_summary();
}
