//! The tiers over an `AsyncStore`: the same answers as a reference model
//! (proptest, two instances), single-flight fills across instances and
//! tasks, one write order per key held across the store's `.await`
//! (concurrent writers on two threads leave every tier equal to the
//! store), errors and panics of the store, write-behind draining and
//! flushing, cancelled writers that release the key, and blocking and
//! async writers sharing one lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dispatchkit_cache::{AsyncStore, Cache, CacheError, SharedTier, Store, TierConfig, WriteMode};
use proptest::prelude::*;

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store down")
    }
}
impl std::error::Error for Down {}

/// An in-memory database with knobs: reads and writes yield to the
/// scheduler first (so tasks interleave), count calls, and can fail,
/// panic or hang.
#[derive(Default)]
struct Db {
    rows: parking_lot::Mutex<HashMap<u64, u64>>,
    gets: AtomicUsize,
    puts: AtomicUsize,
    fail: AtomicBool,
    panic: AtomicBool,
    hang_puts: AtomicBool,
    gate: tokio::sync::Notify,
    gated_gets: AtomicBool,
    /// A signal between the threads of the mixed-writer test.
    release: AtomicBool,
    /// A blocking put ran while `release` was still false.
    put_before_release: AtomicBool,
    /// Puts running now, and the most ever running at once.
    in_put: AtomicUsize,
    max_in_put: AtomicUsize,
}

impl AsyncStore<u64, u64> for Db {
    type Error = Down;

    async fn get(&self, key: &u64) -> Result<Option<u64>, Down> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if self.gated_gets.load(Ordering::SeqCst) {
            self.gate.notified().await;
        }
        tokio::task::yield_now().await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Down);
        }
        Ok(self.rows.lock().get(key).copied())
    }

    async fn put(&self, key: &u64, value: &u64) -> Result<(), Down> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let running = self.in_put.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_put.fetch_max(running, Ordering::SeqCst);
        let r = self.put_inner(key, value).await;
        self.in_put.fetch_sub(1, Ordering::SeqCst);
        r
    }

    async fn delete(&self, key: &u64) -> Result<(), Down> {
        tokio::task::yield_now().await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Down);
        }
        self.rows.lock().remove(key);
        Ok(())
    }
}

impl Db {
    async fn put_inner(&self, key: &u64, value: &u64) -> Result<(), Down> {
        tokio::task::yield_now().await;
        if self.hang_puts.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        assert!(!self.panic.load(Ordering::SeqCst), "the store panicked");
        if self.fail.load(Ordering::SeqCst) {
            return Err(Down);
        }
        self.rows.lock().insert(*key, *value);
        // Return after a value-dependent number of scheduler turns, so that
        // writers that were not serialised would fill the tiers in another
        // order than they wrote the store.
        for _ in 0..value % 4 {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// Blocking access to the same rows, for the mixed-writer test.
impl Store<u64, u64> for Db {
    type Error = Down;
    fn get(&self, key: &u64) -> Result<Option<u64>, Down> {
        Ok(self.rows.lock().get(key).copied())
    }
    fn put(&self, key: &u64, value: &u64) -> Result<(), Down> {
        if !self.release.load(Ordering::SeqCst) {
            self.put_before_release.store(true, Ordering::SeqCst);
        }
        self.rows.lock().insert(*key, *value);
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Down> {
        self.rows.lock().remove(key);
        Ok(())
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

type Shared = Arc<SharedTier<u64, u64, Db>>;

fn tiers(mode: WriteMode) -> Shared {
    SharedTier::new(
        Cache::new(1_000).unwrap(),
        Db::default(),
        TierConfig {
            write_mode: mode,
            ..TierConfig::default()
        },
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Get(usize, u64),
    Set(usize, u64, u64),
    Delete(usize, u64),
    Invalidate(usize, u64),
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    let inst = 0..2usize;
    let key = 0..6u64;
    prop_oneof![
        3 => (inst.clone(), key.clone()).prop_map(|(i, k)| Step::Get(i, k)),
        3 => (inst.clone(), key.clone(), 0..100u64).prop_map(|(i, k, v)| Step::Set(i, k, v)),
        1 => (inst.clone(), key.clone()).prop_map(|(i, k)| Step::Delete(i, k)),
        1 => (inst, key).prop_map(|(i, k)| Step::Invalidate(i, k)),
        1 => Just(Step::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every GET through either instance answers what the model (a map of
    /// the last write per key) holds, in both write modes; after a flush
    /// the store holds the model too.
    #[test]
    fn async_tiers_answer_like_the_model(
        steps in prop::collection::vec(step(), 1..60),
        behind in any::<bool>(),
    ) {
        let mode = if behind { WriteMode::Behind { queue_capacity: 3 } } else { WriteMode::Through };
        current_thread().block_on(async {
            let shared = tiers(mode);
            let inst = [shared.instance(Cache::new(4).unwrap()), shared.instance(Cache::new(4).unwrap())];
            let mut model: HashMap<u64, u64> = HashMap::new();
            for s in &steps {
                match *s {
                    Step::Get(i, k) => {
                        prop_assert_eq!(inst[i].get_async(&k).await.unwrap(), model.get(&k).copied(), "{:?}", s);
                    }
                    Step::Set(i, k, v) => {
                        inst[i].set_async(k, v).await.unwrap();
                        model.insert(k, v);
                    }
                    Step::Delete(i, k) => {
                        inst[i].delete_async(&k).await.unwrap();
                        model.remove(&k);
                    }
                    Step::Invalidate(i, k) => inst[i].invalidate_async(&k).await,
                    Step::Flush => {
                        shared.flush_async().await.unwrap();
                    }
                }
            }
            shared.flush_async().await.unwrap();
            prop_assert_eq!(&*shared.store().rows.lock(), &model);
            shared.check_invariants();
            Ok(())
        })?;
    }
}

#[test]
fn concurrent_misses_across_instances_read_the_store_once() {
    current_thread().block_on(async {
        let shared = tiers(WriteMode::Through);
        shared.store().rows.lock().insert(5, 55);
        shared.store().gated_gets.store(true, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let t = shared.instance(Cache::new(100).unwrap());
            tasks.push(tokio::spawn(async move { t.get_async(&5).await }));
        }
        // Every task is parked on the one store read (or its L2 flight).
        while shared.l2().stats().load_waits < 199 {
            tokio::task::yield_now().await;
        }
        shared.store().gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Some(55));
        }
        assert_eq!(shared.store().gets.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn concurrent_writers_leave_every_tier_equal_to_the_store() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let contended = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        for round in 0..50u64 {
            let shared = tiers(WriteMode::Through);
            let a = Arc::new(shared.instance(Cache::new(10).unwrap()));
            let b = Arc::new(shared.instance(Cache::new(10).unwrap()));
            let mut tasks = Vec::new();
            for w in 0..8u64 {
                let t = if w % 2 == 0 { a.clone() } else { b.clone() };
                let (shared, contended) = (shared.clone(), contended.clone());
                tasks.push(tokio::spawn(async move {
                    if shared.store().in_put.load(Ordering::SeqCst) > 0 {
                        // Another writer of the key is inside the store.
                        contended.fetch_add(1, Ordering::SeqCst);
                    }
                    t.set_async(1, round * 100 + w).await.unwrap();
                    // Read back through this instance while others write.
                    t.get_async(&1).await.unwrap()
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(
                shared.store().max_in_put.load(Ordering::SeqCst),
                1,
                "round {round}: writes of one key never overlap in the store"
            );
            let stored = shared.store().rows.lock().get(&1).copied();
            assert!(stored.is_some());
            assert_eq!(
                shared.l2().get(&1),
                stored,
                "round {round}: L2 is the store's value"
            );
            assert_eq!(a.get_async(&1).await.unwrap(), stored, "round {round}: a");
            assert_eq!(b.get_async(&1).await.unwrap(), stored, "round {round}: b");
            assert_eq!(shared.store().puts.load(Ordering::SeqCst), 8);
        }
    });
    assert!(
        contended.load(Ordering::SeqCst) > 0,
        "writers did meet a held key lock"
    );
}

#[test]
fn store_errors_and_panics_change_no_tier() {
    current_thread().block_on(async {
        let shared = tiers(WriteMode::Through);
        let a = shared.instance(Cache::new(10).unwrap());
        a.set_async(1, 10).await.unwrap();
        shared.store().fail.store(true, Ordering::SeqCst);
        let puts = shared.store().puts.load(Ordering::SeqCst);
        let e = a.set_async(1, 11).await.unwrap_err();
        assert!(
            matches!(
                e,
                CacheError::Store {
                    operation: "put",
                    attempts: 3,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            shared.store().puts.load(Ordering::SeqCst),
            puts + 3,
            "retried 3 times"
        );
        assert_eq!(a.get_async(&1).await.unwrap(), Some(10), "L1 unchanged");
        assert_eq!(shared.l2().get(&1), Some(10), "L2 unchanged");
        // A read the store cannot answer is an error, not a None.
        let b = shared.instance(Cache::new(10).unwrap());
        assert!(matches!(
            b.get_async(&2).await,
            Err(CacheError::Store {
                operation: "get",
                ..
            })
        ));
        // A panicking store is a failed attempt, not a dead task.
        shared.store().fail.store(false, Ordering::SeqCst);
        shared.store().panic.store(true, Ordering::SeqCst);
        let e = a.set_async(1, 12).await.unwrap_err();
        assert!(
            matches!(
                e,
                CacheError::Store {
                    operation: "put",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("panicked"), "{e}");
        shared.store().panic.store(false, Ordering::SeqCst);
        a.set_async(1, 13).await.unwrap();
        assert_eq!(b.get_async(&1).await.unwrap(), Some(13));
    });
}

#[test]
fn write_behind_drains_and_flushes_through_the_async_store() {
    current_thread().block_on(async {
        let shared = tiers(WriteMode::Behind { queue_capacity: 2 });
        let a = shared.instance(Cache::new(10).unwrap());
        a.set_async(1, 10).await.unwrap();
        a.set_async(1, 11).await.unwrap(); // coalesced
        a.set_async(2, 20).await.unwrap();
        assert_eq!(shared.store().puts.load(Ordering::SeqCst), 0);
        a.set_async(3, 30).await.unwrap(); // full: the oldest (1) is applied
        assert_eq!(shared.store().rows.lock().get(&1), Some(&11));
        assert_eq!(shared.pending_writes(), 2);
        // Pending writes answer reads (the store is stale for 2 and 3).
        let b = shared.instance(Cache::new(10).unwrap());
        assert_eq!(b.get_async(&3).await.unwrap(), Some(30));
        assert_eq!(shared.flush_async().await.unwrap(), 2);
        assert_eq!(shared.store().rows.lock().len(), 3);
        assert_eq!(a.stats().coalesced_writes, 1);
    });
}

#[test]
fn a_cancelled_writer_releases_the_key() {
    current_thread().block_on(async {
        let shared = tiers(WriteMode::Through);
        let a = Arc::new(shared.instance(Cache::new(10).unwrap()));
        shared.store().hang_puts.store(true, Ordering::SeqCst);
        let stuck = {
            let a = a.clone();
            tokio::spawn(async move { a.set_async(1, 1).await })
        };
        while shared.store().puts.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Holding the key's lock across the hung store write.
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        shared.store().hang_puts.store(false, Ordering::SeqCst);
        // The lock was released with the dropped future.
        tokio::time::timeout(Duration::from_secs(30), a.set_async(1, 2))
            .await
            .expect("the key's lock is free")
            .unwrap();
        assert_eq!(a.get_async(&1).await.unwrap(), Some(2));
    });
}

#[test]
fn blocking_and_async_writers_share_the_key_lock() {
    let shared = tiers(WriteMode::Through);
    shared.store().hang_puts.store(true, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let async_side = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            current_thread().block_on(async {
                let a = shared.instance(Cache::new(10).unwrap());
                let w = tokio::spawn(async move { a.set_async(9, 1).await });
                while shared.store().puts.load(Ordering::SeqCst) == 0 {
                    tokio::task::yield_now().await;
                }
                tx.send(()).unwrap();
                // Hold the lock (the store write hangs) until the blocking
                // writer has certainly queued behind it, then cancel.
                while !shared.store().release.load(Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
                w.abort();
                let _ = w.await;
            })
        })
    };
    rx.recv().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let blocking = {
        let (shared, done) = (shared.clone(), done.clone());
        std::thread::spawn(move || {
            let b = shared.instance(Cache::new(10).unwrap());
            // Store::put of the same rows (the blocking form).
            let r = b.set(9, 2);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    // While the async writer holds the key, the blocking one waits.
    for _ in 0..100 {
        std::thread::yield_now();
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "the blocking writer waited for the lock"
    );
    // Release: the async writer is cancelled, the blocking one proceeds.
    shared.store().hang_puts.store(false, Ordering::SeqCst);
    shared.store().release.store(true, Ordering::SeqCst);
    async_side.join().unwrap();
    blocking.join().unwrap().unwrap();
    assert!(
        !shared.store().put_before_release.load(Ordering::SeqCst),
        "the blocking writer reached the store while the async writer held the key"
    );
    assert_eq!(shared.store().rows.lock().get(&9), Some(&2));
}
