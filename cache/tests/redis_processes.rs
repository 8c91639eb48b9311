//! Two OS processes share the Redis tier: this test binary spawns itself as
//! a reader process (the `reader` test below, idle in a normal run) while it
//! writes. Each write must reach the reader's L1 as an invalidation (the
//! reader never serves the previous value once it has been told), and the
//! reader measures the invalidation delay — from the write's wall-clock
//! time, carried in the value, to the moment its L1 dropped the key — and
//! prints p50 / p99. The two sides pace each other through a Redis list
//! (no sleeping). A real `redis-server`; skipped with a note without one.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dispatchkit_cache::{Cache, Postcard, RedisTier, RedisTierConfig, Store, Tier, TierConfig};
use dispatchkit_test_support::Down;
use dispatchkit_test_support::redis_server::RedisServer;
use parking_lot::Mutex;

const ROUNDS: u64 = 300;
const KEY: u64 = 42;

/// The store: each process has its own (the point is the shared L2 and the
/// invalidations, not the store); the reader's holds nothing, so every value
/// it reads came through Redis.
#[derive(Default)]
struct Local(Mutex<HashMap<u64, String>>);

impl Store<u64, String> for Local {
    type Error = Down;
    fn get(&self, key: &u64) -> Result<Option<String>, Down> {
        Ok(self.0.lock().get(key).cloned())
    }
    fn put(&self, key: &u64, value: &String) -> Result<(), Down> {
        self.0.lock().insert(*key, value.clone());
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Down> {
        self.0.lock().remove(key);
        Ok(())
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn tier(url: &str) -> std::sync::Arc<RedisTier<u64, String, Local>> {
    let tier = RedisTier::new(
        RedisTierConfig::new(url),
        TierConfig::default(),
        Local::default(),
        Postcard,
    )
    .unwrap();
    let t0 = Instant::now();
    while !tier.is_subscribed() {
        assert!(t0.elapsed().as_secs() < 10, "never subscribed");
        std::hint::spin_loop();
    }
    tier
}

fn ack(con: &mut redis::Connection, i: u64) {
    let _: () = redis::cmd("RPUSH").arg("acks").arg(i).query(con).unwrap();
}

/// The reader's ack of round `i` (`false`: none within 10 s).
fn wait_ack(con: &mut redis::Connection, i: u64) -> bool {
    let got: Option<(String, u64)> = redis::cmd("BLPOP").arg("acks").arg(10).query(con).unwrap();
    match got {
        Some((_, got)) => {
            assert_eq!(got, i, "acks arrive in order");
            true
        }
        None => false,
    }
}

/// The reader process.
#[test]
fn reader() {
    let Ok(url) = std::env::var("DK_TIER_URL") else {
        return;
    };
    let tier = tier(&url);
    let me = tier.instance(Cache::new(100).unwrap());
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    ack(&mut con, u64::MAX); // subscribed
    let mut delays = Vec::new();
    for i in 0..ROUNDS {
        // Wait for round i's value: invalidation drops the old one.
        // Wait until the L1 drops the key and a read brings round i: the
        // previous round is allowed while its invalidation was still on the
        // way (the read then was current), anything older is not.
        loop {
            if me.l1().get(&KEY).is_none() {
                let detected = wall_ns();
                if let Some(v) = me.get(&KEY).unwrap() {
                    let (round, at) = v.split_once(':').unwrap();
                    let round: u64 = round.parse().unwrap();
                    if round == i {
                        if i > 0 {
                            delays.push(detected.saturating_sub(at.parse::<u64>().unwrap()));
                        }
                        break;
                    }
                    assert_eq!(round + 1, i, "at most one round behind, never older");
                }
            }
            std::hint::spin_loop();
        }
        ack(&mut con, i);
    }
    delays.sort_unstable();
    let p = |q: usize| delays[delays.len() * q / 100] as f64 / 1000.0;
    println!("INVALIDATION p50={:.1}us p99={:.1}us", p(50), p(99));
}

#[test]
fn a_write_in_one_process_invalidates_the_other_processes_l1() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", "reader", "--nocapture", "--test-threads", "1"])
        .env("DK_TIER_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tier = tier(&server.url());
    let writer = tier.instance(Cache::new(100).unwrap());
    let mut con = server.connection().unwrap();
    let mut acked = wait_ack(&mut con, u64::MAX);
    for i in 0..ROUNDS {
        if !acked {
            break;
        }
        writer.set(KEY, format!("{i}:{}", wall_ns())).unwrap();
        acked = wait_ack(&mut con, i);
    }
    let mut child = child;
    if !acked {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reader failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("INVALIDATION"))
        .expect("the reader's figures");
    eprintln!("{}", &line[line.find("INVALIDATION").unwrap()..]);
    assert!(tier.stats().l2_errors == 0);
}
