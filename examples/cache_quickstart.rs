//! dispatchkit::cache in 60 lines: a TTL cache with single-flight loading,
//! then an L1/L2 tiered cache over a (simulated) database with write-behind.
//!
//! ```text
//! cargo run --release --example cache_quickstart
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dispatchkit::cache::{Cache, CacheError, SharedTier, Store, TierConfig, WriteMode};

/// The source of truth: restaurant menus in a "database".
#[derive(Default)]
struct MenuDb(Mutex<HashMap<u32, String>>);

impl Store<u32, String> for MenuDb {
    type Error = std::io::Error;
    fn get(&self, id: &u32) -> Result<Option<String>, Self::Error> {
        Ok(self.0.lock().expect("db lock").get(id).cloned())
    }
    fn put(&self, id: &u32, menu: &String) -> Result<(), Self::Error> {
        self.0.lock().expect("db lock").insert(*id, menu.clone());
        Ok(())
    }
    fn delete(&self, id: &u32) -> Result<(), Self::Error> {
        self.0.lock().expect("db lock").remove(id);
        Ok(())
    }
}

fn main() -> Result<(), CacheError> {
    // 1. A plain cache: 10k entries, 30-minute TTL, time as a parameter.
    let menus: Cache<u32, String> = Cache::builder(10_000)
        .time_to_live(Duration::from_secs(30 * 60))
        .record_stats(true)
        .build()?;
    let t0 = Instant::now();
    let menu = menus.get_or_load_at(&42, t0, || "pad thai, green curry".to_string());
    assert_eq!(menus.get_at(&42, t0 + Duration::from_secs(60)), Some(menu));
    assert_eq!(
        menus.get_at(&42, t0 + Duration::from_secs(30 * 60)),
        None,
        "expired"
    );
    println!("plain cache: {:?}", menus.stats());

    // 2. Tiers: a shared L2 over the database, one small L1 per instance.
    let db = MenuDb::default();
    db.put(&7, &"tacos".to_string()).expect("db write");
    let shared = SharedTier::new(
        Cache::builder(100_000)
            .time_to_live(Duration::from_secs(30 * 60))
            .record_stats(true)
            .build()?,
        db,
        TierConfig {
            write_mode: WriteMode::Behind {
                queue_capacity: 1024,
            },
            ..TierConfig::default()
        },
    )?;
    let l1 = || {
        Cache::builder(1_000)
            .time_to_live(Duration::from_secs(60))
            .record_stats(true) // hits and misses are counted on request
            .build()
    };
    let (a, b) = (shared.instance(l1()?), shared.instance(l1()?));

    assert_eq!(a.get(&7)?.as_deref(), Some("tacos")); // L1 miss, L2 miss, DB read
    assert_eq!(b.get(&7)?.as_deref(), Some("tacos")); // L1 miss, L2 hit
    a.set(7, "tacos, churros".to_string())?; // L2 + a's L1; b's L1 invalidated; DB write queued
    assert_eq!(b.get(&7)?.as_deref(), Some("tacos, churros"));
    println!(
        "pending DB writes before flush: {}",
        shared.pending_writes()
    );
    println!("applied by flush: {}", shared.flush()?);
    let s = b.stats();
    println!(
        "instance b: L1 {}/{} hits, L2 {}/{} hits, DB reads {}, DB writes {}",
        s.l1.hits,
        s.l1.hits + s.l1.misses,
        s.l2.hits,
        s.l2.hits + s.l2.misses,
        s.store_gets,
        s.store_puts
    );
    Ok(())
}
