//! Hit / miss / load / eviction counters and the eviction listener.
//!
//! Counters are striped per thread (one 128-byte-aligned stripe per thread
//! slot), so a hit increments a line no other thread writes; `stats()` sums
//! the stripes.
//!
//! A live thread holds a process-wide slot number, returned to a free list
//! when the thread exits, so slot numbers stay below the number of threads
//! alive at once. A thread whose slot is below a cache's count of *owned*
//! stripes is the only writer of that stripe (a slot's next holder takes it
//! through the free list's mutex, after the last holder's writes), so its
//! hit and miss counts are a plain load and store, not a locked
//! read-modify-write (which costs more than the rest of a cache hit). A
//! thread beyond the owned stripes counts with `fetch_add` on a small set
//! of shared stripes. Every count is exact either way.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EvictionCause {
    /// Evicted by the replacement policy to make room.
    Capacity,
    /// Its time-to-live or time-to-idle passed (reclaimed when read, when it
    /// reached the eviction end of its queue, or by `purge_expired`).
    Expired,
    /// Removed by `remove`, `invalidate` or `clear`.
    Explicit,
    /// Its value was overwritten by an insert of the same key.
    Replaced,
}

/// A callback told about every entry that leaves the cache, with the cause.
///
/// It runs on the thread that caused the eviction, after the shard lock is
/// released, so it may call back into the cache.
pub type EvictionListener<K, V> = Arc<dyn Fn(&K, &V, EvictionCause) + Send + Sync>;

/// Evictions by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Evictions {
    /// [`EvictionCause::Capacity`].
    pub capacity: u64,
    /// [`EvictionCause::Expired`].
    pub expired: u64,
    /// [`EvictionCause::Explicit`].
    pub explicit: u64,
    /// [`EvictionCause::Replaced`].
    pub replaced: u64,
}

impl Evictions {
    /// Sum over all causes.
    pub fn total(&self) -> u64 {
        self.capacity + self.expired + self.explicit + self.replaced
    }
}

/// A snapshot of one cache's counters (monotonic since construction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that returned a live value (counted when
    /// [`CacheBuilder::record_stats`](crate::CacheBuilder::record_stats) is
    /// on, or under [`Policy::WTinyLfu`](crate::Policy::WTinyLfu); 0
    /// otherwise).
    pub hits: u64,
    /// Lookups that found nothing live (absent or expired); counted like
    /// [`hits`](Self::hits).
    pub misses: u64,
    /// Successful inserts (new keys and replacements).
    pub inserts: u64,
    /// Loader runs (`get_or_load` / `try_get_or_load` leaders).
    pub loads: u64,
    /// Loader runs that returned an error.
    pub load_failures: u64,
    /// Callers that waited for another caller's load of the same key
    /// instead of running their own loader (single-flight).
    pub load_waits: u64,
    /// Calls answered from a negatively cached failure.
    pub negative_hits: u64,
    /// Total wall time spent in loaders, nanoseconds.
    pub load_nanos: u64,
    /// Shard write-lock acquisitions that had to wait for another thread
    /// (contention).
    pub lock_waits: u64,
    /// Entries removed, by cause.
    pub evictions: Evictions,
}

impl CacheStats {
    /// `hits / (hits + misses)`, 0 when there were no lookups (so 0 when
    /// hits and misses are not counted: see
    /// [`CacheBuilder::record_stats`](crate::CacheBuilder::record_stats)).
    pub fn hit_ratio(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }

    /// Total loader time.
    pub fn load_time(&self) -> Duration {
        Duration::from_nanos(self.load_nanos)
    }

    /// Mean loader time, zero when nothing was loaded.
    pub fn mean_load_time(&self) -> Duration {
        self.load_nanos
            .checked_div(self.loads)
            .map_or(Duration::ZERO, Duration::from_nanos)
    }
}

/// `repr(C)`: the lookup counters first, at the stripe's own address.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub(crate) struct Stripe {
    /// Hits, then misses.
    pub(crate) lookups: [AtomicU64; 2],
    pub(crate) inserts: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_failures: AtomicU64,
    pub(crate) load_waits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) load_nanos: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
    pub(crate) evicted: [AtomicU64; 4],
}

/// Adds `n` to counter `c` of a stripe: a plain load and store when the
/// thread owns the stripe (it is the only writer; readers only load), a
/// `fetch_add` on a shared one. Returns the previous value.
#[inline]
fn bump(c: &AtomicU64, n: u64, owned: bool) -> u64 {
    if owned {
        let v = c.load(Relaxed);
        c.store(v.wrapping_add(n), Relaxed);
        v
    } else {
        c.fetch_add(n, Relaxed)
    }
}

impl Stripe {
    /// Adds eviction counts by cause.
    #[inline]
    fn add_evictions(&self, counts: &[u64; 4], owned: bool) {
        for (c, &n) in self.evicted.iter().zip(counts) {
            if n != 0 {
                bump(c, n, owned);
            }
        }
    }
}

/// Per-thread-striped counters: `owned` stripes, one per thread slot below
/// `owned.len()`, then `shared_mask + 1` stripes shared by the other
/// threads.
pub(crate) struct Counters {
    owned: Box<[Stripe]>,
    shared: Box<[Stripe]>,
    shared_mask: usize,
}

/// The next never-used thread slot.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Slots of exited threads, reused last in, first out.
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A thread's slot, given back when the thread exits.
struct ThreadSlot(usize);

impl ThreadSlot {
    fn take() -> Self {
        let free = FREE_SLOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        ThreadSlot(free.unwrap_or_else(|| NEXT_SLOT.fetch_add(1, Relaxed)))
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Anything this thread still counts while being torn down goes to
        // a shared stripe: the slot may already belong to a new thread.
        let _ = SLOT.try_with(|s| s.set(TORN_DOWN));
        FREE_SLOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.0);
    }
}

/// `SLOT` before the thread's first count.
const UNSET: usize = usize::MAX - 1;
/// `SLOT` once the thread's `ThreadSlot` was dropped (indexes a shared
/// stripe, like any slot at or above `owned`).
const TORN_DOWN: usize = usize::MAX;

thread_local! {
    /// This thread's slot number: a constant-initialised cell without a
    /// destructor, so the hot path reads it with one thread-relative load
    /// (no lazy-initialisation state to check).
    static SLOT: Cell<usize> = const { Cell::new(UNSET) };
    /// Owns the slot and gives it back when the thread exits; touched once
    /// per thread.
    static THREAD_SLOT: ThreadSlot = ThreadSlot::take();
}

/// Takes the thread's slot on its first count.
#[cold]
#[inline(never)]
fn first_slot() -> usize {
    let v = THREAD_SLOT.try_with(|s| s.0).unwrap_or(TORN_DOWN);
    SLOT.with(|s| s.set(v));
    v
}

impl Counters {
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let owned = (cpus * 4).next_power_of_two().clamp(8, 64);
        let shared = 4;
        Self {
            owned: (0..owned).map(|_| Stripe::default()).collect(),
            shared: (0..shared).map(|_| Stripe::default()).collect(),
            shared_mask: shared - 1,
        }
    }

    /// This thread's stripe, and whether the thread owns it (is its only
    /// writer).
    #[inline]
    fn stripe(&self) -> (&Stripe, bool) {
        // One thread-relative load and one compare on the hot path: a slot
        // not yet taken (`UNSET`) or torn down falls past the owned stripes.
        let v = SLOT.with(Cell::get);
        match self.owned.get(v) {
            Some(s) => (s, true),
            None => self.stripe_slow(v),
        }
    }

    #[cold]
    #[inline(never)]
    fn stripe_slow(&self, v: usize) -> (&Stripe, bool) {
        let v = if v == UNSET { first_slot() } else { v };
        match self.owned.get(v) {
            Some(s) => (s, true),
            None => (&self.shared[v & self.shared_mask], false),
        }
    }

    /// Adds `n` to the counter `field` picks in this thread's stripe;
    /// returns its previous value (per stripe).
    #[inline]
    pub(crate) fn add(&self, field: fn(&Stripe) -> &AtomicU64, n: u64) -> u64 {
        let (s, owned) = self.stripe();
        bump(field(s), n, owned)
    }

    /// Counts one lookup (a hit when `hit`), at a fixed offset in the
    /// thread's stripe.
    #[inline]
    pub(crate) fn count_lookup(&self, hit: bool) {
        let (s, owned) = self.stripe();
        let [hits, misses] = &s.lookups;
        bump(if hit { hits } else { misses }, 1, owned);
    }

    /// Counts what a locked operation removed, by cause.
    #[inline]
    pub(crate) fn record_evictions(&self, counts: &[u64; 4]) {
        if counts != &[0; 4] {
            let (s, owned) = self.stripe();
            s.add_evictions(counts, owned);
        }
    }

    /// Counts an insert and what it removed (one stripe lookup for both);
    /// returns this thread's insert count before it.
    #[inline]
    pub(crate) fn count_insert(&self, counts: &[u64; 4]) -> u64 {
        let (s, owned) = self.stripe();
        s.add_evictions(counts, owned);
        bump(&s.inserts, 1, owned)
    }

    /// Counts an insert that replaced a live value in place (and removed
    /// nothing else); returns this thread's insert count before it.
    #[inline]
    pub(crate) fn count_replace(&self) -> u64 {
        let (s, owned) = self.stripe();
        bump(&s.evicted[cause_index(EvictionCause::Replaced)], 1, owned);
        bump(&s.inserts, 1, owned)
    }

    /// Cumulative hits, misses and capacity evictions (what the window
    /// climber samples).
    pub(crate) fn lookups(&self) -> (u64, u64, u64) {
        self.owned
            .iter()
            .chain(self.shared.iter())
            .fold((0, 0, 0), |(h, m, e), s| {
                (
                    h + s.lookups[0].load(Relaxed),
                    m + s.lookups[1].load(Relaxed),
                    e + s.evicted[0].load(Relaxed),
                )
            })
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let mut out = CacheStats::default();
        for s in self.owned.iter().chain(self.shared.iter()) {
            out.hits += s.lookups[0].load(Relaxed);
            out.misses += s.lookups[1].load(Relaxed);
            out.inserts += s.inserts.load(Relaxed);
            out.loads += s.loads.load(Relaxed);
            out.load_failures += s.load_failures.load(Relaxed);
            out.load_waits += s.load_waits.load(Relaxed);
            out.negative_hits += s.negative_hits.load(Relaxed);
            out.load_nanos += s.load_nanos.load(Relaxed);
            out.lock_waits += s.lock_waits.load(Relaxed);
            out.evictions.capacity += s.evicted[0].load(Relaxed);
            out.evictions.expired += s.evicted[1].load(Relaxed);
            out.evictions.explicit += s.evicted[2].load(Relaxed);
            out.evictions.replaced += s.evicted[3].load(Relaxed);
        }
        out
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("stripes", &(self.owned.len() + self.shared.len()))
            .finish()
    }
}

pub(crate) const fn cause_index(c: EvictionCause) -> usize {
    match c {
        EvictionCause::Capacity => 0,
        EvictionCause::Expired => 1,
        EvictionCause::Explicit => 2,
        EvictionCause::Replaced => 3,
    }
}

/// What one locked operation removed: counts always, the entries only when
/// a listener wants them (handed to it after the lock is released).
pub(crate) struct Removed<K, V> {
    pub(crate) collect: bool,
    pub(crate) items: Vec<(K, V, EvictionCause)>,
    pub(crate) counts: [u64; 4],
}

impl<K, V> Removed<K, V> {
    pub(crate) fn new(collect: bool) -> Self {
        Self {
            collect,
            items: Vec::new(),
            counts: [0; 4],
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, key: K, value: V, cause: EvictionCause) {
        self.counts[cause_index(cause)] += 1;
        if self.collect {
            self.items.push((key, value, cause));
        }
    }
}
