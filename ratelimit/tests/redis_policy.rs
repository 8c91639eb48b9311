//! Multi-rule policies on Redis decide as the in-process `PolicyLimiter`:
//! one conformance run through the `PolicyLimit` trait against both
//! backends, and seeded replays of requests (several subjects, kinds,
//! endpoints and tiers, checks and peeks, random costs, times stepping
//! over window and interval boundaries) through a table that mixes all
//! four algorithms: every decision equal — allowed, the reported rule, its
//! numbers. A real `redis-server` on a free loopback port; skipped with a
//! note without one (a failure under `CI=true`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dispatchkit_ratelimit::{
    AlgorithmKind, ClockMap, KeyKind, Limit, PolicyDecision, PolicyLimit, PolicyLimiter,
    RateLimitError, RedisConfig, RedisPolicyLimiter, Request, RuleSet, RuleTable, Tier, Window,
};
use dispatchkit_test_support::redis_server::{RedisCluster, RedisServer};

static PREFIXES: AtomicU64 = AtomicU64::new(0);

fn w(s: &str) -> Window {
    s.parse().expect("a window")
}

/// The seed's shape: per user hourly + daily buckets, an endpoint with a
/// per-second window and a sliding log, IPs by sliding counter, premium
/// users with a bigger burst, and an endpoint with millisecond windows
/// (where sub-millisecond times decide).
fn table() -> RuleTable {
    RuleTable {
        rules: vec![
            RuleSet {
                kind: Some(KeyKind::User),
                limits: vec![
                    Limit::new(20, w("minute")).with_burst(5),
                    Limit::new(100, w("hour")),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::User),
                tier: Some(Tier::Premium),
                limits: vec![Limit::new(60, w("minute")).with_burst(15)],
                ..RuleSet::default()
            },
            RuleSet {
                endpoint: Some("/v1/quotes".into()),
                limits: vec![
                    Limit::new(4, w("second")).with_algorithm(AlgorithmKind::FixedWindow),
                    Limit::new(10, w("10s")).with_algorithm(AlgorithmKind::SlidingLog),
                    Limit::new(30, w("minute")),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                endpoint: Some("/v1/ping".into()),
                limits: vec![
                    Limit::new(3, w("8ms")).with_algorithm(AlgorithmKind::SlidingCounter),
                    Limit::new(5, w("16ms")).with_algorithm(AlgorithmKind::SlidingLog),
                ],
                ..RuleSet::default()
            },
            RuleSet {
                kind: Some(KeyKind::Ip),
                limits: vec![
                    Limit::new(8, w("second")).with_algorithm(AlgorithmKind::SlidingCounter),
                    Limit::new(50, w("minute")).with_algorithm(AlgorithmKind::FixedWindow),
                ],
                ..RuleSet::default()
            },
        ],
    }
}

fn redis_limiter(server: &RedisServer, t0: Instant, wall: SystemTime) -> RedisPolicyLimiter {
    limiter_at(&server.url(), false, t0, wall)
}

fn limiter_at(url: &str, cluster: bool, t0: Instant, wall: SystemTime) -> RedisPolicyLimiter {
    let mut cfg = RedisConfig::new(url);
    cfg.cluster = cluster;
    cfg.io_timeout = Duration::from_secs(5);
    cfg.key_prefix = format!("pol{}", PREFIXES.fetch_add(1, Ordering::Relaxed));
    RedisPolicyLimiter::with_clock(&table(), cfg, ClockMap::new(t0, wall)).expect("valid table")
}

/// A wall clock at a whole day, so that every window of the table (which
/// all divide a day) starts at the same instants on both backends.
fn aligned_wall() -> SystemTime {
    let day = 86_400;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now / day * day)
}

type Numbers = (
    bool,
    Option<String>,
    Option<(String, u32, u32, Option<Duration>, Duration, Duration)>,
);

fn numbers(d: &PolicyDecision) -> Numbers {
    (
        d.is_allowed(),
        d.denied_by().map(str::to_string),
        d.rule().map(|(p, x)| {
            (
                p.name.as_str().to_string(),
                x.limit(),
                x.remaining(),
                x.retry_after(),
                x.reset_after(),
                x.effective_window(),
            )
        }),
    )
}

fn conformance(l: &impl PolicyLimit<u64>, t0: Instant) {
    let user = |key: &'static u64| Request {
        tier: None,
        endpoint: "/v1/rides",
        kind: KeyKind::User,
        key,
    };
    // The burst of 5, then the per-minute bucket denies.
    for i in 0..5 {
        assert!(
            l.check_at(&user(&1), 1, t0).unwrap().is_allowed(),
            "grant {i}"
        );
    }
    let d = l.check_at(&user(&1), 1, t0).unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.denied_by(), Some("20-per-minute"));
    assert_eq!(
        d.decision().unwrap().retry_after(),
        Some(Duration::from_secs(3))
    );
    // All or nothing: a cost that one rule cannot take charges none.
    let q = |key: &'static u64| Request {
        tier: None,
        endpoint: "/v1/quotes",
        kind: KeyKind::ApiKey,
        key,
    };
    assert!(l.check_at(&q(&7), 3, t0).unwrap().is_allowed());
    let d = l.check_at(&q(&7), 2, t0).unwrap();
    assert!(!d.is_allowed(), "the fixed window holds 1 more, not 2");
    assert_eq!(d.denied_by(), Some("4-per-second"));
    assert!(
        l.peek_at(&q(&7), 1, t0).unwrap().is_allowed(),
        "nothing was charged"
    );
    // Bad costs.
    assert!(matches!(
        l.check_at(&q(&7), 0, t0),
        Err(RateLimitError::InvalidCost { .. })
    ));
    assert!(matches!(
        l.check_at(&q(&7), 5, t0),
        Err(RateLimitError::InsufficientCapacity {
            cost: 5,
            capacity: 4
        })
    ));
    // The backend's clock form.
    assert!(l.check(&user(&99), 1).unwrap().is_allowed());
    assert!(l.peek(&user(&99), 1).unwrap().is_allowed());
}

#[test]
fn in_process_policy_conforms() {
    let t0 = Instant::now();
    conformance(&PolicyLimiter::<u64>::new_at(&table(), t0).unwrap(), t0);
}

#[test]
fn redis_policy_conforms() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let t0 = Instant::now();
    conformance(&redis_limiter(&server, t0, SystemTime::now()), t0);
}

// The tests' seeded stream (SplitMix64).
use dispatchkit_test_support::SplitMix64 as Rng;

#[test]
fn redis_policy_decisions_equal_in_process_decisions() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    replay_requests(6, 800, |t0, wall| redis_limiter(&server, t0, wall));
}

/// Seeded streams of requests through the in-process limiter and the one
/// `remote` builds: every decision equal.
fn replay_requests(
    seeds: u64,
    events: usize,
    remote: impl Fn(Instant, SystemTime) -> RedisPolicyLimiter,
) {
    const KEYS: [u64; 4] = [1, 2, 3, 4];
    for seed in 0..seeds {
        let t0 = Instant::now();
        let local = PolicyLimiter::<u64>::new_at(&table(), t0).unwrap();
        let remote = remote(t0, aligned_wall());
        let mut rng = Rng(seed);
        let mut now = Duration::ZERO;
        for i in 0..events {
            now += match rng.below(10) {
                0..=3 => Duration::ZERO,
                4..=6 => Duration::from_nanos(rng.below(400_000_000)),
                7 => Duration::from_nanos(rng.below(20_000_000)),
                8 => Duration::from_secs(rng.below(4)),
                _ => Duration::from_secs(rng.below(120)),
            };
            let at = if rng.below(25) == 0 {
                t0 + now.saturating_sub(Duration::from_millis(rng.below(2_000)))
            } else {
                t0 + now
            };
            let key = &KEYS[rng.below(4) as usize];
            let kind = [KeyKind::User, KeyKind::Ip, KeyKind::ApiKey][rng.below(3) as usize];
            let tier = [None, Some(Tier::Free), Some(Tier::Premium)][rng.below(3) as usize];
            let endpoint = ["/v1/rides", "/v1/quotes", "/v1/ping"][rng.below(3) as usize];
            let req = Request {
                tier,
                endpoint,
                kind,
                key,
            };
            let cost = 1 + rng.below(5) as u32;
            let peek = rng.below(6) == 0;
            let (a, b) = if peek {
                (
                    local.peek_at(&req, cost, at),
                    remote.peek_at(&req, cost, at),
                )
            } else {
                (
                    local.check_at(&req, cost, at),
                    remote.check_at(&req, cost, at),
                )
            };
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(
                    numbers(&a),
                    numbers(&b),
                    "seed {seed}, event {i}: {kind:?} {key} {endpoint} {tier:?} cost {cost} peek {peek} at +{now:?}"
                ),
                (Err(a), Err(b)) => assert_eq!(a, b, "seed {seed}, event {i}"),
                (a, b) => panic!("seed {seed}, event {i}: in-process {a:?}, Redis {b:?}"),
            }
        }
    }
}

/// The sliding counter's verdict can turn inside a millisecond: with 3
/// grants in the previous 8 ms window, 2 more fit from 5⅓ ms into the
/// next one. Each offset on a fresh key, both backends equal, and the
/// verdict does change across the offsets (so the case is exercised).
#[test]
fn redis_policy_decides_inside_a_millisecond_as_in_process() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let t0 = Instant::now();
    let local = PolicyLimiter::<u64>::new_at(&table(), t0).unwrap();
    let remote = redis_limiter(&server, t0, aligned_wall());
    let mut verdicts = Vec::new();
    for (i, us) in [13_000u64, 13_200, 13_333, 13_334, 13_500]
        .into_iter()
        .enumerate()
    {
        let key = 1_000 + i as u64;
        let req = Request {
            tier: None,
            endpoint: "/v1/ping",
            kind: KeyKind::ApiKey,
            key: &key,
        };
        for _ in 0..3 {
            let (a, b) = (
                local.check_at(&req, 1, t0).unwrap(),
                remote.check_at(&req, 1, t0).unwrap(),
            );
            assert_eq!(numbers(&a), numbers(&b));
            assert!(a.is_allowed());
        }
        let at = t0 + Duration::from_micros(us);
        let (a, b) = (
            local.check_at(&req, 2, at).unwrap(),
            remote.check_at(&req, 2, at).unwrap(),
        );
        assert_eq!(numbers(&a), numbers(&b), "at {us} µs");
        verdicts.push(a.is_allowed());
    }
    assert_eq!(verdicts, [false, false, false, true, true]);
}

/// The same replays on a local 3-master Redis Cluster: each subject's keys
/// share its hash tag, so its script runs whole on one node.
#[test]
fn redis_cluster_policy_decisions_equal_in_process_decisions() {
    let Some(cluster) = RedisCluster::start() else {
        eprintln!("skipped: no Redis Cluster");
        return;
    };
    let url = cluster.url();
    replay_requests(3, 500, |t0, wall| limiter_at(&url, true, t0, wall));
}
