//! TTL, time-to-idle, eviction causes and the listener, loading and
//! negative caching, scan resistance — single-threaded, time as a
//! parameter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatchkit_cache::{Admission, Cache, EvictionCause, Policy};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn default_and_per_entry_ttl() {
    let c: Cache<&str, u32> = Cache::builder(100).time_to_live(secs(60)).build().unwrap();
    let t0 = Instant::now();
    c.insert_at("a", 1, t0).unwrap();
    c.insert_with_ttl_at("b", 2, secs(10), t0).unwrap();
    assert_eq!(c.get_at("a", t0 + secs(59)), Some(1));
    assert_eq!(c.get_at("b", t0 + secs(9)), Some(2));
    assert_eq!(
        c.get_at("b", t0 + secs(10)),
        None,
        "expired exactly at the deadline"
    );
    assert_eq!(c.get_at("a", t0 + secs(60)), None);
    // Reading an expired entry reclaims it.
    assert_eq!(c.len(), 0);
    assert_eq!(c.stats().evictions.expired, 2);
    // An instant before the cache's epoch is a valid time.
    let early = t0.checked_sub(secs(1)).unwrap_or(t0);
    c.insert_at("c", 3, early).unwrap();
    assert_eq!(c.get_at("c", early + secs(59)), Some(3));
    assert_eq!(c.get_at("c", early + secs(60)), None);
}

#[test]
fn time_to_idle_is_refreshed_by_reads_and_writes() {
    let c: Cache<u32, u32> = Cache::builder(100).time_to_idle(secs(10)).build().unwrap();
    let t0 = Instant::now();
    c.insert_at(1, 1, t0).unwrap();
    for i in 1..=5 {
        assert_eq!(
            c.get_at(&1, t0 + secs(9 * i)),
            Some(1),
            "read {i} keeps it alive"
        );
    }
    assert_eq!(c.get_at(&1, t0 + secs(45 + 10)), None);
    // TTL and TTI together: the earlier deadline wins.
    let c: Cache<u32, u32> = Cache::builder(100)
        .time_to_live(secs(30))
        .time_to_idle(secs(10))
        .build()
        .unwrap();
    c.insert_at(1, 1, t0).unwrap();
    assert_eq!(c.get_at(&1, t0 + secs(9)), Some(1));
    assert_eq!(c.get_at(&1, t0 + secs(18)), Some(1));
    assert_eq!(c.get_at(&1, t0 + secs(27)), Some(1));
    assert_eq!(
        c.get_at(&1, t0 + secs(30)),
        None,
        "TTL caps the idle refreshes"
    );
}

#[test]
fn purge_reclaims_expired_entries_and_eviction_end_reclaims_as_expired() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let c: Cache<u32, u32> = Cache::builder(8)
        .shards(1)
        .eviction_listener(move |k, v, cause| ev.lock().unwrap().push((*k, *v, cause)))
        .build()
        .unwrap();
    let t0 = Instant::now();
    for k in 0..4 {
        c.insert_with_ttl_at(k, k, secs(5), t0).unwrap();
    }
    for k in 4..8 {
        c.insert_at(k, k, t0).unwrap();
    }
    assert_eq!(c.purge_expired_at(t0 + secs(4)), 0);
    assert_eq!(c.purge_expired_at(t0 + secs(5)), 4);
    assert_eq!(c.len(), 4);
    // Expired entries met by the policy are reclaimed as Expired, not
    // Capacity.
    for k in 10..14 {
        c.insert_with_ttl_at(k, k, secs(1), t0).unwrap();
    }
    for k in 20..30 {
        c.insert_at(k, k, t0 + secs(2)).unwrap();
    }
    let s = c.stats().evictions;
    assert_eq!(s.expired, 8, "{s:?}");
    assert_eq!(s.capacity, 6, "{s:?}");
    let ev = events.lock().unwrap();
    assert_eq!(ev.len() as u64, s.total());
    assert!(
        ev.iter()
            .filter(|e| e.2 == EvictionCause::Expired)
            .all(|e| e.0 < 14)
    );
    c.check_invariants();
}

#[test]
fn writes_reclaim_expired_entries_in_a_cache_that_never_fills() {
    // One shard, so the spread of keys over shards (a per-cache random
    // seed) cannot matter: the 1,000 later writes inspect 2,000 slots of a
    // slab of 100..1,100, every slot at least once after the TTL ran out.
    // (With 4 shards a full workspace run once left one shard's 33 expired
    // entries unvisited.)
    let c: Cache<u32, u32> = Cache::builder(10_000).shards(1).build().unwrap();
    let t0 = Instant::now();
    for k in 0..100 {
        c.insert_with_ttl_at(k, k, secs(1), t0).unwrap();
    }
    // Later writes of other keys sweep the slab (two slots per write)
    // without anyone reading the expired keys or purging.
    for k in 1000..2000 {
        c.insert_at(k, k, t0 + secs(2)).unwrap();
    }
    assert_eq!(c.len(), 1000, "the 100 expired entries were reclaimed");
    assert_eq!(c.stats().evictions.expired, 100);
    assert_eq!(c.stats().evictions.capacity, 0);
    c.check_invariants();
}

#[test]
fn listener_sees_every_cause() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let c: Cache<u32, String> = Cache::builder(2)
        .shards(1)
        .policy(Policy::Lru)
        .eviction_listener(move |k: &u32, v: &String, cause| {
            ev.lock().unwrap().push((*k, v.clone(), cause))
        })
        .build()
        .unwrap();
    let t0 = Instant::now();
    c.insert_at(1, "a".into(), t0).unwrap();
    c.insert_at(1, "b".into(), t0).unwrap(); // replaced "a"
    c.insert_at(2, "c".into(), t0).unwrap();
    c.insert_at(3, "d".into(), t0).unwrap(); // evicts 1 ("b")
    assert_eq!(c.remove_at(&2, t0), Some("c".into())); // explicit
    c.insert_with_ttl_at(4, "e".into(), secs(1), t0).unwrap();
    assert_eq!(c.get_at(&4, t0 + secs(1)), None); // expired
    c.clear(); // explicit "d"
    let got = events.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (1, "a".to_string(), EvictionCause::Replaced),
            (1, "b".to_string(), EvictionCause::Capacity),
            (2, "c".to_string(), EvictionCause::Explicit),
            (4, "e".to_string(), EvictionCause::Expired),
            (3, "d".to_string(), EvictionCause::Explicit),
        ]
    );
    let s = c.stats().evictions;
    assert_eq!(
        (s.capacity, s.expired, s.explicit, s.replaced),
        (1, 1, 2, 1)
    );
    assert!(c.is_empty());
}

#[test]
fn listener_may_call_back_into_the_cache() {
    let c: Arc<Cache<u32, u32>> = Arc::new_cyclic(|weak: &std::sync::Weak<Cache<u32, u32>>| {
        let weak = weak.clone();
        Cache::builder(1)
            .eviction_listener(move |k, _, cause| {
                if cause == EvictionCause::Capacity
                    && let Some(c) = weak.upgrade()
                {
                    // Re-entrant: the shard lock is not held here.
                    let _ = c.get(k);
                    let _ = c.len();
                }
            })
            .build()
            .unwrap()
    });
    c.insert(1, 1).unwrap();
    c.insert(2, 2).unwrap();
    assert_eq!(c.len(), 1);
}

#[test]
fn get_or_load_caches_values_and_counts_loads() {
    let c: Cache<u32, u32> = Cache::builder(10)
        .time_to_live(secs(5))
        .record_stats(true)
        .build()
        .unwrap();
    let calls = AtomicUsize::new(0);
    let t0 = Instant::now();
    let load = || {
        calls.fetch_add(1, Ordering::SeqCst);
        42
    };
    assert_eq!(c.get_or_load_at(&1, t0, load), 42);
    assert_eq!(c.get_or_load_at(&1, t0 + secs(4), load), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The loaded value got the default TTL.
    assert_eq!(c.get_or_load_at(&1, t0 + secs(5), load), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let s = c.stats();
    assert_eq!((s.loads, s.load_failures, s.load_waits), (2, 0, 0));
    assert_eq!((s.hits, s.misses), (1, 2));
    assert!(s.load_time() >= s.mean_load_time());
}

#[test]
fn failed_loads_are_not_cached_by_default() {
    let c: Cache<u32, u32> = Cache::new(10).unwrap();
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let r = c.try_get_or_load(&7, || {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("down")
        });
        assert_eq!(*r.unwrap_err(), "down");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(c.stats().load_failures, 3);
    assert_eq!(c.len(), 0);
    assert_eq!(c.try_get_or_load(&7, || Ok::<_, &str>(1)), Ok(1));
}

#[test]
fn negative_caching_remembers_failures_for_their_own_ttl() {
    let c: Cache<u32, u32> = Cache::builder(10)
        .time_to_live(secs(600))
        .negative_ttl(secs(5))
        .build()
        .unwrap();
    let calls = AtomicUsize::new(0);
    let t0 = Instant::now();
    let failing = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<u32, String>("not found".into())
    };
    assert!(c.try_get_or_load_at(&7, t0, failing).is_err());
    for s in 1..5 {
        let e = c.try_get_or_load_at(&7, t0 + secs(s), failing).unwrap_err();
        assert_eq!(*e, "not found");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "answered from the negative cache"
    );
    assert_eq!(c.stats().negative_hits, 4);
    // After the negative TTL the loader runs again.
    assert!(c.try_get_or_load_at(&7, t0 + secs(5), failing).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A write forgets the failure.
    c.insert_at(7, 70, t0 + secs(6)).unwrap();
    assert_eq!(c.try_get_or_load_at(&7, t0 + secs(6), failing), Ok(70));
    c.remove_at(&7, t0 + secs(6));
    assert_eq!(
        c.try_get_or_load_at(&7, t0 + secs(6), || Ok::<_, String>(71)),
        Ok(71)
    );
    // A negative entry is never returned by get.
    assert!(c.try_get_or_load_at(&8, t0, failing).is_err());
    assert_eq!(c.get_at(&8, t0), None);
    c.check_invariants();
}

#[test]
fn a_write_during_a_load_wins_over_the_loaded_value() {
    let c: Arc<Cache<u32, u32>> = Arc::new(Cache::new(10).unwrap());
    let c2 = Arc::clone(&c);
    // The loader itself performs the concurrent write (deterministic
    // interleaving, no threads): the load started before the write.
    let v = c.get_or_load(&1, move || {
        c2.insert(1, 200).unwrap();
        100
    });
    assert_eq!(v, 100, "the loader's caller gets what it loaded");
    assert_eq!(
        c.get(&1),
        Some(200),
        "the fill was cancelled: the write wins"
    );
    let c3 = Arc::clone(&c);
    let v = c.get_or_load(&2, move || {
        c3.insert(2, 1).unwrap();
        c3.remove(&2);
        5
    });
    assert_eq!(v, 5);
    assert_eq!(
        c.get(&2),
        None,
        "a remove during the load cancels its fill too"
    );
}

#[test]
fn a_loader_result_too_heavy_to_cache_is_still_returned() {
    let c = Cache::<u32, Vec<u8>>::builder(10)
        .weigher(|_: &u32, v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    assert_eq!(c.get_or_load(&1, || vec![0; 11]).len(), 11);
    assert_eq!(c.len(), 0);
}

#[test]
fn a_panicking_loader_does_not_wedge_the_key() {
    let c: Cache<u32, u32> = Cache::new(10).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.get_or_load(&1, || panic!("loader bug"));
    }));
    assert!(r.is_err());
    assert_eq!(c.get_or_load(&1, || 3), 3);
    c.check_invariants();
}

/// One-hit scans must not flush the hot set (S3-FIFO's small queue
/// filters them; with admission TinyLFU too), while an exact LRU loses it
/// to every scan longer than its capacity.
#[test]
fn scans_do_not_flush_the_hot_set() {
    fn run(c: &Cache<u64, u64>) -> f64 {
        let hot: Vec<u64> = (0..500).collect();
        let mut scan = 1_000_000u64;
        let (mut hits, mut gets) = (0u64, 0u64);
        for round in 0..40 {
            // The hot set, read three times per round.
            for _ in 0..3 {
                for &k in &hot {
                    if round > 0 {
                        gets += 1;
                    }
                    if c.get(&k).is_some() {
                        hits += u64::from(round > 0);
                    } else {
                        c.insert(k, k).unwrap();
                    }
                }
            }
            // A scan of 2,000 one-hit keys: twice the capacity.
            for _ in 0..2000 {
                if c.get(&scan).is_none() {
                    c.insert(scan, scan).unwrap();
                }
                scan += 1;
            }
        }
        c.check_invariants();
        hits as f64 / gets as f64
    }
    for (policy, admission) in [
        (Policy::S3Fifo, Admission::AdmitAll),
        (Policy::S3Fifo, Admission::TinyLfu),
        (Policy::WTinyLfu, Admission::TinyLfu),
    ] {
        let c = Cache::builder(1000)
            .shards(1)
            .policy(policy)
            .admission(admission)
            .build()
            .unwrap();
        let r = run(&c);
        assert!(r > 0.99, "{policy:?} {admission:?}: hot-set hit ratio {r}");
    }
    let lru = Cache::builder(1000)
        .shards(1)
        .policy(Policy::Lru)
        .build()
        .unwrap();
    let r = run(&lru);
    assert!(
        (r - 2.0 / 3.0).abs() < 1e-9,
        "LRU misses every first read after a scan: {r}"
    );
}

#[test]
fn caches_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache<u64, String>>();
    assert_send_sync::<Cache<String, Arc<Vec<u8>>>>();
    assert_send_sync::<dispatchkit_cache::CacheBuilder<u64, u64>>();
}

/// W-TinyLFU with a weigher: a heavy key seen once does not push out hot
/// light entries (it must win one frequency duel per victim), while a
/// heavy key requested again and again earns its place, at the expense of
/// cold entries, not hot ones.
#[test]
fn w_tinylfu_admits_heavy_entries_only_on_frequency() {
    let c = Cache::builder(1_000)
        .shards(1)
        .policy(Policy::WTinyLfu)
        .weigher(|_: &u64, w: &u64| *w)
        .estimated_entries(100)
        .build()
        .unwrap();
    let access = |k: u64, w: u64| {
        if c.get(&k).is_none() {
            c.insert(k, w).unwrap();
        }
    };
    // 40 hot entries of weight 10 (400), each requested 20 times.
    for _ in 0..20 {
        for k in 0..40 {
            access(k, 10);
        }
    }
    let mut cold = 1_000u64;
    let mut touch_cold = |n: usize| {
        for _ in 0..n {
            access(cold, 10);
            cold += 1;
        }
    };
    // Cold one-off entries fill the rest and keep the window turning.
    touch_cold(80);
    // A heavy one-off: weight 300, seen once.
    access(500, 300);
    touch_cold(40);
    let hot = (0..40).filter(|k| c.get(k).is_some()).count();
    assert_eq!(hot, 40, "a heavy one-off displaced hot entries");
    assert_eq!(c.get(&500), None, "a heavy one-off was admitted");
    // A heavy key requested often is admitted, and only cold entries make
    // room for it.
    for _ in 0..15 {
        access(501, 300);
        touch_cold(3);
        for k in 0..40 {
            access(k, 10);
        }
    }
    assert_eq!(c.get(&501), Some(300), "a frequent heavy key was kept out");
    let hot = (0..40).filter(|k| c.get(k).is_some()).count();
    assert_eq!(hot, 40, "the heavy key displaced hot entries");
    c.check_invariants();
    assert!(c.weight() <= 1_000);
}

#[test]
fn hits_and_misses_are_counted_on_request_the_rest_always() {
    let lookups = |c: &Cache<u32, u32>| {
        c.insert(1, 1).unwrap();
        c.insert(1, 2).unwrap();
        assert_eq!(c.get(&1), Some(2));
        assert!(!c.contains_key(&2));
        let s = c.stats();
        assert_eq!(s.inserts, 2);
        assert_eq!(s.evictions.replaced, 1);
        (s.hits, s.misses)
    };
    let plain: Cache<u32, u32> = Cache::new(10).unwrap();
    assert_eq!(lookups(&plain), (0, 0), "off by default");
    let recorded = Cache::builder(10).record_stats(true).build().unwrap();
    assert_eq!(lookups(&recorded), (1, 1));
    for policy in [Policy::S3Fifo, Policy::Lru] {
        let c = Cache::builder(10).policy(policy).build().unwrap();
        assert_eq!(lookups(&c), (0, 0), "{policy:?}");
        let c = Cache::builder(10)
            .policy(policy)
            .record_stats(true)
            .build()
            .unwrap();
        assert_eq!(lookups(&c), (1, 1), "{policy:?}");
    }
    // W-TinyLFU's window climber samples the hit ratio: always counted.
    let w = Cache::builder(10).policy(Policy::WTinyLfu).build().unwrap();
    assert_eq!(lookups(&w), (1, 1));
    let w = Cache::builder(10)
        .policy(Policy::WTinyLfu)
        .record_stats(false)
        .build()
        .unwrap();
    assert_eq!(lookups(&w), (1, 1));
}

#[test]
fn a_replace_counts_alike_with_and_without_a_listener() {
    // Without a listener an in-place replace skips collecting the old
    // value; with one it is reported. The counters must not tell them apart.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    // One shard and a fixed hasher each: two caches with their own random
    // seeds would spread the keys differently and evict differently.
    let fixed = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default;
    let heard: Cache<u32, u32, _, _> = Cache::builder(4)
        .shards(1)
        .hasher(fixed())
        .eviction_listener(move |k, v, cause| s2.lock().unwrap().push((*k, *v, cause)))
        .build()
        .unwrap();
    let quiet: Cache<u32, u32, _, _> = Cache::builder(4).shards(1).hasher(fixed()).build().unwrap();
    for c in [&heard, &quiet] {
        for round in 0..3 {
            for k in 0..6 {
                c.insert(k, k * 10 + round).unwrap();
            }
        }
        c.insert(1, 7).unwrap();
        c.check_invariants();
    }
    let (a, b) = (heard.stats(), quiet.stats());
    assert_eq!(a, b);
    assert_eq!(a.inserts, 19);
    assert_eq!(
        a.inserts - a.evictions.replaced,
        heard.len() as u64 + a.evictions.capacity
    );
    let replaced = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.2 == EvictionCause::Replaced)
        .count();
    assert_eq!(replaced as u64, a.evictions.replaced);
    assert!(a.evictions.replaced > 0 && a.evictions.capacity > 0);
    assert_eq!(quiet.get(&1), heard.get(&1));
}
