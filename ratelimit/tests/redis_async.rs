//! The async checks (feature `tokio`) on a real `redis-server`: the same
//! decisions as in-process over a seeded stream, exactly the burst granted
//! to many concurrent tasks sharing the process's one multiplexed
//! connection, and a stopped server answered with a typed error within the
//! timeouts, not a stalled task. Skipped with a note without `redis-server`
//! (a failure under `CI=true`).

use std::time::{Duration, Instant, SystemTime};

use dispatchkit_ratelimit::{
    BackendErrorKind, ClockMap, Gcra, KeyedRateLimiter, Quota, RateLimitError, RedisConfig,
    RedisRateLimiter,
};
use dispatchkit_test_support::redis_server::RedisServer;

fn remote(server: &RedisServer, prefix: &str, q: Quota, t0: Instant) -> RedisRateLimiter<Gcra> {
    let mut cfg = RedisConfig::new(server.url());
    cfg.key_prefix = prefix.into();
    cfg.io_timeout = Duration::from_millis(500);
    RedisRateLimiter::with_clock(Gcra::new(q), cfg, ClockMap::new(t0, SystemTime::now())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_checks_decide_as_in_process() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let t0 = Instant::now();
    let q = Quota::per_second(20).unwrap().with_burst(4).unwrap();
    let local = KeyedRateLimiter::<String, _>::new_at(Gcra::new(q), t0);
    let r = remote(&server, "async-eq", q, t0);
    let mut x = 7u64;
    let mut now = Duration::ZERO;
    for i in 0..600 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now += Duration::from_micros(x % 120_000);
        let key = ["a", "b"][(x >> 20) as usize % 2].to_string();
        let cost = 1 + (x >> 30) as u32 % 5;
        let at = t0 + now;
        let (a, b) = (
            local.check_n_at(&key, cost, at),
            r.check_n_at_async(&key, cost, at).await,
        );
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(
                (
                    a.is_allowed(),
                    a.remaining(),
                    a.retry_after(),
                    a.reset_after()
                ),
                (
                    b.is_allowed(),
                    b.remaining(),
                    b.retry_after(),
                    b.reset_after()
                ),
                "event {i}"
            ),
            (Err(a), Err(b)) => assert_eq!(a, b, "event {i}"),
            (a, b) => panic!("event {i}: {a:?} vs {b:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_get_exactly_the_burst() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let r = std::sync::Arc::new(remote(
        &server,
        "async-burst",
        Quota::per_hour(50).unwrap(),
        Instant::now(),
    ));
    let tasks: Vec<_> = (0..400)
        .map(|_| {
            let r = std::sync::Arc::clone(&r);
            tokio::spawn(async move { r.check_n_async("hot", 1).await.unwrap().is_allowed() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 50);
    assert!(!r.peek_n_async("hot", 1).await.unwrap().is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_a_typed_error_not_a_stalled_task() {
    let Some(mut server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let r = remote(
        &server,
        "async-down",
        Quota::per_second(10).unwrap(),
        Instant::now(),
    );
    assert!(r.check_n_async("k", 1).await.unwrap().is_allowed());
    server.stop();
    for what in ["the open connection", "a new connection"] {
        let t = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(5), r.check_n_async("k", 1))
            .await
            .unwrap_or_else(|_| panic!("{what}: stalled"));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: {:?}",
            t.elapsed()
        );
        match res {
            Err(RateLimitError::Unavailable { kind, .. }) => {
                assert!(
                    matches!(kind, BackendErrorKind::Refused | BackendErrorKind::Other),
                    "{what}: {kind:?}"
                )
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    server.restart();
    assert!(r.check_n_async("k", 1).await.unwrap().is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_policy_checks_decide_as_blocking_ones() {
    use dispatchkit_ratelimit::{
        KeyKind, Limit, PolicyLimit, RedisPolicyLimiter, Request, RuleSet, RuleTable,
    };
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let table = RuleTable {
        rules: vec![RuleSet {
            limits: vec![
                Limit::new(5, "minute".parse().unwrap()),
                Limit::new(7, "hour".parse().unwrap()),
            ],
            ..RuleSet::default()
        }],
    };
    let cfg = |p: &str| {
        let mut c = RedisConfig::new(server.url());
        c.key_prefix = p.into();
        c
    };
    let t0 = Instant::now();
    let wall = SystemTime::now();
    let blocking =
        RedisPolicyLimiter::with_clock(&table, cfg("pol-sync"), ClockMap::new(t0, wall)).unwrap();
    let nonblocking =
        RedisPolicyLimiter::with_clock(&table, cfg("pol-async"), ClockMap::new(t0, wall)).unwrap();
    for i in 0..12u64 {
        let at = t0 + Duration::from_secs(i * 7);
        let req = Request {
            tier: None,
            endpoint: "/x",
            kind: KeyKind::User,
            key: &1u64,
        };
        let a = blocking.check_at(&req, 1, at).unwrap();
        let b = nonblocking.check_at_async(&req, 1, at).await.unwrap();
        assert_eq!(
            (
                a.is_allowed(),
                a.denied_by(),
                a.decision().map(|d| (d.remaining(), d.retry_after()))
            ),
            (
                b.is_allowed(),
                b.denied_by(),
                b.decision().map(|d| (d.remaining(), d.retry_after()))
            ),
            "check {i}"
        );
    }
    let req = Request {
        tier: None,
        endpoint: "/x",
        kind: KeyKind::User,
        key: &2u64,
    };
    assert!(nonblocking.check_async(&req, 1).await.unwrap().is_allowed());
    assert!(nonblocking.peek_async(&req, 1).await.unwrap().is_allowed());
}
