//! The Redis backends beside what a user would otherwise run on the same
//! server, in the same run: `redis_limiter_check` puts dispatchkit's GCRA
//! script (one `EVALSHA` per check) beside the seed's own limiter, a fixed
//! window as `INCR ratelimit:{user}:{window}` then `EXPIRE` (two round
//! trips), over Zipf keys.
//!
//! - **sequential**: one connection, each check awaited before the next —
//!   what a request handler does. Time per check.
//! - **pipelined64**: 64 checks per round trip (dispatchkit's `check_many`,
//!   a pipeline of 64 `INCR` + `EXPIRE` pairs for the seed's).
//!
//! `redis_tier_get` puts the cache's Redis tier (L1 hit, Redis L2 hit, L3
//! load) beside the in-process tier.
//!
//! `redis_policy_2rules` puts a two-rule policy (one script call, all or
//! nothing) beside two independent GCRA checks (two round trips).
//!
//! Beside the timings the bench prints (and records for BENCHMARKS.md) the
//! p50 / p99 latency of one sequential check of each, over loopback with
//! the server on the same two cores.
//!
//! The server is a throwaway `redis-server` on a free loopback port,
//! persistence off; without one the bench prints a note and measures
//! nothing.

mod common;
#[path = "common/notes.rs"]
mod notes;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use dispatchkit::cache::{
    Cache, Postcard, RedisTier, RedisTierConfig, SharedTier, Store, Tier, TierConfig,
};
use dispatchkit::ratelimit::{
    Gcra, KeyKind, KeyedLimit, LeasedLimiter, Limit, PolicyLimit, Quota, RedisConfig,
    RedisPolicyLimiter, RedisRateLimiter, Request, RuleSet, RuleTable,
};
use dispatchkit::workload::zipf_keys;
use dispatchkit_test_support::redis_server::RedisServer;

const KEYS: usize = 1 << 16;
const PIPE: usize = 64;

/// 1,000 requests per minute per user (the fixed window's limit; GCRA's
/// rate and burst), so both sides grant most checks.
fn quota() -> Quota {
    Quota::per_minute(1_000).expect("valid quota")
}

/// The seed's fixed window: `INCR` the window's counter, then `EXPIRE` it.
fn naive_check(con: &mut redis::Connection, user: u64, window: u64) -> bool {
    let key = format!("ratelimit:{user}:{window}");
    let n: u64 = redis::cmd("INCR").arg(&key).query(con).expect("INCR");
    let _: bool = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(60)
        .query(con)
        .expect("EXPIRE");
    n <= 1_000
}

fn naive_pipelined(con: &mut redis::Connection, users: &[u64], window: u64) -> usize {
    let mut pipe = redis::pipe();
    for u in users {
        let key = format!("ratelimit:{u}:{window}");
        pipe.cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(60)
            .ignore();
    }
    let counts: Vec<u64> = pipe.query(con).expect("pipeline");
    counts.iter().filter(|&&n| n <= 1_000).count()
}

fn window_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn latency(limiter: &RedisRateLimiter<Gcra>, con: &mut redis::Connection, keys: &[u64]) {
    const N: usize = 20_000;
    let mut dk = Vec::with_capacity(N);
    let mut naive = Vec::with_capacity(N);
    let window = window_now();
    for (i, k) in keys.iter().cycle().take(N).enumerate() {
        let t = Instant::now();
        black_box(limiter.check(k).expect("redis answers").is_allowed());
        dk.push(t.elapsed());
        let t = Instant::now();
        black_box(naive_check(con, *k + (i as u64 % 7) * KEYS as u64, window));
        naive.push(t.elapsed());
    }
    let (p50, p99) = percentiles(dk);
    let (n50, n99) = percentiles(naive);
    notes::line(
        "redis",
        &format!(
            "latency of one sequential check over loopback ({N} checks each, interleaved):\n  dispatchkit GCRA (EVALSHA)   p50 {:>6.1} µs  p99 {:>6.1} µs\n  naive INCR + EXPIRE          p50 {:>6.1} µs  p99 {:>6.1} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            n50.as_secs_f64() * 1e6,
            n99.as_secs_f64() * 1e6,
        ),
    );
}

fn limiter_check(c: &mut Criterion, server: &RedisServer, keys: &[u64]) {
    let mut cfg = RedisConfig::new(server.url());
    cfg.io_timeout = Duration::from_secs(5);
    let limiter = RedisRateLimiter::new(Gcra::new(quota()), cfg).expect("valid config");
    let mut con = server.connection().expect("connect");
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        latency(&limiter, &mut con, keys);
    }
    let mut g = c.benchmark_group("redis_limiter_check");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit_gcra", "sequential"), |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check(&keys[i]).expect("redis answers"))
        })
    });
    let window = window_now();
    g.bench_function(BenchmarkId::new("naive_incr_expire", "sequential"), |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(naive_check(&mut con, keys[i], window))
        })
    });
    g.throughput(Throughput::Elements(PIPE as u64));
    let chunks: Vec<Vec<&u64>> = keys.chunks(PIPE).map(|c| c.iter().collect()).collect();
    let mut j = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit_gcra", "pipelined64"), |b| {
        b.iter(|| {
            j = (j + 1) % chunks.len();
            black_box(limiter.check_many(&chunks[j], 1).expect("redis answers"))
        })
    });
    let owned: Vec<Vec<u64>> = keys.chunks(PIPE).map(<[u64]>::to_vec).collect();
    g.bench_function(BenchmarkId::new("naive_incr_expire", "pipelined64"), |b| {
        b.iter(|| {
            j = (j + 1) % owned.len();
            black_box(naive_pipelined(&mut con, &owned[j], window))
        })
    });
    g.finish();
}

/// `redis_policy_2rules`: the seed's user hourly + daily limits as one
/// policy (one script call checks and charges both, all or none) beside
/// two independent GCRA checks (two round trips, not atomic together).
fn policy_2rules(c: &mut Criterion, server: &RedisServer, keys: &[u64]) {
    let cfg = || {
        let mut cfg = RedisConfig::new(server.url());
        cfg.io_timeout = Duration::from_secs(5);
        cfg
    };
    let table = RuleTable {
        rules: vec![RuleSet {
            limits: vec![
                Limit::new(1000, "hour".parse().expect("a window")),
                Limit::new(10_000, "day".parse().expect("a window")),
            ],
            ..RuleSet::default()
        }],
    };
    let policy = RedisPolicyLimiter::new(&table, cfg()).expect("valid table");
    let hourly = RedisRateLimiter::new(
        Gcra::new(Quota::per_hour(1000).expect("valid quota")),
        RedisConfig {
            key_prefix: "h".into(),
            ..cfg()
        },
    )
    .expect("valid config");
    let daily = RedisRateLimiter::new(
        Gcra::new(Quota::new(10_000, Duration::from_secs(86_400)).expect("valid quota")),
        RedisConfig {
            key_prefix: "d".into(),
            ..cfg()
        },
    )
    .expect("valid config");
    let mut g = c.benchmark_group("redis_policy_2rules");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit_policy", "one_script"), |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let req = Request {
                tier: None,
                endpoint: "/v1/rides",
                kind: KeyKind::User,
                key: &keys[i],
            };
            black_box(policy.check(&req, 1).expect("redis answers").is_allowed())
        })
    });
    g.bench_function(BenchmarkId::new("two_gcra_checks", "two_scripts"), |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let h = hourly.check(&keys[i]).expect("redis answers").is_allowed();
            let d = daily.check(&keys[i]).expect("redis answers").is_allowed();
            black_box(h && d)
        })
    });
    g.finish();
}

/// `redis_leases`: checks through token leases over Zipf-distributed
/// tenants of one bucket (the quota, lease size and lifetime are set
/// below), on 1 and 2 threads; the over-grant bound is one lease per
/// process per key.
fn leases(c: &mut Criterion, server: &RedisServer) {
    const BATCH: u64 = 10_000;
    let mut cfg = RedisConfig::new(server.url());
    cfg.io_timeout = Duration::from_secs(5);
    cfg.key_prefix = "lease".into();
    let q = Quota::per_second(1_000_000)
        .and_then(|q| q.with_burst(10_000))
        .expect("valid quota");
    let remote = RedisRateLimiter::new(Gcra::new(q), cfg).expect("valid config");
    let leased = LeasedLimiter::new(remote, 1_000, Duration::from_secs(1)).expect("valid lease");
    let tenants: Vec<u64> = zipf_keys(1_000, 1.0, 1 << 16, 5).expect("zipf keys");
    notes::line(
        "redis",
        &format!(
            "leases: 1,000 tokens per round trip, 1 s to spend them; over-grant bound {} tokens per process per key",
            leased.max_overgrant_per_process()
        ),
    );
    let mut g = c.benchmark_group("redis_leases");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(BATCH));
    let run = |from: usize, n: u64| {
        let now = Instant::now();
        let mut granted = 0u64;
        for i in 0..n as usize {
            let k = &tenants[(from + i) % tenants.len()];
            granted += u64::from(leased.check_at(k, now).expect("redis answers").is_allowed());
        }
        granted
    };
    let mut at = 0usize;
    g.bench_function(BenchmarkId::new("dispatchkit_leased", "1t"), |b| {
        b.iter(|| {
            at = at.wrapping_add(BATCH as usize);
            black_box(run(at, BATCH))
        })
    });
    g.bench_function(BenchmarkId::new("dispatchkit_leased", "2t"), |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters * BATCH, |t, n| {
                black_box(run(t * 7_919, n));
            })
        })
    });
    g.finish();
}

/// An in-memory L3 (value = 2 × key, as the cache bench's) that never
/// fails: the tier group measures the tiers, not a database.
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

/// `redis_tier_get`: one GET through the tiers — an L1 hit, an L2 hit
/// (L1 too small to hold the cycled keys) and an L3 load (the key is
/// invalidated first) — on the Redis tier and, beside it, the in-process
/// `SharedTier`; plus the p50 / p99 of one Redis L2 hit.
fn tier_get(c: &mut Criterion, server: &RedisServer) {
    const CYCLE: u64 = 4_096;
    let mut cfg = RedisTierConfig::new(server.url());
    cfg.io_timeout = Duration::from_secs(5);
    let redis_tier =
        RedisTier::new(cfg, TierConfig::default(), MemStore, Postcard).expect("valid config");
    let local_tier = SharedTier::new(
        Cache::new(4 * CYCLE).expect("valid capacity"),
        MemStore,
        TierConfig::default(),
    )
    .expect("valid tier");
    let r_hot = redis_tier.instance(Cache::new(CYCLE * 2).expect("valid capacity"));
    let r_cold = redis_tier.instance(Cache::new(16).expect("valid capacity"));
    let l_hot = local_tier.instance(Cache::new(CYCLE * 2).expect("valid capacity"));
    let l_cold = local_tier.instance(Cache::new(16).expect("valid capacity"));
    for k in 0..CYCLE {
        let _ = Tier::get(&r_hot, &k);
        let _ = l_hot.get(&k);
    }
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        let mut t = Vec::with_capacity(20_000);
        for i in 0..20_000u64 {
            let k = i % CYCLE;
            let s = Instant::now();
            black_box(Tier::get(&r_cold, &k).expect("redis answers"));
            t.push(s.elapsed());
        }
        let (p50, p99) = percentiles(t);
        notes::line(
            "redis",
            &format!(
                "latency of one Redis L2 hit through the tiers (L1 miss, GET, decode): p50 {:.1} µs  p99 {:.1} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            ),
        );
    }
    let mut g = c.benchmark_group("redis_tier_get");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    let mut k = 0u64;
    let mut next = || {
        k = (k + 1) % CYCLE;
        k
    };
    g.bench_function(BenchmarkId::new("dispatchkit_redis", "l1_hit"), |b| {
        b.iter(|| black_box(Tier::get(&r_hot, &next())))
    });
    g.bench_function(BenchmarkId::new("dispatchkit_redis", "l2_hit"), |b| {
        b.iter(|| black_box(Tier::get(&r_cold, &next())))
    });
    g.bench_function(BenchmarkId::new("dispatchkit_redis", "l3_load"), |b| {
        b.iter(|| {
            let key = next() + 1_000_000;
            Tier::invalidate_at(&r_cold, &key, Instant::now());
            black_box(Tier::get(&r_cold, &key))
        })
    });
    g.bench_function(BenchmarkId::new("in_process_tier", "l1_hit"), |b| {
        b.iter(|| black_box(l_hot.get(&next())))
    });
    g.bench_function(BenchmarkId::new("in_process_tier", "l2_hit"), |b| {
        b.iter(|| black_box(l_cold.get(&next())))
    });
    g.bench_function(BenchmarkId::new("in_process_tier", "l3_load"), |b| {
        b.iter(|| {
            let key = next() + 1_000_000;
            l_cold.invalidate(&key);
            black_box(l_cold.get(&key))
        })
    });
    g.finish();
}

fn main() {
    let Some(server) = RedisServer::start() else {
        eprintln!("note: no redis-server on PATH; the Redis benches are skipped");
        return;
    };
    let keys = zipf_keys(100_000, 1.0, KEYS, 11).expect("zipf keys");
    let mut c = Criterion::default().configure_from_args();
    limiter_check(&mut c, &server, &keys);
    policy_2rules(&mut c, &server, &keys);
    leases(&mut c, &server);
    tier_get(&mut c, &server);
    c.final_summary();
}
