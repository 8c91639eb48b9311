//! Multi-threaded stress: each test asserts its invariant AND that the
//! threads really contended (lock waits, overlapping operations, joined
//! loads), so it cannot pass by running serially.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dispatchkit_cache::{Cache, CacheError, Policy, SharedTier, Store, TierConfig, WriteMode};

/// xorshift64*, one per thread.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Counts operations that started while another thread was mid-operation.
#[derive(Default)]
struct Overlap {
    active: AtomicUsize,
    overlapped: AtomicU64,
}

impl Overlap {
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.active.fetch_add(1, SeqCst) > 0 {
            self.overlapped.fetch_add(1, SeqCst);
        }
        let r = f();
        self.active.fetch_sub(1, SeqCst);
        r
    }
}

const THREADS: usize = 4;

#[test]
fn capacity_in_entries_and_bytes_is_never_exceeded() {
    capacity_is_never_exceeded(Policy::S3Fifo);
}

#[test]
fn w_tinylfu_capacity_in_entries_and_bytes_is_never_exceeded() {
    capacity_is_never_exceeded(Policy::WTinyLfu);
}

fn capacity_is_never_exceeded(policy: Policy) {
    let by_count: Cache<u64, u64> = Cache::builder(512)
        .shards(2)
        .policy(policy)
        .build()
        .unwrap();
    let by_bytes = Cache::<u64, Vec<u8>>::builder(16_384)
        .weigher(|_: &u64, v: &Vec<u8>| v.len() as u64)
        .policy(policy)
        .shards(2)
        .estimated_entries(128)
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    let overlap = Overlap::default();
    let checks = AtomicU64::new(0);
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..THREADS {
            let (by_count, by_bytes, overlap, start) = (&by_count, &by_bytes, &overlap, &start);
            writers.push(s.spawn(move || {
                let mut r = rng(t as u64 + 1);
                start.wait();
                // At least 100k operations, more until a shard lock was
                // contended (bounded).
                for i in 0.. {
                    if i >= 100_000
                        && (by_count.stats().lock_waits + by_bytes.stats().lock_waits > 0
                            || i >= 2_000_000)
                    {
                        break;
                    }
                    let k = r() % 4096;
                    overlap.run(|| match r() % 4 {
                        0 => {
                            by_count.remove(&k);
                            by_bytes.remove(&k);
                        }
                        1 => {
                            let _ = by_count.get(&k);
                            let _ = by_bytes.get(&k);
                        }
                        _ => {
                            by_count.insert(k, k).unwrap();
                            let len = (r() % 4000) as usize + 1;
                            by_bytes.insert(k, vec![0; len]).unwrap();
                        }
                    });
                }
            }));
        }
        // A monitor reading the totals while the writers run.
        s.spawn(|| {
            while !done.load(SeqCst) {
                assert!(by_count.len() <= 512, "entries over capacity");
                assert!(by_count.weight() <= 512);
                assert!(by_bytes.weight() <= 16_384, "bytes over capacity");
                checks.fetch_add(1, SeqCst);
                thread::yield_now();
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, SeqCst);
    });
    by_count.check_invariants();
    by_bytes.check_invariants();
    let (sc, sb) = (by_count.stats(), by_bytes.stats());
    eprintln!(
        "overlapping ops {}, lock waits {} + {}, monitor checks {}",
        overlap.overlapped.load(SeqCst),
        sc.lock_waits,
        sb.lock_waits,
        checks.load(SeqCst)
    );
    assert!(
        overlap.overlapped.load(SeqCst) > 0,
        "threads never overlapped"
    );
    assert!(
        sc.lock_waits + sb.lock_waits > 0,
        "no shard lock was ever contended"
    );
    assert!(sb.evictions.capacity > 0 && sc.evictions.capacity > 0);
    assert!(checks.load(SeqCst) > 0);
}

#[test]
fn single_flight_runs_the_loader_once_per_key_per_miss_wave() {
    const WAVES: u64 = 60;
    let cache: Cache<u64, u64> = Cache::new(1000).unwrap();
    let barrier = Barrier::new(THREADS);
    let loads: Vec<AtomicU64> = (0..WAVES).map(|_| AtomicU64::new(0)).collect();
    let values = Mutex::new(vec![Vec::new(); WAVES as usize]);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for wave in 0..WAVES {
                    // Five keys reused across waves: each wave starts from a
                    // miss because the previous wave's value is removed.
                    let key = wave % 5;
                    if barrier.wait().is_leader() {
                        cache.remove(&key);
                    }
                    barrier.wait();
                    let waits_before = cache.stats().load_waits;
                    let v = cache.get_or_load(&key, || {
                        loads[wave as usize].fetch_add(1, SeqCst);
                        // Hold the load until every other caller has joined
                        // it (bounded: never hangs the test).
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while cache.stats().load_waits < waits_before + (THREADS as u64 - 1)
                            && Instant::now() < deadline
                        {
                            thread::yield_now();
                        }
                        1000 + wave
                    });
                    values.lock().unwrap()[wave as usize].push(v);
                    barrier.wait();
                }
            });
        }
    });
    for (w, l) in loads.iter().enumerate() {
        assert_eq!(
            l.load(SeqCst),
            1,
            "wave {w} ran the loader {} times",
            l.load(SeqCst)
        );
    }
    for (w, vs) in values.lock().unwrap().iter().enumerate() {
        assert_eq!(vs.len(), THREADS);
        assert!(vs.iter().all(|&v| v == 1000 + w as u64), "wave {w}: {vs:?}");
    }
    let s = cache.stats();
    assert_eq!(s.loads, WAVES);
    assert_eq!(
        s.load_waits,
        WAVES * (THREADS as u64 - 1),
        "every other caller waited"
    );
    cache.check_invariants();
}

/// A store that fails every `fail_every`-th call, counting calls.
#[derive(Default)]
struct FlakyStore {
    data: Mutex<HashMap<u64, u64>>,
    calls: AtomicU64,
    fail_every: u64,
}

#[derive(Debug)]
struct Flake;
impl std::fmt::Display for Flake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected store failure")
    }
}
impl std::error::Error for Flake {}

impl FlakyStore {
    fn tick(&self) -> Result<(), Flake> {
        let n = self.calls.fetch_add(1, SeqCst) + 1;
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            Err(Flake)
        } else {
            Ok(())
        }
    }
}

impl Store<u64, u64> for FlakyStore {
    type Error = Flake;
    fn get(&self, key: &u64) -> Result<Option<u64>, Flake> {
        self.tick()?;
        Ok(self.data.lock().unwrap().get(key).copied())
    }
    fn put(&self, key: &u64, value: &u64) -> Result<(), Flake> {
        self.tick()?;
        self.data.lock().unwrap().insert(*key, *value);
        Ok(())
    }
    fn delete(&self, key: &u64) -> Result<(), Flake> {
        self.tick()?;
        self.data.lock().unwrap().remove(key);
        Ok(())
    }
}

#[test]
fn write_behind_loses_no_write_after_flush() {
    let store = FlakyStore {
        fail_every: 7,
        ..FlakyStore::default()
    };
    let shared = SharedTier::new(
        Cache::new(4096).unwrap(),
        store,
        TierConfig {
            write_mode: WriteMode::Behind { queue_capacity: 32 },
            store_attempts: 2,
        },
    )
    .unwrap();
    let done = AtomicBool::new(false);
    let overlap = Overlap::default();
    let refused = AtomicU64::new(0);
    let flushed = AtomicU64::new(0);
    let acked_sets = AtomicU64::new(0);
    // Per writer: the last acknowledged value of each of its keys.
    let last: Vec<Mutex<HashMap<u64, u64>>> = (0..THREADS).map(|_| Mutex::default()).collect();
    let start = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..THREADS {
            let (shared, overlap, refused, last, start, acked_sets) =
                (&shared, &overlap, &refused, &last, &start, &acked_sets);
            writers.push(s.spawn(move || {
                let inst = shared.instance(Cache::new(64).unwrap());
                let mut r = rng(100 + t as u64);
                start.wait();
                // At least 3,000 writes, more until operations overlapped
                // (bounded).
                for i in 0..300_000u64 {
                    if i >= 3_000 && overlap.overlapped.load(SeqCst) > 0 {
                        break;
                    }
                    // Each writer owns keys t, t + THREADS, …: its last
                    // acknowledged write per key is the expected final value.
                    let key = (r() % 50) * THREADS as u64 + t as u64;
                    let value = (i << 8) | t as u64;
                    match overlap.run(|| inst.set(key, value)) {
                        Ok(()) => {
                            acked_sets.fetch_add(1, SeqCst);
                            last[t].lock().unwrap().insert(key, value);
                            // Read-your-writes through the tiers.
                            assert_eq!(inst.get(&key).ok().flatten(), Some(value));
                        }
                        // Full: draining failed, or a concurrent flush is
                        // applying every pending write.
                        Err(CacheError::WriteBehindFull { .. } | CacheError::QueueFull { .. }) => {
                            refused.fetch_add(1, SeqCst);
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            }));
        }
        s.spawn(|| {
            start.wait();
            while !done.load(SeqCst) {
                if let Ok(n) = overlap.run(|| shared.flush()) {
                    flushed.fetch_add(n as u64, SeqCst);
                }
                thread::yield_now();
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, SeqCst);
    });
    // Flush until every write landed (failures are retried, never dropped).
    let mut rounds = 0;
    while shared.pending_writes() > 0 {
        let _ = shared.flush();
        rounds += 1;
        assert!(rounds < 100, "writes stuck in the queue");
    }
    shared.check_invariants();
    let data = shared.store().data.lock().unwrap().clone();
    let mut keys = 0;
    for l in &last {
        for (k, v) in l.lock().unwrap().iter() {
            assert_eq!(data.get(k), Some(v), "key {k}: acknowledged write lost");
            keys += 1;
        }
    }
    assert_eq!(data.len(), keys, "the store holds only acknowledged writes");
    let inst = shared.instance(Cache::new(64).unwrap());
    let st = inst.stats();
    eprintln!(
        "overlaps {}, coalesced {}, flushed {}, refused {}, store errors {}",
        overlap.overlapped.load(SeqCst),
        st.coalesced_writes,
        flushed.load(SeqCst),
        refused.load(SeqCst),
        st.store_errors
    );
    assert!(overlap.overlapped.load(SeqCst) > 0);
    assert!(st.coalesced_writes > 0, "repeated writes were coalesced");
    assert!(st.store_errors > 0, "failures were injected and retried");
    let acked = acked_sets.load(SeqCst) as usize;
    assert!(
        (st.store_puts as usize) < acked,
        "coalescing saved store writes"
    );
}

#[test]
fn no_instance_reads_older_than_an_acknowledged_write() {
    let shared = SharedTier::new(
        Cache::builder(1024).build().unwrap(),
        FlakyStore::default(),
        TierConfig::default(),
    )
    .unwrap();
    const KEYS: u64 = 8;
    let acked: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let overlap = Overlap::default();
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        // One writer, increasing values per key.
        let writer = s.spawn(|| {
            let inst = shared.instance(Cache::new(16).unwrap());
            start.wait();
            for v in 1..=2_000_000u64 {
                if v > 20_000 && overlap.overlapped.load(SeqCst) > 0 {
                    break;
                }
                let k = v % KEYS;
                overlap.run(|| inst.set(k, v)).unwrap();
                acked[k as usize].store(v, SeqCst);
                if v.is_multiple_of(97) {
                    // Invalidate without a write: the next reads reload.
                    inst.invalidate(&k);
                }
            }
        });
        for t in 0..THREADS - 1 {
            let (shared, acked, done, reads, overlap, start) =
                (&shared, &acked, &done, &reads, &overlap, &start);
            s.spawn(move || {
                let inst = shared.instance(Cache::new(16).unwrap());
                let mut r = rng(t as u64 + 7);
                start.wait();
                while !done.load(SeqCst) {
                    let k = r() % KEYS;
                    let floor = acked[k as usize].load(SeqCst);
                    let got = overlap.run(|| inst.get(&k)).unwrap().unwrap_or(0);
                    assert!(
                        got >= floor,
                        "key {k}: read {got} after write {floor} was acknowledged"
                    );
                    reads.fetch_add(1, SeqCst);
                }
            });
        }
        writer.join().unwrap();
        done.store(true, SeqCst);
    });
    let inst = shared.instance(Cache::new(16).unwrap());
    let st = inst.stats();
    eprintln!(
        "reads {}, overlaps {}, invalidations {}",
        reads.load(SeqCst),
        overlap.overlapped.load(SeqCst),
        st.l1_invalidations
    );
    assert!(reads.load(SeqCst) > 1000);
    assert!(overlap.overlapped.load(SeqCst) > 0);
    assert!(st.l1_invalidations > 0);
    shared.check_invariants();
}

/// Hit and miss counts stay exact when many threads read at once and
/// threads come and go: more threads than owned counter stripes run
/// together (some count on shared stripes with `fetch_add`), and three
/// waves of them exit and hand their stripes to the next wave.
#[test]
fn lookup_counts_are_exact_across_thread_waves() {
    const THREADS: usize = 80;
    const GETS: u64 = 20_000;
    let cache: Cache<u64, u64> = Cache::builder(1_000).record_stats(true).build().unwrap();
    for k in 0..500 {
        cache.insert(k, k).unwrap();
    }
    let overlap = Overlap::default();
    let (mut hits, mut misses) = (0u64, 0u64);
    for wave in 0..3u64 {
        let barrier = Barrier::new(THREADS);
        let per_thread: Vec<(u64, u64)> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS as u64)
                .map(|t| {
                    let (cache, barrier, overlap) = (&cache, &barrier, &overlap);
                    s.spawn(move || {
                        let mut next = rng(wave * 1_000 + t + 1);
                        barrier.wait();
                        let (mut h, mut m) = (0, 0);
                        for _ in 0..GETS {
                            // Keys 0..1000: half present.
                            match overlap.run(|| cache.get(&(next() % 1_000))) {
                                Some(_) => h += 1,
                                None => m += 1,
                            }
                        }
                        (h, m)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (h, m) in per_thread {
            hits += h;
            misses += m;
        }
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (hits, misses), "after wave {wave}");
    }
    assert_eq!(hits + misses, 3 * THREADS as u64 * GETS);
    assert!(
        overlap.overlapped.load(SeqCst) > 0,
        "threads never overlapped"
    );
}
