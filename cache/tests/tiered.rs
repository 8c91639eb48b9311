//! The tiers over a fake L3 that counts its calls and fails on demand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dispatchkit_cache::{Cache, CacheError, SharedTier, Store, TierConfig, TieredCache, WriteMode};
use dispatchkit_test_support::Down;

/// A fake database: counts calls, fails the next `fail_next` calls, and
/// can hold `get`s at a gate.
#[derive(Default)]
struct FakeStore {
    data: Mutex<HashMap<u64, String>>,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    fail_next: AtomicU32,
    hold: AtomicBool,
    gate: (Mutex<bool>, Condvar),
}

impl FakeStore {
    fn with(data: &[(u64, &str)]) -> Self {
        let s = Self::default();
        for (k, v) in data {
            s.data.lock().unwrap().insert(*k, v.to_string());
        }
        s
    }
    fn failing(&self) -> bool {
        self.fail_next
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
    fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
    fn value(&self, k: u64) -> Option<String> {
        self.data.lock().unwrap().get(&k).cloned()
    }
}

impl Store<u64, String> for FakeStore {
    type Error = Down;
    fn get(&self, key: &u64) -> Result<Option<String>, Down> {
        self.gets.fetch_add(1, SeqCst);
        if self.hold.load(SeqCst) {
            let mut open = self.gate.0.lock().unwrap();
            while !*open {
                open = self.gate.1.wait(open).unwrap();
            }
        }
        if self.failing() {
            return Err(Down);
        }
        Ok(self.data.lock().unwrap().get(key).cloned())
    }
    fn put(&self, key: &u64, value: &String) -> Result<(), Down> {
        self.puts.fetch_add(1, SeqCst);
        if self.failing() {
            return Err(Down);
        }
        self.data.lock().unwrap().insert(*key, value.clone());
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Down> {
        self.deletes.fetch_add(1, SeqCst);
        if self.failing() {
            return Err(Down);
        }
        self.data.lock().unwrap().remove(key);
        Ok(())
    }
}

type Shared = Arc<SharedTier<u64, String, FakeStore>>;

fn tiers(store: FakeStore, mode: WriteMode) -> Shared {
    SharedTier::new(
        Cache::builder(1000)
            .time_to_live(Duration::from_secs(600))
            .record_stats(true)
            .build()
            .unwrap(),
        store,
        TierConfig {
            write_mode: mode,
            store_attempts: 3,
        },
    )
    .unwrap()
}

fn l1() -> Cache<u64, String> {
    Cache::builder(100)
        .time_to_live(Duration::from_secs(60))
        .record_stats(true)
        .build()
        .unwrap()
}

fn behind(cap: usize) -> WriteMode {
    WriteMode::Behind {
        queue_capacity: cap,
    }
}

#[test]
fn get_walks_l1_l2_l3_and_fills_upward() {
    let sh = tiers(FakeStore::with(&[(1, "menu")]), WriteMode::Through);
    let (a, b) = (sh.instance(l1()), sh.instance(l1()));
    let t0 = Instant::now();
    assert_eq!(a.get_at(&1, t0).unwrap().as_deref(), Some("menu"));
    assert_eq!(sh.store().gets.load(SeqCst), 1, "L3 read once");
    assert_eq!((a.l1().len(), sh.l2().len()), (1, 1), "filled upward");
    assert_eq!(a.get_at(&1, t0).unwrap().as_deref(), Some("menu"));
    assert_eq!(b.get_at(&1, t0).unwrap().as_deref(), Some("menu"));
    assert_eq!(sh.store().gets.load(SeqCst), 1, "L1 and L2 answered");
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.l1.hits, sa.l1.misses), (1, 1));
    assert_eq!((sb.l1.hits, sb.l1.misses), (0, 1));
    assert_eq!((sa.l2.hits, sa.l2.misses), (1, 1), "b's miss was an L2 hit");
    // L1's TTL (60 s) passes: L2 (600 s) answers and refills L1.
    let later = t0 + Duration::from_secs(61);
    assert_eq!(a.get_at(&1, later).unwrap().as_deref(), Some("menu"));
    assert_eq!(sh.store().gets.load(SeqCst), 1);
    assert_eq!(a.stats().l2.hits, 2);
    assert_eq!(a.stats().store_gets, 1);
    sh.check_invariants();
}

#[test]
fn absent_keys_and_store_failures() {
    let sh = tiers(FakeStore::default(), WriteMode::Through);
    let a = sh.instance(l1());
    assert_eq!(a.get(&9).unwrap(), None);
    assert_eq!(a.get(&9).unwrap(), None);
    assert_eq!(
        sh.store().gets.load(SeqCst),
        2,
        "absence is not cached by default"
    );
    sh.store().fail_next.store(1, SeqCst);
    let e = a.get(&9).unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::Store {
                operation: "get",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(a.get(&9).unwrap(), None, "a failure is not cached either");
    assert_eq!(a.stats().store_errors, 1);
}

#[test]
fn negative_ttl_caches_absence() {
    let sh = SharedTier::new(
        Cache::builder(100)
            .negative_ttl(Duration::from_secs(5))
            .build()
            .unwrap(),
        FakeStore::default(),
        TierConfig::default(),
    )
    .unwrap();
    let a = sh.instance(l1());
    let t0 = Instant::now();
    for s in 0..5 {
        assert_eq!(a.get_at(&9, t0 + Duration::from_secs(s)).unwrap(), None);
    }
    assert_eq!(sh.store().gets.load(SeqCst), 1, "L2 remembered the miss");
    assert_eq!(a.get_at(&9, t0 + Duration::from_secs(5)).unwrap(), None);
    assert_eq!(sh.store().gets.load(SeqCst), 2);
    // A write makes the key exist immediately.
    a.set_at(9, "now".into(), t0 + Duration::from_secs(6))
        .unwrap();
    let b = sh.instance(l1());
    assert_eq!(
        b.get_at(&9, t0 + Duration::from_secs(6))
            .unwrap()
            .as_deref(),
        Some("now")
    );
}

#[test]
fn write_through_retries_then_reports_and_changes_nothing() {
    let sh = tiers(FakeStore::with(&[(1, "old")]), WriteMode::Through);
    let (a, b) = (sh.instance(l1()), sh.instance(l1()));
    assert_eq!(b.get(&1).unwrap().as_deref(), Some("old"));
    // Two failures then success: retried within the 3 attempts.
    sh.store().fail_next.store(2, SeqCst);
    a.set(1, "new".into()).unwrap();
    assert_eq!(sh.store().puts.load(SeqCst), 3);
    assert_eq!(sh.store().value(1).as_deref(), Some("new"));
    assert_eq!(
        b.get(&1).unwrap().as_deref(),
        Some("new"),
        "b's L1 was invalidated"
    );
    // Three failures: reported, no tier changed.
    sh.store().fail_next.store(3, SeqCst);
    let e = a.set(1, "newer".into()).unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::Store {
                operation: "put",
                attempts: 3,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(sh.store().value(1).as_deref(), Some("new"));
    assert_eq!(a.get(&1).unwrap().as_deref(), Some("new"));
    assert_eq!(b.get(&1).unwrap().as_deref(), Some("new"));
    assert_eq!(sh.l2().get(&1).as_deref(), Some("new"));
}

#[test]
fn write_behind_coalesces_reads_pending_and_flushes() {
    let sh = tiers(FakeStore::default(), behind(16));
    let (a, b) = (sh.instance(l1()), sh.instance(l1()));
    for v in 0..5 {
        a.set(1, format!("v{v}")).unwrap();
    }
    a.set(2, "x".into()).unwrap();
    assert_eq!(sh.store().puts.load(SeqCst), 0, "nothing written yet");
    assert_eq!(sh.pending_writes(), 2);
    assert_eq!(a.stats().coalesced_writes, 4);
    // L2 lost the value: the read finds the pending write, not the store.
    sh.l2().remove(&1);
    assert_eq!(b.get(&1).unwrap().as_deref(), Some("v4"));
    assert_eq!(sh.store().gets.load(SeqCst), 0);
    assert_eq!(a.stats().pending_reads, 1);
    assert_eq!(sh.flush().unwrap(), 2);
    assert_eq!(
        sh.store().puts.load(SeqCst),
        2,
        "five writes of key 1 became one"
    );
    assert_eq!(sh.store().value(1).as_deref(), Some("v4"));
    assert_eq!(sh.pending_writes(), 0);
    assert_eq!(sh.flush().unwrap(), 0);
    sh.check_invariants();
}

#[test]
fn a_failing_flush_keeps_the_writes_and_reports_them() {
    let sh = tiers(FakeStore::default(), behind(16));
    let a = sh.instance(l1());
    a.set(1, "a".into()).unwrap();
    a.set(2, "b".into()).unwrap();
    sh.store().fail_next.store(3, SeqCst); // key 1 fails all 3 attempts
    let e = sh.flush().unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::FlushFailed {
                applied: 1,
                failed: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(sh.pending_writes(), 1, "the failed write is still queued");
    assert_eq!(a.get(&1).unwrap().as_deref(), Some("a"));
    assert_eq!(sh.flush().unwrap(), 1);
    assert_eq!(sh.store().value(1).as_deref(), Some("a"));
    assert_eq!(sh.store().value(2).as_deref(), Some("b"));
    assert_eq!(sh.pending_writes(), 0);
}

#[test]
fn a_full_queue_drains_its_oldest_write_or_refuses() {
    let sh = tiers(FakeStore::default(), behind(2));
    let a = sh.instance(l1());
    a.set(1, "a".into()).unwrap();
    a.set(2, "b".into()).unwrap();
    a.set(1, "a2".into()).unwrap(); // coalesces: no room needed
    a.set(3, "c".into()).unwrap(); // full: applies key 1 first
    assert_eq!(sh.store().value(1).as_deref(), Some("a2"));
    assert_eq!(sh.pending_writes(), 2);
    sh.store().fail_next.store(3, SeqCst);
    let e = a.set(4, "d".into()).unwrap_err();
    assert!(
        matches!(e, CacheError::WriteBehindFull { capacity: 2, .. }),
        "{e}"
    );
    assert_eq!(
        a.get(&4).unwrap(),
        None,
        "the refused write changed no tier"
    );
    assert_eq!(sh.pending_writes(), 2, "nothing was dropped");
    assert_eq!(sh.flush().unwrap(), 2);
    assert_eq!(sh.store().value(2).as_deref(), Some("b"));
    assert_eq!(sh.store().value(3).as_deref(), Some("c"));
}

#[test]
fn delete_and_invalidate_reach_every_tier() {
    for mode in [WriteMode::Through, behind(8)] {
        let sh = tiers(FakeStore::with(&[(1, "x"), (2, "y")]), mode);
        let (a, b) = (sh.instance(l1()), sh.instance(l1()));
        assert_eq!(a.get(&1).unwrap().as_deref(), Some("x"));
        assert_eq!(b.get(&1).unwrap().as_deref(), Some("x"));
        a.delete(&1).unwrap();
        assert!(!a.l1().contains_key(&1) && !b.l1().contains_key(&1));
        assert!(!sh.l2().contains_key(&1));
        assert_eq!(
            b.get(&1).unwrap(),
            None,
            "{mode:?}: pending or applied delete"
        );
        sh.flush().unwrap();
        assert_eq!(sh.store().value(1), None);
        // Invalidate: the source changed behind the cache's back.
        assert_eq!(b.get(&2).unwrap().as_deref(), Some("y"));
        sh.store().data.lock().unwrap().insert(2, "y2".into());
        assert_eq!(
            a.get(&2).unwrap().as_deref(),
            Some("y"),
            "stale until invalidated"
        );
        a.invalidate(&2);
        assert_eq!(b.get(&2).unwrap().as_deref(), Some("y2"));
        assert_eq!(a.get(&2).unwrap().as_deref(), Some("y2"));
    }
}

#[test]
fn dropping_an_instance_unregisters_its_l1() {
    let sh = tiers(FakeStore::default(), WriteMode::Through);
    let a = sh.instance(l1());
    {
        let _b = sh.instance(l1());
        assert_eq!(sh.instance_count(), 2);
    }
    assert_eq!(sh.instance_count(), 1);
    a.set(1, "v".into()).unwrap();
    assert_eq!(a.stats().l1_invalidations, 0);
}

#[test]
fn concurrent_misses_across_instances_read_the_store_once() {
    const N: usize = 4;
    let sh = tiers(FakeStore::with(&[(5, "hot")]), WriteMode::Through);
    sh.store().hold.store(true, SeqCst);
    let instances: Vec<TieredCache<u64, String, FakeStore>> =
        (0..N).map(|_| sh.instance(l1())).collect();
    thread::scope(|s| {
        let handles: Vec<_> = instances
            .iter()
            .map(|inst| s.spawn(move || inst.get(&5).unwrap()))
            .collect();
        // Open the store once every other instance waits on the L2 load.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sh.l2().stats().load_waits < (N as u64 - 1) && Instant::now() < deadline {
            thread::yield_now();
        }
        sh.store().open_gate();
        for h in handles {
            assert_eq!(h.join().unwrap().as_deref(), Some("hot"));
        }
    });
    assert_eq!(
        sh.store().gets.load(SeqCst),
        1,
        "one store read for {N} concurrent misses"
    );
    assert_eq!(sh.l2().stats().load_waits, N as u64 - 1);
    assert_eq!(sh.l2().stats().loads, 1);
}
