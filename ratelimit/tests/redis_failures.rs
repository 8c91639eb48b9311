//! What a Redis-backed limiter does when Redis cannot answer, against a
//! real `redis-server` that the tests stop, freeze, keep busy and turn
//! into a read-only replica mid-test: a typed `Unavailable` error (fail
//! closed, the default) or an allowing fallback decision (fail open),
//! within the configured timeouts, never a panic or a hang; and recovery
//! once the server is back. Skipped with a note without `redis-server`
//! (a failure under `CI=true`).

use std::time::{Duration, Instant};

use dispatchkit_ratelimit::{
    BackendErrorKind, FailMode, Gcra, KeyedLimit, Quota, RateLimitError, RedisConfig,
    RedisRateLimiter,
};
use dispatchkit_test_support::redis_server::RedisServer;
use dispatchkit_test_support::within;

const IO: Duration = Duration::from_millis(100);
const CONNECT: Duration = Duration::from_millis(200);
/// The most a failing call may take: a connect and one command's timeout,
/// plus scheduling slack on a loaded 2-core machine.
const BOUND: Duration = Duration::from_millis(1_000);

fn limiter(server: &RedisServer, mode: FailMode) -> RedisRateLimiter<Gcra> {
    let mut cfg = RedisConfig::new(server.url());
    cfg.io_timeout = IO;
    cfg.connect_timeout = CONNECT;
    cfg.on_unavailable = mode;
    RedisRateLimiter::new(Gcra::new(Quota::per_second(100).unwrap()), cfg).unwrap()
}

/// Asserts the limiter is unavailable: closed → `Unavailable` error, open →
/// an allowed fallback; within [`BOUND`].
fn assert_unavailable(
    l: &RedisRateLimiter<Gcra>,
    mode: FailMode,
    expect: BackendErrorKind,
    what: &str,
) {
    let t = Instant::now();
    let r = l.check("k");
    let took = t.elapsed();
    assert!(took < BOUND, "{what}: took {took:?}");
    match (mode, r) {
        (
            FailMode::Closed,
            Err(RateLimitError::Unavailable {
                backend: "redis",
                kind,
                reason,
            }),
        ) => {
            assert!(!reason.is_empty(), "{what}: a reason");
            assert_eq!(kind, expect, "{what}: {reason}");
        }
        (FailMode::Open, Ok(d)) => {
            assert!(d.is_allowed() && d.is_fallback(), "{what}: {d:?}");
            assert_eq!(d.remaining(), d.limit() - 1);
        }
        (m, r) => panic!("{what}, {m:?}: {r:?}"),
    }
}

fn assert_serving(l: &RedisRateLimiter<Gcra>, what: &str) {
    let d = l.check("k").unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(d.is_allowed() && !d.is_fallback(), "{what}: {d:?}");
}

#[test]
fn a_stopped_server_fails_closed_or_open_and_a_restart_recovers() {
    let Some(mut server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    for mode in [FailMode::Closed, FailMode::Open] {
        let l = limiter(&server, mode);
        assert_serving(&l, "before the stop");
        server.stop();
        // The pooled connection is dead and new ones are refused.
        assert_unavailable(
            &l,
            mode,
            BackendErrorKind::Refused,
            "stopped (pooled connection)",
        );
        assert_unavailable(
            &l,
            mode,
            BackendErrorKind::Refused,
            "stopped (connection refused)",
        );
        server.restart();
        assert_serving(&l, "after the restart");
    }
}

#[test]
fn a_frozen_server_times_out_instead_of_blocking() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let l = limiter(&server, FailMode::Closed);
    assert_serving(&l, "before the pause");
    server.pause();
    let l = within(10, move || {
        assert_unavailable(
            &l,
            FailMode::Closed,
            BackendErrorKind::Timeout,
            "paused (pooled connection)",
        );
        assert_unavailable(
            &l,
            FailMode::Closed,
            BackendErrorKind::Timeout,
            "paused (new connection)",
        );
        l
    });
    server.resume();
    assert_serving(&l, "after the resume");
}

#[test]
fn a_busy_server_is_unavailable_until_the_script_is_killed() {
    let Some(server) = RedisServer::start_with(&["--busy-reply-threshold", "20"]) else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let l = limiter(&server, FailMode::Closed);
    assert_serving(&l, "before the busy script");
    // Another client runs a script that never ends.
    let mut blocker = server.connection().unwrap();
    let busy = std::thread::spawn(move || {
        redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query::<()>(&mut blocker)
            .is_err()
    });
    // Past the threshold every other command answers BUSY.
    let mut admin = server.connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redis::cmd("PING").query::<String>(&mut admin) {
            Err(e) if e.to_string().contains("BUSY") => break,
            _ => assert!(Instant::now() < deadline, "the server never became busy"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    match l.check("k") {
        Err(RateLimitError::Unavailable { reason, .. }) => {
            assert!(reason.contains("BUSY"), "{reason}")
        }
        other => panic!("busy server: {other:?}"),
    }
    assert!(t.elapsed() < BOUND);
    redis::cmd("SCRIPT")
        .arg("KILL")
        .query::<()>(&mut admin)
        .unwrap();
    assert!(busy.join().unwrap(), "the killed script reports an error");
    assert_serving(&l, "after SCRIPT KILL");
}

#[test]
fn a_read_only_replica_is_unavailable_for_checks() {
    let (Some(primary), Some(replica)) = (RedisServer::start(), RedisServer::start()) else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let mut c = replica.connection().unwrap();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query::<()>(&mut c)
        .unwrap();
    let l = limiter(&replica, FailMode::Closed);
    match l.check("k") {
        Err(RateLimitError::Unavailable { kind, reason, .. }) => {
            assert_eq!(kind, BackendErrorKind::ReadOnly, "{reason}")
        }
        other => panic!("read-only replica: {other:?}"),
    }
    // Promoted (as after a failover), it serves.
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query::<()>(&mut c)
        .unwrap();
    assert_serving(&l, "after the promotion");
}
