//! Hit ratio on the ARC paper's OLTP trace (Megiddo & Modha, "ARC: A
//! Self-Tuning, Low Overhead Replacement Cache", USENIX FAST 2003), replayed
//! with demand fill (`get`; on a miss, `insert`): the cache must do at least
//! as well as a plain LRU of the same capacity — the naive twin below, which
//! reproduces the paper's LRU column exactly.
//!
//! `tests/data/OLTP.lis.zst` is the trace as redistributed by
//! moka-rs/cache-trace (sha256 2a81096104b6de28…8d3531), decompressed with
//! the pure-Rust `ruzstd` so the test needs no system zstd.

use std::io::Read;

#[path = "common/naive_lru.rs"]
mod naive_lru;
use naive_lru::NaiveLru;

use dispatchkit_cache::{Admission, Cache, Policy};

/// The trace's keys, one per request (every OLTP line has count 1, but
/// runs are expanded as the format says).
fn oltp() -> Vec<u64> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/OLTP.lis.zst"
    ))
    .expect("committed trace");
    let mut text = String::new();
    ruzstd::decoding::StreamingDecoder::new(&bytes[..])
        .expect("zstd frame")
        .read_to_string(&mut text)
        .expect("utf-8 trace");
    let mut keys = Vec::with_capacity(914_145);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let start: u64 = f.next().and_then(|s| s.parse().ok()).expect("start");
        let count: u64 = f.next().and_then(|s| s.parse().ok()).expect("count");
        keys.extend(start..start + count);
    }
    keys
}

fn lru_ratio(trace: &[u64], cap: usize) -> f64 {
    let mut lru = NaiveLru::new(cap);
    trace.iter().filter(|&&k| lru.access(k)).count() as f64 / trace.len() as f64
}

fn cache_ratio(trace: &[u64], cache: &Cache<u64, u64>) -> f64 {
    let mut hits = 0usize;
    for &k in trace {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k).expect("unit weight fits");
        }
    }
    cache.check_invariants();
    assert!(cache.len() as u64 <= cache.capacity());
    let s = cache.stats();
    assert_eq!(s.hits as usize, hits);
    assert_eq!((s.hits + s.misses) as usize, trace.len());
    hits as f64 / trace.len() as f64
}

#[test]
fn naive_lru_reproduces_the_paper() {
    let trace = oltp();
    assert_eq!(trace.len(), 914_145);
    assert!((lru_ratio(&trace, 1000) - 0.328309).abs() < 5e-7);
    assert!((lru_ratio(&trace, 2000) - 0.424697).abs() < 5e-7);
}

#[test]
fn default_policy_beats_lru_on_oltp() {
    let trace = oltp();
    for cap in [1000u64, 2000] {
        let lru = lru_ratio(&trace, cap as usize);
        let plain = cache_ratio(
            &trace,
            &Cache::builder(cap).record_stats(true).build().unwrap(),
        );
        let admit = cache_ratio(
            &trace,
            &Cache::builder(cap)
                .record_stats(true)
                .admission(Admission::TinyLfu)
                .build()
                .unwrap(),
        );
        let one_shard = cache_ratio(
            &trace,
            &Cache::builder(cap)
                .record_stats(true)
                .shards(1)
                .build()
                .unwrap(),
        );
        eprintln!(
            "OLTP cap {cap}: LRU {lru:.6}  S3-FIFO {plain:.6}  +TinyLFU {admit:.6}  1 shard {one_shard:.6}"
        );
        assert!(plain >= lru, "S3-FIFO {plain} < LRU {lru} at {cap}");
        assert!(admit >= lru, "S3-FIFO+TinyLFU {admit} < LRU {lru} at {cap}");
        assert!(
            one_shard >= lru,
            "1-shard S3-FIFO {one_shard} < LRU {lru} at {cap}"
        );
    }
}

#[test]
fn exact_lru_policy_equals_the_twin() {
    let trace = oltp();
    let trace = &trace[..200_000];
    for cap in [1000u64, 2000] {
        let cache = Cache::builder(cap)
            .policy(Policy::Lru)
            .shards(1)
            .build()
            .unwrap();
        let mut twin = NaiveLru::new(cap as usize);
        for (i, &k) in trace.iter().enumerate() {
            let hit = cache.get(&k).is_some();
            if !hit {
                cache.insert(k, k).unwrap();
            }
            assert_eq!(
                hit,
                twin.access(k),
                "request {i} (key {k}) differs at cap {cap}"
            );
        }
        cache.check_invariants();
    }
}
