//! One shard: a slab of entries indexed by a `hashbrown::HashTable<u32>`,
//! threaded on intrusive FIFO lists, and the replacement policy over them.
//!
//! # Layout
//! - `slab[i]` holds an entry or a free-list link. Entries carry their key,
//!   value, TTL deadline, list links, weight and a 2-bit S3-FIFO frequency
//!   (an `AtomicU8`, so a read under the shared lock can bump it).
//! - `table` maps a key's hash to slab indices; keys are stored once.
//! - `small` and `main` are doubly linked lists through the slab: S3-FIFO's
//!   two queues (head = oldest). Exact LRU uses `main` only, as the recency
//!   list (head = least recently used).
//!
//! # Policies
//! **S3-FIFO** (Yang et al., SOSP 2023): new keys enter `small` (10 % of
//! the weight); a key evicted from `small` that was read since insertion
//! moves to `main`, otherwise its fingerprint goes to the ghost table; a
//! key found in the ghost on insertion goes straight to `main`. `main` is a
//! CLOCK: its head is reinserted at the tail with `freq - 1` while
//! `freq > 0`, evicted otherwise. A read only stores `freq + 1` when
//! `freq < 3`, so hot entries are read without writing anything shared.
//! **Exact LRU**: every read moves the entry to the tail (it needs the
//! write lock), eviction takes the head.
//!
//! # Expiry
//! An expired entry is never returned. It is reclaimed (cause
//! `Expired`) when it is read, written, reaches the eviction end of its
//! queue, or on `purge_expired`; it counts against the capacity until then.

use std::any::Any;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering::Relaxed};

use hashbrown::HashTable;

use crate::ghost::Ghost;
use crate::load::Flight;
use crate::policy::Policy;
use crate::sketch::Sketch;
use crate::stats::{EvictionCause, Removed};
use crate::time::{LazyTick, NEVER};

/// End of a list / of the free list.
pub(crate) const NIL: u32 = u32::MAX;
/// Largest slab index + 1 (NIL is reserved).
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;
/// S3-FIFO frequency saturation.
const MAX_FREQ: u8 = 3;

/// Which list an entry is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Queue {
    Small,
    Main,
}

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// TTL deadline tick, `NEVER` for none.
    deadline: i64,
    prev: u32,
    next: u32,
    weight: u32,
    freq: AtomicU8,
    queue: Queue,
}

pub(crate) enum Slot<K, V> {
    Full(Entry<K, V>),
    Free(u32),
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
    weight: u64,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
        weight: 0,
    };
}

/// A remembered load failure (negative caching).
pub(crate) struct Negative {
    pub(crate) deadline: i64,
    pub(crate) error: Arc<dyn Any + Send + Sync>,
}

/// The result of a lookup.
pub(crate) enum Lookup<T> {
    Hit(T),
    Miss,
    /// Present but expired (not returned; the caller reclaims it).
    Expired,
}

/// Fixed parameters of a shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardParams {
    pub(crate) capacity: u64,
    pub(crate) est_entries: usize,
    pub(crate) policy: Policy,
    pub(crate) admission: bool,
    /// Time-to-idle in nanoseconds.
    pub(crate) tti: Option<i64>,
    /// Most entries the shard can ever hold (its capacity without a
    /// weigher): the slab never grows past it.
    pub(crate) max_entries: usize,
    pub(crate) negative_cap: usize,
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Vec<Slot<K, V>>,
    /// Idle deadlines (time-to-idle), parallel to `slab`; empty without TTI.
    idle: Vec<AtomicI64>,
    max_entries: usize,
    free: u32,
    small: List,
    main: List,
    len: usize,
    weight: u64,
    capacity: u64,
    small_target: u64,
    policy: Policy,
    tti: Option<i64>,
    ghost: Ghost,
    sketch: Option<Sketch>,
    /// In-flight loads (single-flight), by key.
    pub(crate) flights: HashMap<K, Arc<Flight<V>>, foldhash::fast::RandomState>,
    /// Negatively cached load failures, by key (at most `negative_cap`).
    negatives: HashMap<K, Negative, foldhash::fast::RandomState>,
    negative_cap: usize,
}

#[inline]
fn rehash<K: Hash, V, S: BuildHasher>(slab: &[Slot<K, V>], hasher: &S, i: u32) -> u64 {
    match &slab[i as usize] {
        Slot::Full(e) => hasher.hash_one(&e.key),
        Slot::Free(_) => 0,
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    pub(crate) fn new(p: ShardParams) -> Self {
        let s3 = p.policy == Policy::S3Fifo;
        Self {
            table: HashTable::new(),
            slab: Vec::new(),
            idle: Vec::new(),
            max_entries: p.max_entries.min(MAX_SLOTS),
            free: NIL,
            small: List::EMPTY,
            main: List::EMPTY,
            len: 0,
            weight: 0,
            capacity: p.capacity,
            // 10 % of the weight for the small queue (S3-FIFO's default).
            small_target: p.capacity / 10,
            policy: p.policy,
            tti: p.tti,
            ghost: Ghost::new(if s3 { p.est_entries } else { 0 }),
            sketch: (s3 && p.admission).then(|| Sketch::new(p.est_entries)),
            flights: HashMap::default(),
            negatives: HashMap::default(),
            negative_cap: p.negative_cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    #[inline]
    fn entry(&self, i: u32) -> &Entry<K, V> {
        match &self.slab[i as usize] {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    #[inline]
    fn entry_mut(&mut self, i: u32) -> &mut Entry<K, V> {
        match &mut self.slab[i as usize] {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    /// The slab index of `key`, if present (live or expired).
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table
            .find(hash, |&i| match &slab[i as usize] {
                Slot::Full(e) => e.key.borrow() == key,
                Slot::Free(_) => false,
            })
            .copied()
    }

    #[inline]
    fn is_expired(&self, i: u32, now: &mut LazyTick<'_>) -> bool {
        let d = self.entry(i).deadline;
        if d != NEVER && now.get() >= d {
            return true;
        }
        match self.tti {
            Some(_) => now.get() >= self.idle[i as usize].load(Relaxed),
            None => false,
        }
    }

    /// Marks a read of entry `i`: S3-FIFO frequency (stored only when below
    /// the cap, so hot entries are read without a write) and the idle
    /// deadline.
    #[inline]
    fn touch_shared(&self, i: u32, now: &mut LazyTick<'_>) {
        let e = self.entry(i);
        let f = e.freq.load(Relaxed);
        if f < MAX_FREQ {
            e.freq.store(f + 1, Relaxed);
        }
        if let Some(tti) = self.tti {
            self.idle[i as usize].store(crate::time::deadline(now.get(), tti), Relaxed);
        }
    }

    /// A read under the shared lock (S3-FIFO only).
    #[inline]
    pub(crate) fn get_shared<Q>(&self, hash: u64, key: &Q, now: &mut LazyTick<'_>) -> Lookup<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(self.policy, Policy::S3Fifo);
        match self.find(hash, key) {
            None => Lookup::Miss,
            Some(i) if self.is_expired(i, now) => Lookup::Expired,
            Some(i) => {
                self.touch_shared(i, now);
                Lookup::Hit(&self.entry(i).value)
            }
        }
    }

    /// A read under the exclusive lock: LRU moves the entry to the tail; an
    /// expired entry is reclaimed into `out` and reported as a miss.
    pub(crate) fn get_exclusive<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: &mut LazyTick<'_>,
        out: &mut Removed<K, V>,
    ) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        if self.is_expired(i, now) {
            let (k, v) = self.take(hash, i);
            out.push(k, v, EvictionCause::Expired);
            return None;
        }
        self.touch_shared(i, now);
        if self.policy == Policy::Lru {
            self.unlink(i);
            self.push_back(i, Queue::Main);
        }
        Some(&self.entry(i).value)
    }

    /// Reclaims `key` if it is present and expired.
    pub(crate) fn reclaim<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: &mut LazyTick<'_>,
        out: &mut Removed<K, V>,
    ) where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(i) = self.find(hash, key)
            && self.is_expired(i, now)
        {
            let (k, v) = self.take(hash, i);
            out.push(k, v, EvictionCause::Expired);
        }
    }

    // ----- lists -------------------------------------------------------

    fn list_mut(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// Appends entry `i` (not on any list) at the tail of `q`.
    fn push_back(&mut self, i: u32, q: Queue) {
        let tail = self.list_mut(q).tail;
        let weight = {
            let e = self.entry_mut(i);
            e.queue = q;
            e.prev = tail;
            e.next = NIL;
            u64::from(e.weight)
        };
        if tail != NIL {
            self.entry_mut(tail).next = i;
        }
        let l = self.list_mut(q);
        if l.head == NIL {
            l.head = i;
        }
        l.tail = i;
        l.len += 1;
        l.weight += weight;
    }

    /// Removes entry `i` from its list.
    fn unlink(&mut self, i: u32) {
        let (prev, next, q, weight) = {
            let e = self.entry(i);
            (e.prev, e.next, e.queue, u64::from(e.weight))
        };
        if prev != NIL {
            self.entry_mut(prev).next = next;
        }
        if next != NIL {
            self.entry_mut(next).prev = prev;
        }
        let l = self.list_mut(q);
        if l.head == i {
            l.head = next;
        }
        if l.tail == i {
            l.tail = prev;
        }
        l.len -= 1;
        l.weight -= weight;
    }

    // ----- slab --------------------------------------------------------

    fn alloc(&mut self, entry: Entry<K, V>, idle: i64) -> u32 {
        if self.free != NIL {
            let i = self.free;
            let Slot::Free(next) = self.slab[i as usize] else {
                unreachable!("free list points at an entry")
            };
            self.free = next;
            self.slab[i as usize] = Slot::Full(entry);
            if self.tti.is_some() {
                self.idle[i as usize].store(idle, Relaxed);
            }
            i
        } else {
            let i = self.slab.len() as u32;
            if self.slab.len() == self.slab.capacity() {
                // Double, but never past the most entries the shard can
                // hold (no slack in a full cache).
                let want = (self.slab.len() * 2).clamp(4, self.max_entries.max(1));
                self.slab.reserve_exact(want.saturating_sub(self.slab.len()).max(1));
            }
            self.slab.push(Slot::Full(entry));
            if self.tti.is_some() {
                self.idle.push(AtomicI64::new(idle));
            }
            i
        }
    }

    /// Unlinks, unindexes and frees entry `i`, returning its key and value.
    fn take(&mut self, hash: u64, i: u32) -> (K, V) {
        self.unlink(i);
        match self.table.find_entry(hash, |&j| j == i) {
            Ok(slot) => {
                slot.remove();
            }
            Err(_) => unreachable!("entry {i} missing from the table"),
        }
        let slot = std::mem::replace(&mut self.slab[i as usize], Slot::Free(self.free));
        self.free = i;
        let Slot::Full(e) = slot else {
            unreachable!("took a free slot")
        };
        self.len -= 1;
        self.weight -= u64::from(e.weight);
        (e.key, e.value)
    }

    // ----- eviction ----------------------------------------------------

    /// Whether the sketch admits the entry of hash `h` and weight `w` into
    /// `main` (always without admission, or while `main` has room).
    fn admit<S: BuildHasher>(&self, h: u64, w: u64, hasher: &S) -> bool {
        let Some(sk) = &self.sketch else { return true };
        if self.main.weight + w <= self.capacity - self.small_target || self.main.head == NIL {
            return true;
        }
        let victim = hasher.hash_one(&self.entry(self.main.head).key);
        sk.estimate(h) >= sk.estimate(victim)
    }

    /// Removes one entry by policy (an expired one found at the eviction
    /// end is removed as `Expired`). False when both lists are empty.
    fn evict_one<S: BuildHasher>(
        &mut self,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) -> bool {
        loop {
            if self.policy == Policy::Lru {
                let i = self.main.head;
                if i == NIL {
                    return false;
                }
                let cause = if self.is_expired(i, now) {
                    EvictionCause::Expired
                } else {
                    EvictionCause::Capacity
                };
                let h = hasher.hash_one(&self.entry(i).key);
                let (k, v) = self.take(h, i);
                out.push(k, v, cause);
                return true;
            }
            let from_small = self.small.head != NIL
                && (self.small.weight > self.small_target || self.main.head == NIL);
            let i = if from_small {
                self.small.head
            } else {
                self.main.head
            };
            if i == NIL {
                return false;
            }
            let h = hasher.hash_one(&self.entry(i).key);
            if self.is_expired(i, now) {
                let (k, v) = self.take(h, i);
                out.push(k, v, EvictionCause::Expired);
                return true;
            }
            let f = self.entry(i).freq.load(Relaxed);
            if from_small {
                let w = u64::from(self.entry(i).weight);
                if f > 0 && self.admit(h, w, hasher) {
                    self.unlink(i);
                    self.entry_mut(i).freq.store(0, Relaxed);
                    self.push_back(i, Queue::Main);
                    continue;
                }
                self.ghost.insert(h);
            } else if f > 0 {
                self.unlink(i);
                self.entry_mut(i).freq.store(f - 1, Relaxed);
                self.push_back(i, Queue::Main);
                continue;
            }
            let (k, v) = self.take(h, i);
            out.push(k, v, EvictionCause::Capacity);
            return true;
        }
    }

    /// Evicts until `extra` more weight fits and a slot is free.
    fn make_room<S: BuildHasher>(
        &mut self,
        extra: u64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        while (self.weight + extra > self.capacity || self.len >= self.max_entries)
            && self.evict_one(now, hasher, out)
        {}
    }

    // ----- writes ------------------------------------------------------

    /// Inserts or replaces `key`. `weight <= capacity` is the caller's
    /// check; the entry is present on return and the weight is within the
    /// capacity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        deadline: i64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        debug_assert!(u64::from(weight) <= self.capacity);
        // A write supersedes an in-flight load (its result must not land
        // after this value) and a remembered failure.
        if !self.flights.is_empty() {
            self.flights.remove(&key);
        }
        if !self.negatives.is_empty() {
            self.negatives.remove(&key);
        }
        let idle = match self.tti {
            Some(tti) => crate::time::deadline(now.get(), tti),
            None => NEVER,
        };
        if let Some(i) = self.find(hash, &key) {
            if self.is_expired(i, now) {
                let (k, v) = self.take(hash, i);
                out.push(k, v, EvictionCause::Expired);
            } else {
                // Replace in place: off its list while making room, so the
                // entry itself is never the victim.
                // (`len` is lowered meanwhile: the entry keeps its slot.)
                let q = self.entry(i).queue;
                self.unlink(i);
                self.weight -= u64::from(self.entry(i).weight);
                self.len -= 1;
                self.make_room(u64::from(weight), now, hasher, out);
                self.len += 1;
                self.weight += u64::from(weight);
                let e = self.entry_mut(i);
                let old = std::mem::replace(&mut e.value, value);
                e.weight = weight;
                e.deadline = deadline;
                let f = e.freq.load(Relaxed);
                if f < MAX_FREQ {
                    e.freq.store(f + 1, Relaxed);
                }
                if self.tti.is_some() {
                    self.idle[i as usize].store(idle, Relaxed);
                }
                self.push_back(i, q);
                out.push(key, old, EvictionCause::Replaced);
                return;
            }
        }
        let mut queue = Queue::Main;
        if self.policy == Policy::S3Fifo {
            if let Some(sk) = &mut self.sketch {
                sk.increment(hash);
            }
            queue = if self.ghost.take(hash) && self.admit(hash, u64::from(weight), hasher) {
                Queue::Main
            } else {
                Queue::Small
            };
        }
        self.make_room(u64::from(weight), now, hasher, out);
        let i = self.alloc(
            Entry {
                key,
                value,
                deadline,
                prev: NIL,
                next: NIL,
                weight,
                freq: AtomicU8::new(0),
                queue,
            },
            idle,
        );
        self.push_back(i, queue);
        self.len += 1;
        self.weight += u64::from(weight);
        let slab = &self.slab;
        self.table
            .insert_unique(hash, i, |&j| rehash(slab, hasher, j));
    }

    /// Removes `key`. Returns its value when it was live (cause `Explicit`,
    /// not recorded in `out`: the caller reports it), records it as
    /// `Expired` otherwise. Cancels an in-flight load's fill and forgets a
    /// negatively cached failure.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: &mut LazyTick<'_>,
        out: &mut Removed<K, V>,
    ) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.flights.is_empty() {
            self.flights.remove(key);
        }
        if !self.negatives.is_empty() {
            self.negatives.remove(key);
        }
        let i = self.find(hash, key)?;
        let expired = self.is_expired(i, now);
        let (k, v) = self.take(hash, i);
        if expired {
            out.push(k, v, EvictionCause::Expired);
            None
        } else {
            Some((k, v))
        }
    }

    /// Reclaims every expired entry; O(slab).
    pub(crate) fn purge_expired<S: BuildHasher>(
        &mut self,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        for i in 0..self.slab.len() as u32 {
            if matches!(self.slab[i as usize], Slot::Full(_)) && self.is_expired(i, now) {
                let h = hasher.hash_one(&self.entry(i).key);
                let (k, v) = self.take(h, i);
                out.push(k, v, EvictionCause::Expired);
            }
        }
        self.negatives.retain(|_, n| n.deadline > now.get());
    }

    /// Removes everything (cause `Explicit`); keeps the allocations.
    pub(crate) fn clear(&mut self, out: &mut Removed<K, V>) {
        self.table.clear();
        self.small = List::EMPTY;
        self.main = List::EMPTY;
        self.free = NIL;
        self.len = 0;
        self.weight = 0;
        for s in self.slab.drain(..) {
            if let Slot::Full(e) = s {
                out.push(e.key, e.value, EvictionCause::Explicit);
            }
        }
        self.idle.clear();
        self.ghost.clear();
        if let Some(sk) = &mut self.sketch {
            sk.clear();
        }
        self.flights.clear();
        self.negatives.clear();
    }

    // ----- negative caching --------------------------------------------

    /// The remembered failure of `key`, if any and still fresh.
    pub(crate) fn negative<Q>(&self, key: &Q, now: &mut LazyTick<'_>) -> Option<&Negative>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.negatives.is_empty() {
            return None;
        }
        self.negatives.get(key).filter(|n| now.get() < n.deadline)
    }

    /// Remembers a failure of `key` until `deadline` (dropped when the
    /// side table is full even after purging stale failures).
    pub(crate) fn remember_failure(
        &mut self,
        key: K,
        deadline: i64,
        error: Arc<dyn Any + Send + Sync>,
        now: &mut LazyTick<'_>,
    ) {
        if self.negatives.len() >= self.negative_cap && !self.negatives.contains_key(&key) {
            let t = now.get();
            self.negatives.retain(|_, n| n.deadline > t);
            if self.negatives.len() >= self.negative_cap {
                return;
            }
        }
        self.negatives.insert(key, Negative { deadline, error });
    }

    /// Heap bytes held (slab, table, idle deadlines, ghost, sketch).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Slot<K, V>>()
            + self.table.allocation_size()
            + self.idle.capacity() * 8
            + self.ghost.heap_bytes()
            + self.sketch.as_ref().map_or(0, Sketch::heap_bytes)
    }

    /// Checks every structural invariant; panics with a description on the
    /// first violation. O(slab).
    pub(crate) fn validate<S: BuildHasher>(&self, hasher: &S) {
        let mut seen = 0usize;
        let mut total_weight = 0u64;
        for (q, list) in [(Queue::Small, &self.small), (Queue::Main, &self.main)] {
            let mut n = 0usize;
            let mut w = 0u64;
            let mut prev = NIL;
            let mut i = list.head;
            while i != NIL {
                let e = self.entry(i);
                assert_eq!(e.queue, q, "entry {i} on the wrong list");
                assert_eq!(e.prev, prev, "entry {i} has a broken back link");
                assert!(e.weight >= 1, "entry {i} weighs 0");
                assert!(e.freq.load(Relaxed) <= MAX_FREQ, "entry {i} freq over cap");
                let h = hasher.hash_one(&e.key);
                assert_eq!(self.find(h, &e.key), Some(i), "entry {i} not indexed");
                n += 1;
                w += u64::from(e.weight);
                assert!(n <= self.slab.len(), "cycle in list {q:?}");
                prev = i;
                i = e.next;
            }
            assert_eq!(list.tail, prev, "{q:?} tail mismatch");
            assert_eq!(list.len, n, "{q:?} length mismatch");
            assert_eq!(list.weight, w, "{q:?} weight mismatch");
            seen += n;
            total_weight += w;
        }
        if self.policy == Policy::Lru {
            assert_eq!(self.small.len, 0, "LRU uses the main list only");
        }
        let full = self
            .slab
            .iter()
            .filter(|s| matches!(s, Slot::Full(_)))
            .count();
        assert_eq!(full, seen, "slab entries not on a list");
        assert_eq!(self.len, seen, "len mismatch");
        assert_eq!(self.table.len(), seen, "table size mismatch");
        assert_eq!(self.weight, total_weight, "weight mismatch");
        assert!(
            self.weight <= self.capacity,
            "weight {} over capacity {}",
            self.weight,
            self.capacity
        );
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            let Slot::Free(next) = self.slab[f as usize] else {
                panic!("free list reaches entry {f}");
            };
            free += 1;
            assert!(free <= self.slab.len(), "cycle in the free list");
            f = next;
        }
        assert_eq!(free + seen, self.slab.len(), "leaked slab slots");
        if self.tti.is_some() {
            assert_eq!(self.idle.len(), self.slab.len(), "idle deadlines out of step");
        }
        assert!(self.negatives.len() <= self.negative_cap.max(1));
    }
}
