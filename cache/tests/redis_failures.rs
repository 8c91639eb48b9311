//! The Redis tier when Redis cannot answer, against a real server the test
//! stops and restarts: reads fall through to the store, writes still reach
//! the store (and this process's L1s), nothing blocks past the timeouts or
//! panics, and after the restart the subscriber subscribes again and
//! empties the L1s (invalidations may have been missed meanwhile). Skipped
//! with a note without `redis-server` (a failure under `CI=true`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatchkit_cache::{Cache, Postcard, RedisTier, RedisTierConfig, Store, Tier, TierConfig};
use dispatchkit_test_support::Down;
use dispatchkit_test_support::redis_server::RedisServer;
use parking_lot::Mutex;

#[derive(Default, Clone)]
struct Db(Arc<Mutex<HashMap<u64, String>>>);

impl Store<u64, String> for Db {
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

fn spin_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::hint::spin_loop();
    }
}

#[test]
fn a_stopped_server_falls_through_to_the_store_and_a_restart_resubscribes() {
    let Some(mut server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let db = Db::default();
    let tier = RedisTier::new(
        RedisTierConfig::new(server.url()),
        TierConfig::default(),
        db.clone(),
        Postcard,
    )
    .unwrap();
    spin_until("subscribed", || tier.is_subscribed());
    let (a, b) = (
        tier.instance(Cache::new(100).unwrap()),
        tier.instance(Cache::new(100).unwrap()),
    );
    a.set(1, "one".into()).unwrap();
    assert_eq!(b.get(&1).unwrap().as_deref(), Some("one"));

    server.stop();
    let t = Instant::now();
    db.0.lock().insert(2, "two".into());
    assert_eq!(
        a.get(&2).unwrap().as_deref(),
        Some("two"),
        "read through to the store"
    );
    a.set(3, "three".into()).unwrap();
    assert_eq!(
        db.0.lock().get(&3).map(String::as_str),
        Some("three"),
        "the store got the write"
    );
    assert_eq!(b.get(&3).unwrap().as_deref(), Some("three"));
    a.delete(&1).unwrap();
    assert_eq!(b.get(&1).unwrap(), None, "this process's L1s were told");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{:?}: nothing blocked",
        t.elapsed()
    );
    assert!(tier.stats().l2_errors > 0);
    spin_until("noticed the loss", || !tier.is_subscribed());

    let before = tier.stats().resubscriptions;
    server.restart();
    spin_until("subscribed again", || {
        tier.is_subscribed() && tier.stats().resubscriptions > before
    });
    assert!(
        a.l1().is_empty() && b.l1().is_empty(),
        "the L1s were emptied"
    );
    assert_eq!(b.get(&3).unwrap().as_deref(), Some("three"));
    b.set(4, "four".into()).unwrap();
    assert_eq!(a.get(&4).unwrap().as_deref(), Some("four"));
}
