//! The point of the Redis backend: several OS processes (application
//! instances) share one limit. This test spawns itself twice as worker
//! processes (the `worker` test below, which does nothing unless
//! `DK_WORKER_URL` is set); both hammer the same keys on one real
//! `redis-server` at once, and the grants summed over both processes never
//! exceed what one limiter allows — and they do reach it (a test that could
//! not fail would also pass with nothing granted). Skipped with a note
//! without `redis-server` (a failure under `CI=true`).

use std::process::Command;
use std::time::Duration;

use dispatchkit_ratelimit::{
    FixedWindow, Gcra, KeyedLimit, Quota, RedisAlgorithm, RedisConfig, RedisRateLimiter,
    SlidingCounter, SlidingLog,
};
use dispatchkit_test_support::redis_server::RedisServer;

/// Checks per key per worker: far more than the limit, so the workers
/// contend for the last units.
const ATTEMPTS: usize = 400;
const KEYS: [&str; 3] = ["tenant-a", "tenant-b", "tenant:c{x}"];
/// Per-key limit: 100 per hour (nothing refills during the test).
const LIMIT: u32 = 100;

fn limiter<A: RedisAlgorithm>(url: &str, prefix: &str, alg: A) -> RedisRateLimiter<A> {
    let mut cfg = RedisConfig::new(url);
    cfg.io_timeout = Duration::from_secs(5);
    cfg.key_prefix = prefix.to_string();
    RedisRateLimiter::new(alg, cfg).expect("valid config")
}

fn hammer<A: RedisAlgorithm>(l: &RedisRateLimiter<A>) -> usize {
    let mut granted = 0;
    for i in 0..ATTEMPTS {
        for k in KEYS {
            // Mix single checks and pipelined batches.
            if i % 4 == 0 {
                let batch = l.check_many(&[k, k], 1).expect("redis answers");
                granted += batch.iter().filter(|d| d.is_allowed()).count();
            } else if l.check(k).expect("redis answers").is_allowed() {
                granted += 1;
            }
        }
    }
    granted
}

/// The worker: does nothing in a normal run.
#[test]
fn worker() {
    let (Ok(url), Ok(alg)) = (
        std::env::var("DK_WORKER_URL"),
        std::env::var("DK_WORKER_ALG"),
    ) else {
        return;
    };
    // Start together: a barrier on the server (no sleeping).
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let barrier = format!("barrier:{alg}");
    let _: u64 = redis::cmd("INCR").arg(&barrier).query(&mut con).unwrap();
    while redis::cmd("GET")
        .arg(&barrier)
        .query::<u64>(&mut con)
        .unwrap()
        < 2
    {
        std::hint::spin_loop();
    }
    // A year-long window: the fixed window and the counter are aligned to
    // the server's clock, and a run that straddled a boundary (a whole hour,
    // say) would rightly be granted a second limit.
    let q = Quota::new(LIMIT, Duration::from_secs(365 * 86_400)).unwrap();
    let prefix = format!("mp-{alg}");
    let granted = match alg.as_str() {
        "gcra" => hammer(&limiter(&url, &prefix, Gcra::new(q))),
        "fixed" => hammer(&limiter(&url, &prefix, FixedWindow::new(q))),
        "counter" => hammer(&limiter(&url, &prefix, SlidingCounter::new(q))),
        _ => hammer(&limiter(&url, &prefix, SlidingLog::new(q))),
    };
    println!("GRANTED={granted}");
}

#[test]
fn two_processes_never_grant_more_than_one_limit() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let exe = std::env::current_exe().expect("the test binary");
    for alg in ["gcra", "fixed", "counter", "log"] {
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", "worker", "--nocapture", "--test-threads", "1"])
                    .env("DK_WORKER_URL", server.url())
                    .env("DK_WORKER_ALG", alg)
                    .output_spawn()
            })
            .collect();
        let mut total = 0usize;
        for child in children {
            let out = child.wait_with_output().expect("worker ran");
            assert!(
                out.status.success(),
                "{alg} worker failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let granted: usize = text
                .lines()
                .find_map(|l| l.split_once("GRANTED=").map(|(_, n)| n))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("{alg} worker printed no count: {text}"));
            assert!(granted > 0, "{alg}: each process got some of the limit");
            total += granted;
        }
        assert_eq!(
            total,
            LIMIT as usize * KEYS.len(),
            "{alg}: the two processes together get exactly the limit of every key"
        );
    }
}

/// `Command::spawn` with both outputs captured.
trait SpawnCaptured {
    fn output_spawn(&mut self) -> std::process::Child;
}

impl SpawnCaptured for Command {
    fn output_spawn(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a worker")
    }
}
