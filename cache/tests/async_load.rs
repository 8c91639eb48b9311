//! `get_or_load_async`: single-flight across tasks, waiters that never
//! block a thread, a cancelled leader replaced by a waiter, errors shared
//! and not cached (unless negative caching is on).
//!
//! The current-thread tests are the "never blocks" proof: every task
//! shares one thread, so a waiter that blocked it would stop the leader
//! too and the run would never finish; each runs on its own thread and the
//! test fails (instead of hanging) if it has not finished in 60 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dispatchkit_cache::Cache;
use tokio::sync::oneshot;

/// Runs `f` on a fresh current-thread runtime on its own thread; fails if
/// it has not finished within 60 s (a blocked runtime never would).
fn on_current_thread<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f());
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the runtime did not finish within 60 s: a task blocked its only thread or a waiter was stranded");
}

/// Yields until `cond` holds.
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::task::yield_now().await;
    }
}

#[test]
fn thousand_tasks_one_load_on_one_thread() {
    on_current_thread(|| async {
        let cache = Arc::new(Cache::<u64, String>::new(100).unwrap());
        let loads = Arc::new(AtomicUsize::new(0));
        let (open, gate) = oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(gate)));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (cache, loads, gate) = (cache.clone(), loads.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load_async(&7, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let g = gate.lock().await.take().expect("one loader");
                        g.await.unwrap();
                        "menu".to_string()
                    })
                    .await
            }));
        }
        // Every other task joins the flight while the loader waits.
        let c = cache.clone();
        until(move || c.stats().load_waits == 999).await;
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        open.send(()).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "menu");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!((s.loads, s.load_waits), (1, 999));
        // Now a hit: no load.
        assert_eq!(
            cache
                .get_or_load_async(&7, || async { unreachable!() })
                .await,
            "menu"
        );
    });
}

#[test]
fn thousand_tasks_one_load_on_two_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = Arc::new(Cache::<u64, u64>::new(100).unwrap());
        let loads = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load_async(&1, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        42
                    })
                    .await
            }));
        }
        let c = cache.clone();
        until(move || c.stats().load_waits == 999).await;
        release.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().loads, 1);
    });
}

#[test]
fn a_cancelled_leader_is_replaced_by_a_waiter() {
    on_current_thread(|| async {
        let cache = Arc::new(Cache::<u64, u64>::new(100).unwrap());
        let started = Arc::new(AtomicUsize::new(0));
        // The leader's loader never finishes.
        let leader = {
            let (cache, started) = (cache.clone(), started.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load_async(&5, || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<u64>().await
                    })
                    .await
            })
        };
        let s = started.clone();
        until(move || s.load(Ordering::SeqCst) == 1).await;
        let mut waiters = Vec::new();
        for i in 0..10u64 {
            let (cache, started) = (cache.clone(), started.clone());
            waiters.push(tokio::spawn(async move {
                cache
                    .get_or_load_async(&5, || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        100 + i
                    })
                    .await
            }));
        }
        let c = cache.clone();
        until(move || c.stats().load_waits == 10).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Cancel the leader: its future is dropped mid-load.
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        let got: Vec<u64> = {
            let mut v = Vec::new();
            for w in waiters {
                v.push(w.await.unwrap());
            }
            v
        };
        // Exactly one waiter took over and every waiter got its value.
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert!(got.iter().all(|&v| v == got[0]), "{got:?}");
        assert!((100..110).contains(&got[0]));
        assert_eq!(cache.get(&5), Some(got[0]));
        assert_eq!(cache.stats().loads, 1);
    });
}

#[derive(Debug, PartialEq)]
struct StoreDown(u32);

#[test]
fn errors_reach_every_waiter_and_are_not_cached() {
    on_current_thread(|| async {
        let cache = Arc::new(Cache::<u64, u64>::new(100).unwrap());
        let release = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, release) = (cache.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .try_get_or_load_async(&9, || async move {
                        release.notified().await;
                        Err::<u64, _>(StoreDown(503))
                    })
                    .await
            }));
        }
        let c = cache.clone();
        until(move || c.stats().load_waits == 49).await;
        release.notify_one();
        let mut errors = Vec::new();
        for t in tasks {
            errors.push(t.await.unwrap().unwrap_err());
        }
        // One error, shared by all 50.
        assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])));
        assert_eq!(*errors[0], StoreDown(503));
        let s = cache.stats();
        assert_eq!((s.loads, s.load_failures), (1, 1));
        // Not cached: the next call loads.
        let v = cache
            .try_get_or_load_async(&9, || async { Ok::<_, StoreDown>(3) })
            .await;
        assert_eq!(v, Ok(3));
        assert_eq!(cache.stats().loads, 2);
    });
}

#[test]
fn negative_caching_is_opt_in_and_timed() {
    on_current_thread(|| async {
        let cache = Cache::<u64, u64>::builder(100)
            .negative_ttl(Duration::from_secs(5))
            .build()
            .unwrap();
        let t0 = Instant::now();
        let r = cache
            .try_get_or_load_at_async(&1, t0, || async { Err::<u64, _>(StoreDown(1)) })
            .await;
        assert_eq!(*r.unwrap_err(), StoreDown(1));
        // Within the TTL the remembered failure answers; this loader
        // (another error) does not run.
        let r = cache
            .try_get_or_load_at_async(&1, t0 + Duration::from_secs(4), || async {
                Err::<u64, _>(StoreDown(2))
            })
            .await;
        assert_eq!(*r.unwrap_err(), StoreDown(1));
        assert_eq!(cache.stats().negative_hits, 1);
        // After it, the loader runs again.
        let r = cache
            .try_get_or_load_at_async(&1, t0 + Duration::from_secs(6), || async {
                Ok::<_, StoreDown>(8)
            })
            .await;
        assert_eq!(r, Ok(8));
        assert_eq!(
            cache
                .get_or_load_at_async(&1, t0 + Duration::from_secs(7), || async { 0 })
                .await,
            8
        );
    });
}

#[test]
fn async_waiters_and_blocking_callers_share_one_flight() {
    let cache = Arc::new(Cache::<u64, u64>::new(100).unwrap());
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let (started, wait_started) = std::sync::mpsc::channel::<()>();
    let leader = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get_or_load(&3, || {
                started.send(()).unwrap();
                wait_go.recv().unwrap();
                77
            })
        })
    };
    // A blocking caller leads the flight...
    wait_started.recv().unwrap();
    let waiters = cache.clone();
    on_current_thread(move || async move {
        // ...and async tasks wait for it without blocking their thread.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = waiters.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load_async(&3, || async { unreachable!("the thread loads") })
                    .await
            }));
        }
        let c = waiters.clone();
        until(move || c.stats().load_waits == 20).await;
        go.send(()).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 77);
        }
    });
    assert_eq!(leader.join().unwrap(), 77);
    assert_eq!(cache.stats().loads, 1);
}

#[test]
fn a_panicking_weigher_abandons_the_flight_instead_of_stranding_waiters() {
    on_current_thread(|| async {
        // The weigher panics on 13: the leader's task dies inside the cache
        // after its loader returned.
        let cache = Arc::new(
            Cache::<u64, u64>::builder(1_000)
                .weigher(|_: &u64, v: &u64| {
                    assert_ne!(*v, 13, "weigher refuses 13");
                    1
                })
                .build()
                .unwrap(),
        );
        let release = Arc::new(tokio::sync::Notify::new());
        let leader = {
            let (cache, release) = (cache.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load_async(&4, || async move {
                        release.notified().await;
                        13
                    })
                    .await
            })
        };
        let c = cache.clone();
        let mut waiters = Vec::new();
        for _ in 0..5 {
            let cache = cache.clone();
            waiters.push(tokio::spawn(async move {
                cache.get_or_load_async(&4, || async { 7 }).await
            }));
        }
        until(move || c.stats().load_waits == 5).await;
        release.notify_one();
        assert!(leader.await.unwrap_err().is_panic());
        // A waiter took over with its own loader; nobody is left parked.
        for w in waiters {
            assert_eq!(w.await.unwrap(), 7);
        }
        assert_eq!(cache.get(&4), Some(7));
    });
}
