//! Issue 14, the cache's cases: a store that panics or errors never wedges
//! the write-behind queue or loses a write (cases 2 and 6), instants the
//! cache cannot set a deadline at are refused instead of silently dropping
//! the entry (case 11). Every call that could hang runs under a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dispatchkit_cache::{Cache, CacheError, SharedTier, Store, StorePanic, TierConfig, WriteMode};
use dispatchkit_test_support::Down;
use dispatchkit_test_support::within;

/// A store that panics on the next `panics` puts, errors on the next
/// `errors` puts, and can hold puts at a barrier.
#[derive(Default)]
struct Faulty {
    data: Mutex<HashMap<u64, String>>,
    panics: AtomicU32,
    errors: AtomicU32,
    hold: Mutex<Option<Arc<Barrier>>>,
    puts: AtomicU32,
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl Store<u64, String> for Faulty {
    type Error = Down;
    fn get(&self, key: &u64) -> Result<Option<String>, Down> {
        Ok(self.data.lock().unwrap().get(key).cloned())
    }
    fn put(&self, key: &u64, value: &String) -> Result<(), Down> {
        self.puts.fetch_add(1, SeqCst);
        let gate = self.hold.lock().unwrap().clone();
        if let Some(b) = gate {
            b.wait(); // the test sees this put in flight
            b.wait(); // and lets it go
        }
        if take(&self.panics) {
            panic!("disk on fire");
        }
        if take(&self.errors) {
            return Err(Down);
        }
        self.data.lock().unwrap().insert(*key, value.clone());
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Down> {
        self.data.lock().unwrap().remove(key);
        Ok(())
    }
}

type Tier = Arc<SharedTier<u64, String, Faulty>>;

fn behind(capacity: usize, attempts: u32) -> Tier {
    let config = TierConfig {
        write_mode: WriteMode::Behind {
            queue_capacity: capacity,
        },
        store_attempts: attempts,
    };
    SharedTier::new(Cache::new(100).unwrap(), Faulty::default(), config).unwrap()
}

fn quiet_panics() {
    // The store's own panics are expected: keep them out of the output,
    // and every other panic (a failing assertion) in it.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"disk on fire") {
                previous(info);
            }
        }));
    });
}

#[test]
fn case_02_a_panicking_store_never_wedges_the_queue() {
    quiet_panics();
    let tier = behind(1, 1);
    let a = tier.instance(Cache::new(10).unwrap());
    a.set(1, "first".into()).unwrap();
    tier.store().panics.store(1, SeqCst);
    let e = tier.flush().unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::FlushFailed {
                applied: 0,
                failed: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("disk on fire"), "{e}");
    // The key is pending again, not stuck in flight: a SET on the full
    // queue drains it itself and returns.
    assert_eq!(tier.pending_writes(), 1);
    let (t, a2) = (Arc::clone(&tier), a);
    within(10, move || a2.set(2, "second".into())).unwrap();
    assert_eq!(
        t.store().data.lock().unwrap().get(&1).map(String::as_str),
        Some("first")
    );
    assert_eq!(t.flush().unwrap(), 1);
    assert_eq!(
        t.store().data.lock().unwrap().get(&2).map(String::as_str),
        Some("second")
    );
    t.check_invariants();
}

#[test]
fn case_02_a_full_queue_of_in_flight_writes_is_a_typed_error() {
    // Capacity 1, its write held inside the store by a concurrent flush:
    // SET of another key returns QueueFull at once instead of spinning.
    let tier = behind(1, 1);
    let a = tier.instance(Cache::new(10).unwrap());
    a.set(1, "held".into()).unwrap();
    let gate = Arc::new(Barrier::new(2));
    *tier.store().hold.lock().unwrap() = Some(Arc::clone(&gate));
    let flusher = {
        let tier = Arc::clone(&tier);
        thread::spawn(move || tier.flush())
    };
    gate.wait(); // the flush is inside put(1)
    let r = within(10, move || a.set(2, "refused".into()));
    assert!(
        matches!(
            r,
            Err(CacheError::QueueFull {
                capacity: 1,
                in_flight: 1
            })
        ),
        "{r:?}"
    );
    *tier.store().hold.lock().unwrap() = None;
    gate.wait();
    assert_eq!(flusher.join().unwrap().unwrap(), 1);
    assert_eq!(
        tier.store().data.lock().unwrap().get(&2),
        None,
        "a refused SET wrote"
    );
    assert_eq!(tier.l2().get(&2), None, "a refused SET changed a tier");
    tier.check_invariants();
}

#[test]
fn case_06_every_accepted_write_reaches_the_store_or_is_reported() {
    quiet_panics();
    for (panics, errors) in [(1, 0), (0, 1), (2, 3)] {
        let tier = behind(8, 1);
        let a = tier.instance(Cache::new(10).unwrap());
        a.set(1, "kept".into()).unwrap();
        a.set(2, "also kept".into()).unwrap();
        tier.store().panics.store(panics, SeqCst);
        tier.store().errors.store(errors, SeqCst);
        let mut flushes = 0;
        loop {
            flushes += 1;
            assert!(flushes < 10, "never drained");
            match tier.flush() {
                Ok(_) if tier.pending_writes() == 0 => break,
                Ok(_) => {}
                Err(CacheError::FlushFailed { failed, .. }) => {
                    // Reported with the key and the error, still pending.
                    let failures = tier.failed_writes();
                    assert_eq!(failures.len(), failed, "{failures:?}");
                    for (k, e) in &failures {
                        assert!([1, 2].contains(k));
                        let CacheError::Store { source, .. } = e else {
                            panic!("{e}");
                        };
                        assert!(
                            source.downcast_ref::<StorePanic>().is_some()
                                || source.downcast_ref::<Down>().is_some(),
                            "{source}"
                        );
                    }
                    assert_eq!(tier.pending_writes(), failed);
                }
                Err(e) => panic!("{e}"),
            }
        }
        let data = tier.store().data.lock().unwrap().clone();
        assert_eq!(data.get(&1).map(String::as_str), Some("kept"));
        assert_eq!(data.get(&2).map(String::as_str), Some("also kept"));
        assert!(tier.failed_writes().is_empty());
        tier.check_invariants();
    }
}

#[test]
fn case_06_a_write_through_store_panic_is_an_error_and_changes_nothing() {
    quiet_panics();
    let tier = SharedTier::new(
        Cache::new(100).unwrap(),
        Faulty::default(),
        TierConfig::default(),
    )
    .unwrap();
    let a = tier.instance(Cache::new(10).unwrap());
    tier.store().panics.store(3, SeqCst);
    let e = a.set(1, "x".into()).unwrap_err();
    let CacheError::Store {
        source,
        attempts: 3,
        ..
    } = &e
    else {
        panic!("{e}");
    };
    assert!(source.downcast_ref::<StorePanic>().is_some());
    assert_eq!(a.get(&1).unwrap(), None, "a failed SET reached a tier");
    a.set(1, "y".into()).unwrap();
    assert_eq!(a.get(&1).unwrap().as_deref(), Some("y"));
}

#[test]
fn case_11_instants_beyond_the_deadline_range_are_refused() {
    let year = Duration::from_secs(365 * 86_400);
    let now = Instant::now();
    let ttl = Cache::<u64, u64>::builder(100)
        .time_to_live(Duration::from_secs(60))
        .build()
        .unwrap();
    let far = now + 400 * year;
    let e = ttl.insert_at(1, 1, far).unwrap_err();
    assert!(matches!(e, CacheError::InstantOutOfRange { .. }), "{e}");
    assert!(e.to_string().contains("150 years"), "{e}");
    assert_eq!(ttl.len(), 0, "a refused insert changed the cache");
    assert!(matches!(
        ttl.insert_with_ttl_at(1, 1, Duration::from_secs(5), far),
        Err(CacheError::InstantOutOfRange { .. })
    ));
    // Within range: stored, visible at that instant, gone 60 s later.
    let late = now + 100 * year;
    ttl.insert_at(2, 2, late).unwrap();
    assert_eq!(ttl.get_at(&2, late), Some(2));
    assert_eq!(ttl.get_at(&2, late + Duration::from_secs(60)), None);
    // A far read sees it expired; nothing wraps round.
    assert_eq!(ttl.get_at(&2, far), None);
    // A load at a far instant returns the value without caching it.
    assert_eq!(ttl.get_or_load_at(&3, far, || 30), 30);
    assert_eq!(ttl.get_at(&3, far), None);
    // Time-to-idle sets a deadline too.
    let tti = Cache::<u64, u64>::builder(100)
        .time_to_idle(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(tti.insert_at(1, 1, far).is_err());
    // Without a deadline any instant is fine.
    let plain = Cache::<u64, u64>::new(100).unwrap();
    plain.insert_at(1, 1, far).unwrap();
    assert_eq!(plain.get_at(&1, far), Some(1));
    // The tiers check before writing anything, the store included.
    let tier = SharedTier::new(
        Cache::builder(100)
            .time_to_live(Duration::from_secs(60))
            .build()
            .unwrap(),
        Faulty::default(),
        TierConfig::default(),
    )
    .unwrap();
    let a = tier.instance(Cache::new(10).unwrap());
    assert!(matches!(
        a.set_at(1, "x".into(), far),
        Err(CacheError::InstantOutOfRange { .. })
    ));
    assert_eq!(tier.store().puts.load(SeqCst), 0);
}
