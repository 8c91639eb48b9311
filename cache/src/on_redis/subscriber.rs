//! The invalidation subscriber: one thread per `RedisTier` listening on
//! `<prefix>:inv` and removing the keys other processes wrote from this
//! process's L1s; it empties the L1s on every (re)subscription, since
//! pub/sub may drop messages while a subscriber is away.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use dispatchkit_redis_conn::Pool;

use super::{Codec, Shared};
use crate::cache::Cache;
use crate::weigher::Weigher;

/// An id for this process's tier, carried in its messages so that it can
/// skip its own.
pub(super) fn origin_id() -> u64 {
    use std::hash::BuildHasher as _;
    let s = std::collections::hash_map::RandomState::new();
    s.hash_one((std::process::id(), Instant::now()))
}

/// The subscriber thread's loop (returns when `shared.stop` is set).
pub(super) fn subscribe_loop<K: Hash + Eq, V, W: Weigher<K, V>, S: BuildHasher, C: Codec<K>>(
    shared: &Shared<K, V, W, S>,
    pool: &Pool,
    channel: &[u8],
    origin: u64,
    codec: &C,
) {
    while !shared.stop.load(Relaxed) {
        let Ok(mut con) = pool.connect() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = con.set_read_timeout(Some(Duration::from_millis(100)));
        let mut ps = con.as_pubsub();
        if ps.subscribe(channel).is_err() {
            continue;
        }
        // Messages may have been missed while unsubscribed: start clean.
        shared.each_l1(Cache::clear);
        shared.counters.resubscriptions.fetch_add(1, Relaxed);
        shared.subscribed.store(true, Relaxed);
        while !shared.stop.load(Relaxed) {
            match ps.get_message() {
                Ok(msg) => {
                    let p = msg.get_payload_bytes();
                    let (Some(from), Some(key)) = (p.get(..8), p.get(8..)) else {
                        continue;
                    };
                    if from == origin.to_le_bytes() {
                        continue;
                    }
                    if let Ok(k) = codec.decode(key) {
                        shared.each_l1(|c| {
                            c.remove(&k);
                        });
                        shared.counters.invalidations_received.fetch_add(1, Relaxed);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
        shared.subscribed.store(false, Relaxed);
    }
}
