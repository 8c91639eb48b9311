//! Token leases over a Redis bucket: one process spends a lease locally
//! (no round trip) and never grants more than the bucket charged; two OS
//! processes (this test binary spawned twice, meeting at a barrier on the
//! server) hammer one key of a fast-refilling bucket, and the grants summed
//! over both stay within the stated bound, `burst + elapsed / T + 2 ×
//! lease`, while most of them came from leases. A real `redis-server`;
//! skipped with a note without one (a failure under `CI=true`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dispatchkit_ratelimit::{
    Gcra, LeasedLimiter, Quota, RateLimitError, RedisConfig, RedisRateLimiter,
};
use dispatchkit_test_support::redis_server::RedisServer;

fn leased(url: &str, prefix: &str, quota: Quota, lease: u32) -> LeasedLimiter<String> {
    let mut cfg = RedisConfig::new(url);
    cfg.io_timeout = Duration::from_secs(5);
    cfg.key_prefix = prefix.to_string();
    let remote = RedisRateLimiter::new(Gcra::new(quota), cfg).expect("valid config");
    LeasedLimiter::new(remote, lease, Duration::from_secs(1)).expect("valid lease")
}

#[test]
fn one_process_grants_exactly_what_the_bucket_charged() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let l = leased(&server.url(), "one", Quota::per_hour(100).unwrap(), 10);
    assert_eq!(l.max_overgrant_per_process(), 10);
    let key = "tenant".to_string();
    let now = Instant::now();
    let (mut granted, mut local) = (0, 0);
    for _ in 0..300 {
        let d = l.check_at(&key, now).unwrap();
        if d.is_allowed() {
            granted += 1;
            local += usize::from(d.from_lease());
        }
    }
    assert_eq!(granted, 100, "every lease was charged on the bucket");
    assert_eq!(
        local, 100,
        "every grant came from a lease (10 leases of 10)"
    );
    let d = l.check_at(&key, now).unwrap();
    assert!(!d.is_allowed() && !d.from_lease());
    assert!(d.retry_after().is_some());
    // Bad leases.
    let remote = || {
        RedisRateLimiter::new(
            Gcra::new(Quota::per_hour(100).unwrap()),
            RedisConfig::new(server.url()),
        )
        .unwrap()
    };
    assert!(matches!(
        LeasedLimiter::<String>::new(remote(), 0, Duration::from_secs(1)),
        Err(RateLimitError::InvalidConfig { name: "lease", .. })
    ));
    assert!(matches!(
        LeasedLimiter::<String>::new(remote(), 101, Duration::from_secs(1)),
        Err(RateLimitError::InvalidConfig { name: "lease", .. })
    ));
    assert!(matches!(
        LeasedLimiter::<String>::new(remote(), 5, Duration::ZERO),
        Err(RateLimitError::InvalidConfig { name: "ttl", .. })
    ));
}

/// 1,000 per second (T = 1 ms), burst 50; leases of 20.
const RATE: u32 = 1_000;
const BURST: u32 = 50;
const LEASE: u32 = 20;
const CHECKS: usize = 30_000;

#[test]
fn lease_worker() {
    let Ok(url) = std::env::var("DK_LEASE_URL") else {
        return;
    };
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: u64 = redis::cmd("INCR")
        .arg("lease-barrier")
        .query(&mut con)
        .unwrap();
    while redis::cmd("GET")
        .arg("lease-barrier")
        .query::<u64>(&mut con)
        .unwrap()
        < 2
    {
        std::hint::spin_loop();
    }
    let q = Quota::per_second(RATE).unwrap().with_burst(BURST).unwrap();
    let l = leased(&url, "mp", q, LEASE);
    let key = "hot".to_string();
    let (mut granted, mut local) = (0usize, 0usize);
    for _ in 0..CHECKS {
        let d = l.check_at(&key, Instant::now()).unwrap();
        if d.is_allowed() {
            granted += 1;
            local += usize::from(d.from_lease());
        }
    }
    println!("GRANTED={granted} LOCAL={local}");
}

#[test]
fn two_processes_stay_within_the_lease_bound() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let exe = std::env::current_exe().expect("the test binary");
    let started = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "lease_worker",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("DK_LEASE_URL", server.url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    let (mut granted, mut local) = (0usize, 0usize);
    for c in children {
        let out = c.wait_with_output().expect("worker ran");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> usize {
            text.split_whitespace()
                .find_map(|w| {
                    w.split_once(name)
                        .map(|(_, n)| n.trim().parse().unwrap_or(0))
                })
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        granted += field("GRANTED=");
        local += field("LOCAL=");
    }
    // Elapsed wall time bounds the time both workers ran.
    let elapsed_ms = started.elapsed().as_millis() as usize;
    let bound = BURST as usize + elapsed_ms * (RATE as usize / 1000) + 1 + 2 * LEASE as usize;
    eprintln!(
        "leases: {granted} granted ({local} from leases) in {elapsed_ms} ms; bound burst + elapsed/T + 2 x lease = {bound}"
    );
    assert!(
        granted <= bound,
        "{granted} granted > bound {bound} ({elapsed_ms} ms)"
    );
    assert!(granted > BURST as usize, "the refill was used ({granted})");
    assert!(
        local * 10 >= granted * 9,
        "at least 90 % of grants were local ({local} of {granted})"
    );
}
