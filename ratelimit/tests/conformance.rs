//! One conformance suite for every backend of [`KeyedLimit`]: the same
//! cases run unchanged against the in-process `KeyedRateLimiter` and the
//! `RedisRateLimiter` (on a `redis-server` this test starts on a free
//! loopback port; without one the Redis half reports that it was skipped,
//! except under `CI=true`, where a missing server fails). Then the
//! equal-decisions replay: seeded streams of checks, peeks and costs at
//! injected times, against both backends, every decision and every number
//! equal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dispatchkit_ratelimit::{
    ClockMap, Decision, FixedWindow, Gcra, KeyedLimit, KeyedRateLimiter, Quota, RateLimitError,
    RedisAlgorithm, RedisConfig, RedisRateLimiter, SlidingCounter, SlidingLog,
};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

/// A backend under test: builds a fresh limiter (its own key space) for a
/// quota, with `_at` times measured from `t0`.
trait Backend {
    type L: KeyedLimit<str>;
    fn make(&self, quota: Quota, t0: Instant) -> Self::L;
}

struct InProcess;

impl Backend for InProcess {
    type L = KeyedRateLimiter<String, Gcra>;
    fn make(&self, quota: Quota, t0: Instant) -> Self::L {
        KeyedRateLimiter::new_at(Gcra::new(quota), t0)
    }
}

struct OnRedis {
    server: RedisServer,
    wall: SystemTime,
}

static PREFIXES: AtomicU64 = AtomicU64::new(0);

impl Backend for OnRedis {
    type L = RedisRateLimiter<Gcra>;
    fn make(&self, quota: Quota, t0: Instant) -> Self::L {
        let mut cfg = RedisConfig::new(self.server.url());
        cfg.io_timeout = Duration::from_secs(5);
        cfg.key_prefix = format!("conf{}", PREFIXES.fetch_add(1, Ordering::Relaxed));
        RedisRateLimiter::with_clock(Gcra::new(quota), cfg, ClockMap::new(t0, self.wall))
            .expect("valid config")
    }
}

/// The same backend on a 3-master Redis Cluster.
struct OnCluster {
    cluster: RedisCluster,
    wall: SystemTime,
}

impl Backend for OnCluster {
    type L = RedisRateLimiter<Gcra>;
    fn make(&self, quota: Quota, t0: Instant) -> Self::L {
        let mut cfg = RedisConfig::new(self.cluster.url());
        cfg.cluster = true;
        cfg.io_timeout = Duration::from_secs(5);
        cfg.key_prefix = format!("conf{}", PREFIXES.fetch_add(1, Ordering::Relaxed));
        RedisRateLimiter::with_clock(Gcra::new(quota), cfg, ClockMap::new(t0, self.wall))
            .expect("valid config")
    }
}

fn redis() -> Option<OnRedis> {
    let server = RedisServer::start()?;
    Some(OnRedis {
        server,
        wall: SystemTime::now(),
    })
}

// ------------------------------------------------------------- the suite

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn burst_then_refill(b: &impl Backend) {
    let t0 = Instant::now();
    let l = b.make(Quota::per_second(10).unwrap().with_burst(5).unwrap(), t0);
    for i in 0..5 {
        let d = l.check_n_at("alice", 1, t0).unwrap();
        assert!(d.is_allowed(), "grant {i} of the burst");
        assert_eq!(d.remaining(), 4 - i);
        assert_eq!(d.limit(), 5);
    }
    let d = l.check_n_at("alice", 1, t0).unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.retry_after(), Some(ms(100)));
    assert_eq!(d.retry_at(), Some(t0 + ms(100)));
    assert_eq!(d.reset_after(), ms(500));
    assert!(!l.check_n_at("alice", 1, t0 + ms(99)).unwrap().is_allowed());
    assert!(l.check_n_at("alice", 1, t0 + ms(100)).unwrap().is_allowed());
}

fn costs_are_all_or_nothing(b: &impl Backend) {
    let t0 = Instant::now();
    let l = b.make(Quota::per_second(10).unwrap().with_burst(10).unwrap(), t0);
    assert!(l.check_n_at("k", 7, t0).unwrap().is_allowed());
    let d = l.check_n_at("k", 4, t0).unwrap();
    assert!(!d.is_allowed(), "4 > the 3 left: nothing granted");
    assert_eq!(d.retry_after(), Some(ms(100)));
    assert_eq!(
        l.peek_n_at("k", 3, t0).unwrap().remaining(),
        3,
        "the denial charged nothing"
    );
    assert!(l.check_n_at("k", 3, t0).unwrap().is_allowed());
}

fn bad_costs_are_errors_and_change_nothing(b: &impl Backend) {
    let t0 = Instant::now();
    let l = b.make(Quota::per_second(10).unwrap().with_burst(3).unwrap(), t0);
    assert_eq!(l.capacity(), 3);
    assert!(matches!(
        l.check_n_at("k", 4, t0),
        Err(RateLimitError::InsufficientCapacity {
            cost: 4,
            capacity: 3
        })
    ));
    assert!(matches!(
        l.check_n_at("k", 0, t0),
        Err(RateLimitError::InvalidCost { cost: 0, .. })
    ));
    assert!(matches!(
        l.peek_n_at("k", 4, t0),
        Err(RateLimitError::InsufficientCapacity { .. })
    ));
    assert_eq!(l.peek_n_at("k", 1, t0).unwrap().remaining(), 3);
}

fn peeks_consume_nothing(b: &impl Backend) {
    let t0 = Instant::now();
    let l = b.make(Quota::per_minute(2).unwrap(), t0);
    for _ in 0..10 {
        assert!(l.peek_n_at("p", 2, t0).unwrap().is_allowed());
    }
    assert!(l.check_n_at("p", 2, t0).unwrap().is_allowed());
    let d = l.peek_n_at("p", 1, t0).unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.retry_after(), Some(Duration::from_secs(30)));
}

fn keys_are_separate_whatever_their_bytes(b: &impl Backend) {
    let t0 = Instant::now();
    let l = b.make(Quota::per_hour(1).unwrap(), t0);
    let keys = [
        "a", "a:b", "a%3Ab", "{a}", "}{", "", " ", "ü", "a:b:c", "dk:rl:a",
    ];
    for k in keys {
        assert!(
            l.check_n_at(k, 1, t0).unwrap().is_allowed(),
            "first use of {k:?}"
        );
    }
    for k in keys {
        assert!(
            !l.check_n_at(k, 1, t0).unwrap().is_allowed(),
            "second use of {k:?}"
        );
    }
}

fn an_older_now_counts_as_no_time_passed(b: &impl Backend) {
    let t0 = Instant::now() + Duration::from_secs(10);
    let l = b.make(Quota::per_second(1).unwrap(), t0);
    assert!(l.check_n_at("o", 1, t0 + ms(5000)).unwrap().is_allowed());
    // Earlier than the last check: no refill, nothing granted twice.
    let d = l.check_n_at("o", 1, t0 + ms(1000)).unwrap();
    assert!(!d.is_allowed());
    assert!(l.check_n_at("o", 1, t0 + ms(6000)).unwrap().is_allowed());
}

fn the_backend_clock_form_works(b: &impl Backend) {
    let l = b.make(Quota::per_hour(2).unwrap(), Instant::now());
    assert!(l.check("clock").unwrap().is_allowed());
    assert!(l.check_n("clock", 1).unwrap().is_allowed());
    let d = l.check_n("clock", 1).unwrap();
    assert!(!d.is_allowed());
    let wait = d.retry_after().expect("denied");
    assert!(
        wait > Duration::from_secs(1700) && wait <= Duration::from_secs(1800),
        "{wait:?}"
    );
    assert!(!l.peek_n("clock", 1).unwrap().is_allowed());
}

fn suite(b: &impl Backend) {
    burst_then_refill(b);
    costs_are_all_or_nothing(b);
    bad_costs_are_errors_and_change_nothing(b);
    peeks_consume_nothing(b);
    keys_are_separate_whatever_their_bytes(b);
    an_older_now_counts_as_no_time_passed(b);
    the_backend_clock_form_works(b);
}

#[test]
fn in_process_conforms() {
    suite(&InProcess);
}

#[test]
fn redis_conforms() {
    let Some(r) = redis() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    suite(&r);
}

// ------------------------------------------------------------ the replay

// The tests' seeded stream (SplitMix64).
use dispatchkit_test_support::SplitMix64 as Rng;

/// What a test compares of two decisions: all of it.
fn numbers(d: &Decision) -> (bool, u32, u32, u32, Option<Duration>, Duration, Duration) {
    (
        d.is_allowed(),
        d.limit(),
        d.cost(),
        d.remaining(),
        d.retry_after(),
        d.reset_after(),
        d.effective_window(),
    )
}

/// One seeded stream: checks and peeks of random costs on three keys at
/// times that step by zero, by less than one interval, by whole intervals
/// (the boundaries), and by long idle gaps; now and then a time from the
/// past. The two limiters share one instant ↔ wall-clock mapping whose
/// origin is a multiple of the window (Redis windows are aligned to the
/// Unix epoch, in-process ones to the origin).
fn replay<A: RedisAlgorithm>(seed: u64, alg: A, events: usize, url: &str, cluster: bool) {
    let quota = alg.quota();
    let t0 = Instant::now();
    let w_ms = (quota.period().as_millis() as u64).max(1);
    let wall_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(wall_ms / w_ms * w_ms);
    let local = KeyedRateLimiter::<String, A>::new_at(alg.clone(), t0);
    let mut cfg = RedisConfig::new(url);
    cfg.cluster = cluster;
    cfg.io_timeout = Duration::from_secs(5);
    cfg.key_prefix = format!("replay{}", PREFIXES.fetch_add(1, Ordering::Relaxed));
    let remote =
        RedisRateLimiter::with_clock(alg, cfg, ClockMap::new(t0, wall)).expect("valid config");
    let interval = (quota.period().as_nanos() as u64 / u64::from(quota.limit())).max(1);
    let cap = KeyedLimit::<str>::capacity(&local);
    let mut rng = Rng(seed);
    let mut now = Duration::ZERO;
    for i in 0..events {
        now += match rng.below(10) {
            0..=2 => Duration::ZERO,
            3..=5 => Duration::from_nanos(rng.below(interval)),
            6..=7 => Duration::from_nanos(interval * rng.below(3)),
            8 => Duration::from_nanos(interval * u64::from(cap) * rng.below(2)),
            _ => Duration::from_nanos(rng.below(1_000_000)),
        };
        let at = if rng.below(20) == 0 {
            t0 + now.saturating_sub(Duration::from_nanos(rng.below(interval * 2 + 1)))
        } else {
            t0 + now
        };
        let key = ["k0", "k1", "k2"][rng.below(3) as usize];
        let cost = 1 + rng.below(u64::from(cap) + 1) as u32;
        let peek = rng.below(5) == 0;
        let (a, b) = if peek {
            (
                local.peek_n_at(key, cost, at),
                remote.peek_n_at(key, cost, at),
            )
        } else {
            (
                local.check_n_at(key, cost, at),
                remote.check_n_at(key, cost, at),
            )
        };
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(
                numbers(&a),
                numbers(&b),
                "{:?} seed {seed}, event {i}: {} {key} cost {cost} at +{now:?}",
                remote.algorithm(),
                if peek { "peek" } else { "check" }
            ),
            (Err(a), Err(b)) => assert_eq!(a, b, "seed {seed}, event {i}"),
            (a, b) => panic!("seed {seed}, event {i}: in-process {a:?}, Redis {b:?}"),
        }
    }
}

fn quotas() -> [Quota; 5] {
    [
        Quota::per_second(10).unwrap().with_burst(5).unwrap(),
        Quota::per_second(3).unwrap(),
        Quota::per_minute(100).unwrap().with_burst(20).unwrap(),
        Quota::per_hour(1000).unwrap().with_burst(50).unwrap(),
        Quota::with_period(Duration::from_millis(7))
            .unwrap()
            .with_burst(3)
            .unwrap(),
    ]
}

#[test]
fn redis_gcra_decisions_equal_in_process_decisions() {
    let Some(r) = redis() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    for (i, q) in quotas().into_iter().enumerate() {
        for seed in 0..4 {
            replay(
                seed * 31 + i as u64,
                Gcra::new(q),
                1_000,
                &r.server.url(),
                false,
            );
        }
    }
}

/// The window algorithms, on windows of whole milliseconds (what Redis
/// accepts), at nanosecond times.
#[test]
fn redis_window_decisions_equal_in_process_decisions() {
    let Some(r) = redis() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let windows = [
        Quota::new(5, Duration::from_secs(1)).unwrap(),
        Quota::new(100, Duration::from_secs(60)).unwrap(),
        Quota::new(3, Duration::from_millis(7)).unwrap(),
        Quota::new(1000, Duration::from_secs(3600)).unwrap(),
    ];
    for (i, q) in windows.into_iter().enumerate() {
        for seed in 0..3 {
            let s = seed * 17 + i as u64;
            replay(s, FixedWindow::new(q), 600, &r.server.url(), false);
            replay(s, SlidingCounter::new(q), 600, &r.server.url(), false);
            replay(s, SlidingLog::new(q), 600, &r.server.url(), false);
        }
    }
}

#[test]
fn windows_that_redis_cannot_hold_exactly_are_refused() {
    let cfg = || RedisConfig::new("redis://127.0.0.1:1/");
    let sub_ms = Quota::new(2, Duration::from_micros(1500)).unwrap();
    assert!(matches!(
        RedisRateLimiter::new(FixedWindow::new(sub_ms), cfg()),
        Err(RateLimitError::InvalidQuota { name: "period", .. })
    ));
    let huge = Quota::new(u32::MAX, Duration::from_secs(86_400 * 365)).unwrap();
    assert!(matches!(
        RedisRateLimiter::new(SlidingCounter::new(huge), cfg()),
        Err(RateLimitError::InvalidQuota { name: "limit", .. })
    ));
    assert!(matches!(
        RedisRateLimiter::new(
            Gcra::new(sub_ms),
            RedisConfig {
                key_prefix: "a{b}".into(),
                ..cfg()
            }
        ),
        Err(RateLimitError::InvalidRule { .. })
    ));
}

/// A pipelined batch decides as the same checks one by one (the scripts
/// run in order on the server), and survives a flushed script cache.
#[test]
fn redis_check_many_equals_checks_one_by_one() {
    let Some(r) = redis() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let t0 = Instant::now();
    let q = Quota::per_second(10).unwrap().with_burst(3).unwrap();
    let local = InProcess.make(q, t0);
    let remote = r.make(q, t0);
    let keys: Vec<&str> = ["a", "b", "a", "c", "a", "a", "b"].to_vec();
    for round in 0..4u64 {
        if round == 2 {
            let mut c = r.server.connection().unwrap();
            redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query::<()>(&mut c)
                .unwrap();
        }
        let at = t0 + ms(150 * round);
        let batch = remote.check_many_at(&keys, 1, at).unwrap();
        let one_by_one: Vec<_> = keys
            .iter()
            .map(|k| local.check_n_at(*k, 1, at).unwrap())
            .collect();
        let n = |v: &[Decision]| v.iter().map(numbers).collect::<Vec<_>>();
        assert_eq!(n(&batch), n(&one_by_one), "round {round}");
    }
    assert!(remote.check_many_at::<str>(&[], 1, t0).unwrap().is_empty());
    assert!(matches!(
        remote.check_many_at(&keys, 4, t0),
        Err(RateLimitError::InsufficientCapacity { .. })
    ));
}

/// The in-process GCRA's own property-test streams (`src/tests/algorithms.rs`:
/// steps of -40..120 ns — sometimes backwards —, costs 1..12, 15 % peeks;
/// limits 1..8 per 10, 37, 100 or 240 ns, bursts 1..10), replayed through
/// both backends: every verdict and every number equal. The test owns its
/// server (stopped when it returns) and drives proptest's runner itself.
#[test]
fn redis_gcra_replays_the_model_streams_as_in_process() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let ops = prop::collection::vec((-40i64..120, 1u32..12, prop::bool::weighted(0.15)), 1..80);
    let streams = (
        1u32..8,
        prop::sample::select(vec![10u64, 37, 100, 240]),
        1u32..10,
        ops,
    );
    let mut runner = TestRunner::new(Config {
        cases: dispatchkit_test_support::cases(48),
        source_file: Some(file!()),
        ..Config::default()
    });
    let result = runner.run(&streams, |(limit, period, burst, ops)| {
        let q = Quota::new(limit, Duration::from_nanos(period))
            .and_then(|q| q.with_burst(burst))
            .unwrap();
        let t0 = Instant::now();
        let local = KeyedRateLimiter::<String, Gcra>::new_at(Gcra::new(q), t0);
        let mut cfg = RedisConfig::new(server.url());
        cfg.key_prefix = format!("model{}", PREFIXES.fetch_add(1, Ordering::Relaxed));
        cfg.io_timeout = Duration::from_secs(5);
        let remote =
            RedisRateLimiter::with_clock(Gcra::new(q), cfg, ClockMap::new(t0, SystemTime::now()))
                .unwrap();
        let mut now: i64 = 0;
        for (i, &(step, cost, peek)) in ops.iter().enumerate() {
            now = (now + step).max(0);
            let at = t0 + Duration::from_nanos(now as u64);
            let (a, b) = if peek {
                (
                    local.peek_n_at("k", cost, at),
                    remote.peek_n_at("k", cost, at),
                )
            } else {
                (
                    local.check_n_at("k", cost, at),
                    remote.check_n_at("k", cost, at),
                )
            };
            match (a, b) {
                (Ok(a), Ok(b)) => prop_assert_eq!(numbers(&a), numbers(&b), "op {}", i),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "op {}: {:?} vs {:?}", i, a, b),
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ------------------------------------------------------- on a real Cluster

/// The conformance suite, the equal-decision replays (every algorithm) and
/// a batch across slots, on a local 3-master Redis Cluster: each key's
/// script runs on the node of its slot (the client follows `MOVED`).
#[test]
fn redis_cluster_conforms_and_decides_as_in_process() {
    let Some(cluster) = RedisCluster::start() else {
        eprintln!("skipped: no Redis Cluster");
        return;
    };
    let c = OnCluster {
        cluster,
        wall: SystemTime::now(),
    };
    suite(&c);
    let url = c.cluster.url();
    for (i, q) in quotas().into_iter().enumerate() {
        replay(i as u64, Gcra::new(q), 400, &url, true);
    }
    let w = Quota::new(5, Duration::from_secs(1)).unwrap();
    replay(3, FixedWindow::new(w), 400, &url, true);
    replay(4, SlidingCounter::new(w), 400, &url, true);
    replay(5, SlidingLog::new(w), 400, &url, true);
    // A batch whose keys live on different nodes decides as one by one.
    let t0 = Instant::now();
    let q = Quota::per_second(10).unwrap().with_burst(3).unwrap();
    let (local, remote) = (InProcess.make(q, t0), c.make(q, t0));
    let keys: Vec<&str> = ["a", "b", "c", "d", "e", "a", "a", "a"].to_vec();
    let batch = remote.check_many_at(&keys, 1, t0).unwrap();
    let one_by_one: Vec<_> = keys
        .iter()
        .map(|k| local.check_n_at(*k, 1, t0).unwrap())
        .collect();
    let n = |v: &[Decision]| v.iter().map(numbers).collect::<Vec<_>>();
    assert_eq!(n(&batch), n(&one_by_one));
}
