//! One conformance suite for the tiers, through the `Tier` trait, against
//! both shared tiers: the in-process `SharedTier` and the `RedisTier` (a
//! real `redis-server` on a free loopback port; skipped with a note
//! without one, a failure under `CI=true`). Two instances share a tier and
//! a store: read-through, write-through, invalidation of the other
//! instance, delete, invalidate, store failures neither cached nor hidden.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use dispatchkit_cache::{
    Cache, CacheError, Postcard, RedisTier, RedisTierConfig, SharedTier, Store, Tier, TierConfig,
};
use dispatchkit_test_support::Down;
use dispatchkit_test_support::redis_server::RedisServer;
use parking_lot::Mutex;

/// An in-memory store that counts reads and can be made to fail.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, String>>,
    gets: AtomicU64,
    down: AtomicBool,
}

/// The store handle both the test and the tier hold.
#[derive(Clone)]
struct DbRef(Arc<Db>);

impl Store<u64, String> for DbRef {
    type Error = Down;
    fn get(&self, key: &u64) -> Result<Option<String>, Down> {
        self.0.gets.fetch_add(1, Ordering::Relaxed);
        if self.0.down.load(Ordering::Relaxed) {
            return Err(Down);
        }
        Ok(self.0.rows.lock().get(key).cloned())
    }
    fn put(&self, key: &u64, value: &String) -> Result<(), Down> {
        if self.0.down.load(Ordering::Relaxed) {
            return Err(Down);
        }
        self.0.rows.lock().insert(*key, value.clone());
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Down> {
        if self.0.down.load(Ordering::Relaxed) {
            return Err(Down);
        }
        self.0.rows.lock().remove(key);
        Ok(())
    }
}

/// A Redis tier over `db`.
/// A Redis tier whose invalidation subscriber has subscribed: subscribing
/// empties every L1 (messages may have been missed before), so a test that
/// filled an L1 before that would see its entries vanish (seen once in CI,
/// under load: "misses fill the L1").
fn redis_tier(
    cfg: RedisTierConfig,
    mode: TierConfig,
    db: &Arc<Db>,
) -> Arc<RedisTier<u64, String, DbRef>> {
    let tier = RedisTier::new(cfg, mode, DbRef(Arc::clone(db)), Postcard).expect("valid tier");
    let t0 = Instant::now();
    while !tier.is_subscribed() {
        assert!(t0.elapsed().as_secs() < 10, "never subscribed");
        std::thread::yield_now();
    }
    tier
}

fn l1() -> Cache<u64, String> {
    Cache::new(1_000).expect("valid capacity")
}

fn suite(a: &impl Tier<u64, String>, b: &impl Tier<u64, String>, db: &Db) {
    let now = Instant::now();
    // Read-through, then from L1.
    db.rows.lock().insert(1, "one".into());
    assert_eq!(a.get_at(&1, now).unwrap().as_deref(), Some("one"));
    let gets = db.gets.load(Ordering::Relaxed);
    assert_eq!(a.get_at(&1, now).unwrap().as_deref(), Some("one"));
    assert_eq!(
        db.gets.load(Ordering::Relaxed),
        gets,
        "an L1 hit reads no store"
    );
    // Write-through, seen by the other instance.
    a.set_at(2, "two".into(), now).unwrap();
    assert_eq!(db.rows.lock().get(&2).map(String::as_str), Some("two"));
    assert_eq!(b.get_at(&2, now).unwrap().as_deref(), Some("two"));
    // The other instance's L1 holds 2; a write invalidates it.
    a.set_at(2, "deux".into(), now).unwrap();
    assert_eq!(b.get_at(&2, now).unwrap().as_deref(), Some("deux"));
    // Delete everywhere.
    b.delete_at(&2, now).unwrap();
    assert_eq!(a.get_at(&2, now).unwrap(), None);
    assert!(!db.rows.lock().contains_key(&2));
    // Invalidate: the store changed behind the tiers.
    db.rows.lock().insert(1, "uno".into());
    assert_eq!(
        b.get_at(&1, now).unwrap().as_deref(),
        Some("one"),
        "still cached"
    );
    a.invalidate_at(&1, now);
    assert_eq!(b.get_at(&1, now).unwrap().as_deref(), Some("uno"));
    // A missing key is not cached.
    assert_eq!(a.get_at(&3, now).unwrap(), None);
    db.rows.lock().insert(3, "three".into());
    assert_eq!(a.get_at(&3, now).unwrap().as_deref(), Some("three"));
    // Store failures: an error, not cached, and a refused write changes no tier.
    db.down.store(true, Ordering::Relaxed);
    assert!(matches!(a.get_at(&4, now), Err(CacheError::Store { .. })));
    assert!(matches!(
        a.set_at(1, "bad".into(), now),
        Err(CacheError::Store { .. })
    ));
    db.down.store(false, Ordering::Relaxed);
    assert_eq!(a.get_at(&1, now).unwrap().as_deref(), Some("uno"));
    db.rows.lock().insert(4, "four".into());
    assert_eq!(a.get_at(&4, now).unwrap().as_deref(), Some("four"));
}

#[test]
fn in_process_tier_conforms() {
    let db = Arc::new(Db::default());
    let shared = SharedTier::new(l1(), DbRef(Arc::clone(&db)), TierConfig::default()).unwrap();
    let (a, b) = (shared.instance(l1()), shared.instance(l1()));
    suite(&a, &b, &db);
}

#[test]
fn redis_tier_conforms() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let db = Arc::new(Db::default());
    let tier = redis_tier(
        RedisTierConfig::new(server.url()),
        TierConfig::default(),
        &db,
    );
    let (a, b) = (tier.instance(l1()), tier.instance(l1()));
    suite(&a, &b, &db);
    let s = tier.stats();
    assert!(s.l2_hits > 0 && s.l2_misses > 0, "{s:?}");
}

/// Write-behind on either shared tier: a write is queued (the store is not
/// written yet) and read back by both instances; `flush` applies it; a
/// failing store keeps it pending with its error until a flush succeeds.
fn write_behind_suite(
    a: &impl Tier<u64, String>,
    b: &impl Tier<u64, String>,
    db: &Db,
    flush: &dyn Fn() -> Result<usize, CacheError>,
    failed: &dyn Fn() -> usize,
) {
    let now = Instant::now();
    a.set_at(10, "queued".into(), now).unwrap();
    assert!(!db.rows.lock().contains_key(&10), "not written yet");
    assert_eq!(a.get_at(&10, now).unwrap().as_deref(), Some("queued"));
    assert_eq!(b.get_at(&10, now).unwrap().as_deref(), Some("queued"));
    a.set_at(10, "newer".into(), now).unwrap();
    assert_eq!(flush().unwrap(), 1, "the two writes were coalesced");
    assert_eq!(db.rows.lock().get(&10).map(String::as_str), Some("newer"));
    b.delete_at(&10, now).unwrap();
    assert_eq!(
        a.get_at(&10, now).unwrap(),
        None,
        "a queued delete reads as gone"
    );
    db.down.store(true, Ordering::Relaxed);
    assert!(matches!(
        flush(),
        Err(CacheError::FlushFailed { failed: 1, .. })
    ));
    assert_eq!(failed(), 1, "kept with its error");
    db.down.store(false, Ordering::Relaxed);
    assert_eq!(flush().unwrap(), 1);
    assert_eq!(failed(), 0);
    assert!(!db.rows.lock().contains_key(&10));
}

fn behind() -> TierConfig {
    TierConfig {
        write_mode: dispatchkit_cache::WriteMode::Behind { queue_capacity: 64 },
        ..TierConfig::default()
    }
}

#[test]
fn in_process_write_behind_conforms() {
    let db = Arc::new(Db::default());
    let shared = SharedTier::new(l1(), DbRef(Arc::clone(&db)), behind()).unwrap();
    let (a, b) = (shared.instance(l1()), shared.instance(l1()));
    write_behind_suite(&a, &b, &db, &|| shared.flush(), &|| {
        shared.failed_writes().len()
    });
}

#[test]
fn redis_write_behind_conforms() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let db = Arc::new(Db::default());
    let tier = redis_tier(RedisTierConfig::new(server.url()), behind(), &db);
    let (a, b) = (tier.instance(l1()), tier.instance(l1()));
    write_behind_suite(&a, &b, &db, &|| tier.flush(), &|| {
        tier.failed_writes().len()
    });
}

/// `get_many_at` on the Redis tier: L1 hits, one MGET for the misses, the
/// store for what Redis lacks, `None` for what the store lacks — the same
/// values as one `get` per key, in the keys' order.
#[test]
fn redis_get_many_equals_one_get_per_key() {
    let Some(server) = RedisServer::start() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let db = Arc::new(Db::default());
    let tier = redis_tier(
        RedisTierConfig::new(server.url()),
        TierConfig::default(),
        &db,
    );
    let (a, b) = (tier.instance(l1()), tier.instance(l1()));
    let now = Instant::now();
    for k in 0..6u64 {
        db.rows.lock().insert(k, format!("v{k}"));
    }
    a.get_at(&1, now).unwrap(); // in a's L1 (and Redis)
    b.get_at(&2, now).unwrap(); // in Redis only, for a
    let keys = [0u64, 1, 2, 3, 99, 1];
    let batch = a.get_many_at(&keys, now).unwrap();
    let one_by_one: Vec<Option<String>> = keys.iter().map(|k| b.get_at(k, now).unwrap()).collect();
    assert_eq!(batch, one_by_one);
    assert_eq!(batch[4], None);
    assert!(a.l1().get(&3).is_some(), "misses fill the L1");
    db.down.store(true, Ordering::Relaxed);
    assert!(matches!(
        a.get_many_at(&[4], now),
        Err(CacheError::Store { .. })
    ));
}

/// The tier suites on a local 3-master Redis Cluster (keys on different
/// nodes; invalidations published on one node reach every subscriber).
#[test]
fn redis_cluster_tier_conforms() {
    let Some(cluster) = dispatchkit_test_support::redis_server::RedisCluster::start() else {
        eprintln!("skipped: no Redis Cluster");
        return;
    };
    let mut cfg = RedisTierConfig::new(cluster.url());
    cfg.cluster = true;
    let db = Arc::new(Db::default());
    let tier = redis_tier(cfg.clone(), TierConfig::default(), &db);
    let (a, b) = (tier.instance(l1()), tier.instance(l1()));
    suite(&a, &b, &db);
    let keys = [0u64, 1, 2, 3, 99];
    assert_eq!(
        a.get_many_at(&keys, Instant::now()).unwrap(),
        keys.iter()
            .map(|k| b.get_at(k, Instant::now()).unwrap())
            .collect::<Vec<_>>()
    );
    let db = Arc::new(Db::default());
    cfg.key_prefix = "behind".into();
    let tier = redis_tier(cfg, behind(), &db);
    let (a, b) = (tier.instance(l1()), tier.instance(l1()));
    write_behind_suite(&a, &b, &db, &|| tier.flush(), &|| {
        tier.failed_writes().len()
    });
}
