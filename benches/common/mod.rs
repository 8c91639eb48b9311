//! Helpers shared by the bench binaries: two-thread timing (the local
//! `redis-server` is `dispatchkit_test_support::redis_server`).

#![allow(dead_code, reason = "each bench binary uses a subset")]

use std::time::{Duration, Instant};

/// Runs `work(thread, iters_for_thread)` on two scoped threads that start
/// together and returns the wall time until both finish: the 2-thread
/// figure is total elements / this time.
pub fn two_threads<F>(iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (barrier, work) = (&barrier, &work);
            s.spawn(move || {
                barrier.wait();
                work(t, iters / 2 + (iters % 2) * (t as u64 == 0) as u64);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Scope end joins both threads.
        start
    })
    .elapsed()
}
