//! Synthetic phases that break naive policies, replayed with demand fill
//! through the cache's policies beside an exact LRU twin (capacity 1,000,
//! one shard so the policy alone decides):
//!
//! - **loop**: keys `0 .. 1.25 × capacity` in order, 20 times: LRU evicts
//!   each key just before its reuse and hits nothing.
//! - **scan**: Zipf(1.0) over 5,000 hot keys; half-way, a one-pass scan of
//!   20,000 keys never seen again. Scored on the 50,000 requests after the
//!   scan: LRU has been flushed by it.
//! - **shift**: Zipf(1.0) over one set of 5,000 keys, then over a disjoint
//!   set. Scored on the second half: history must not pin the old set.
//!
//! Each policy must be no worse than LRU by more than 1 percentage point on
//! every phase, and strictly better on the loop and the scan. The figures
//! are printed (`--nocapture`).

#[path = "common/naive_lru.rs"]
mod naive_lru;

use dispatchkit_cache::{Admission, Cache, Policy};
use naive_lru::NaiveLru;

const CAP: u64 = 1_000;

// The tests' seeded stream (SplitMix64).
use dispatchkit_test_support::SplitMix64 as Rng;

/// `count` Zipf(1.0) draws over `base .. base + n`.
fn zipf(rng: &mut Rng, n: u64, base: u64, count: usize) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut sum = 0.0;
    for rank in 1..=n {
        sum += 1.0 / rank as f64;
        cdf.push(sum);
    }
    (0..count)
        .map(|_| {
            let u = rng.unit() * sum;
            base + cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// A phase: the requests, and from which request on it is scored.
struct Phase {
    name: &'static str,
    requests: Vec<u64>,
    scored_from: usize,
}

fn phases() -> Vec<Phase> {
    let mut rng = Rng(7);
    let looped: Vec<u64> = (0..20).flat_map(|_| 0..CAP * 5 / 4).collect();
    let mut scan = zipf(&mut rng, 5 * CAP, 0, 100_000);
    let scored_from = scan.len() + 20 * CAP as usize;
    scan.extend(1_000_000..1_000_000 + 20 * CAP);
    scan.extend(zipf(&mut rng, 5 * CAP, 0, 50_000));
    let mut shift = zipf(&mut rng, 5 * CAP, 0, 100_000);
    let half = shift.len();
    shift.extend(zipf(&mut rng, 5 * CAP, 2_000_000, 100_000));
    vec![
        Phase {
            name: "loop",
            requests: looped,
            scored_from: 0,
        },
        Phase {
            name: "scan",
            requests: scan,
            scored_from,
        },
        Phase {
            name: "shift",
            requests: shift,
            scored_from: half,
        },
    ]
}

/// Hit ratio over the scored part, demand fill through `hit_or_fill`.
fn score(p: &Phase, mut hit_or_fill: impl FnMut(u64) -> bool) -> f64 {
    let mut hits = 0usize;
    for (i, &k) in p.requests.iter().enumerate() {
        if hit_or_fill(k) && i >= p.scored_from {
            hits += 1;
        }
    }
    hits as f64 / (p.requests.len() - p.scored_from) as f64
}

#[test]
fn policies_hold_against_lru_on_breaking_phases() {
    type Make = fn() -> Cache<u64, u64>;
    let policies: [(&str, Make); 3] = [
        ("S3-FIFO", || Cache::builder(CAP).shards(1).build().unwrap()),
        ("S3-FIFO+TinyLFU", || {
            Cache::builder(CAP)
                .shards(1)
                .admission(Admission::TinyLfu)
                .build()
                .unwrap()
        }),
        ("W-TinyLFU", || {
            Cache::builder(CAP)
                .shards(1)
                .policy(Policy::WTinyLfu)
                .build()
                .unwrap()
        }),
    ];
    for p in phases() {
        let mut lru = NaiveLru::new(CAP as usize);
        let base = score(&p, |k| lru.access(k));
        for (name, make) in policies {
            let cache = make();
            let r = score(&p, |k| {
                let hit = cache.get(&k).is_some();
                if !hit {
                    cache.insert(k, k).unwrap();
                }
                hit
            });
            cache.check_invariants();
            eprintln!(
                "{:<6} LRU {:6.2}%  {name:<16} {:6.2}%",
                p.name,
                100.0 * base,
                100.0 * r
            );
            assert!(
                r >= base - 0.01,
                "{name} on {}: {r:.4} is more than 1 pp below LRU's {base:.4}",
                p.name
            );
            if p.name != "shift" {
                assert!(
                    r > base,
                    "{name} on {}: {r:.4} does not beat LRU's {base:.4}",
                    p.name
                );
            }
        }
    }
}
