//! One shard: a slab of entries indexed by a `hashbrown::HashTable<u32>`,
//! threaded on intrusive FIFO lists, and the replacement policy over them.
//!
//! # Layout
//! - `slab[i]` holds an entry or a free-list link, 32-byte aligned. An
//!   entry is its key, value, TTL deadline, `prev` link and one atomic
//!   `link` word packing `next` (29 bits), the queue (1 bit) and the 2-bit
//!   S3-FIFO frequency, so a read under the shared lock can bump the
//!   frequency. For `u64 → u64` an entry is 32 bytes: one cache line half.
//!   Weights live in a parallel vector only when a weigher is set (else
//!   every weight is 1); idle deadlines likewise only with time-to-idle.
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
//! queue, is met by the write sweep (S3-FIFO: two slab slots per write), or
//! on `purge_expired`; it counts against the capacity until then.

use std::any::Any;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};

use hashbrown::HashTable;

use crate::ghost::Ghost;
use crate::load::Flight;
use crate::policy::Policy;
use crate::sketch::Sketch;
use crate::stats::{EvictionCause, Removed};
use crate::time::{LazyTick, NEVER};

/// Bits of the `link` word holding `next`.
const NEXT_BITS: u32 = 29;
const NEXT_MASK: u32 = (1 << NEXT_BITS) - 1;
/// The queue bit of the `link` word (set: main).
const MAIN_BIT: u32 = 1 << NEXT_BITS;
/// The frequency field of the `link` word.
const FREQ_SHIFT: u32 = NEXT_BITS + 1;
/// End of a list / of the free list.
pub(crate) const NIL: u32 = NEXT_MASK;
/// Most entries one shard can index (NIL is reserved).
pub(crate) const MAX_SLOTS: usize = NIL as usize;
/// S3-FIFO frequency saturation.
const MAX_FREQ: u32 = 3;
/// Slab slots the amortised expiry sweep inspects per write.
const SWEEP_STEP: usize = 2;

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
    /// `prev + 1` (the zero niche makes `Slot` no larger than `Entry`).
    prev: NonZeroU32,
    /// `next | queue << 29 | freq << 30`; `freq` is stored under the read
    /// lock (lossy between concurrent readers, which is harmless), the rest
    /// only under the write lock.
    link: AtomicU32,
}

impl<K, V> Entry<K, V> {
    #[inline]
    fn prev(&self) -> u32 {
        self.prev.get() - 1
    }
    #[inline]
    fn set_prev(&mut self, p: u32) {
        // p <= NIL < u32::MAX, so p + 1 is non-zero.
        self.prev = NonZeroU32::new(p + 1).unwrap_or(NonZeroU32::MIN);
    }
    #[inline]
    fn next(&self) -> u32 {
        self.link.load(Relaxed) & NEXT_MASK
    }
    #[inline]
    fn set_next(&mut self, n: u32) {
        let l = self.link.get_mut();
        *l = (*l & !NEXT_MASK) | n;
    }
    #[inline]
    fn queue(&self) -> Queue {
        if self.link.load(Relaxed) & MAIN_BIT != 0 {
            Queue::Main
        } else {
            Queue::Small
        }
    }
    #[inline]
    fn set_queue(&mut self, q: Queue) {
        let l = self.link.get_mut();
        *l = match q {
            Queue::Main => *l | MAIN_BIT,
            Queue::Small => *l & !MAIN_BIT,
        };
    }
    #[inline]
    fn freq(&self) -> u32 {
        self.link.load(Relaxed) >> FREQ_SHIFT
    }
    #[inline]
    fn set_freq(&mut self, f: u32) {
        let l = self.link.get_mut();
        *l = (*l & !(3 << FREQ_SHIFT)) | (f.min(MAX_FREQ) << FREQ_SHIFT);
    }
    /// Marks a read under the shared lock: stores `freq + 1` only when
    /// below the cap, so a hot entry is read without any write.
    #[inline]
    fn bump_shared(&self) {
        let l = self.link.load(Relaxed);
        if l >> FREQ_SHIFT < MAX_FREQ {
            self.link.store(l + (1 << FREQ_SHIFT), Relaxed);
        }
    }
}

pub(crate) enum Slot<K, V> {
    Full(Entry<K, V>),
    Free(u32),
}

/// A slab slot on its own 32-byte boundary (a 32-byte entry never straddles
/// two cache lines).
#[repr(align(32))]
pub(crate) struct Aligned<K, V>(Slot<K, V>);

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
    /// Whether entries have their own weights (a weigher is set).
    pub(crate) weighted: bool,
    /// Time-to-idle in nanoseconds.
    pub(crate) tti: Option<i64>,
    /// Most entries the shard can ever hold (its capacity without a
    /// weigher): the slab never grows past it.
    pub(crate) max_entries: usize,
    pub(crate) negative_cap: usize,
}

/// `repr(C)` so the field order is the cache-line plan: with the lock word
/// in front, the first line holds what every lookup reads (table, slab),
/// the second the settings (read-only after construction), the rest the
/// write path.
#[repr(C)]
pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Vec<Aligned<K, V>>,
    // Settings.
    /// Time-to-idle in nanoseconds, 0 for none (one compare on reads).
    tti: i64,
    capacity: u64,
    small_target: u64,
    max_entries: usize,
    negative_cap: usize,
    policy: Policy,
    weighted: bool,
    // Write path.
    free: u32,
    /// `flights.len() + negatives.len()`: writes skip both maps when 0.
    side_len: usize,
    len: usize,
    weight: u64,
    /// Entries with a TTL deadline (the sweep is skipped while 0 and no TTI).
    expiring: usize,
    /// The amortised expiry sweep's position in the slab.
    sweep: u32,
    small: List,
    main: List,
    ghost: Ghost,
    sketch: Option<Sketch>,
    /// Entry weights, parallel to `slab`; empty without a weigher.
    weights: Vec<u32>,
    /// Idle deadlines (time-to-idle), parallel to `slab`; empty without TTI.
    idle: Vec<AtomicI64>,
    /// In-flight loads (single-flight), by key.
    flights: HashMap<K, Arc<Flight<V>>, foldhash::fast::RandomState>,
    /// Negatively cached load failures, by key (at most `negative_cap`).
    negatives: HashMap<K, Negative, foldhash::fast::RandomState>,
}

#[inline]
fn rehash<K: Hash, V, S: BuildHasher>(slab: &[Aligned<K, V>], hasher: &S, i: u32) -> u64 {
    match &slab[i as usize].0 {
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
            weights: Vec::new(),
            idle: Vec::new(),
            weighted: p.weighted,
            max_entries: p.max_entries.clamp(1, MAX_SLOTS),
            free: NIL,
            small: List::EMPTY,
            main: List::EMPTY,
            len: 0,
            weight: 0,
            expiring: 0,
            sweep: 0,
            capacity: p.capacity,
            // 10 % of the weight for the small queue (S3-FIFO's default).
            small_target: p.capacity / 10,
            policy: p.policy,
            tti: p.tti.unwrap_or(0),
            ghost: Ghost::new(if s3 { p.est_entries } else { 0 }),
            sketch: (s3 && p.admission).then(|| Sketch::new(p.est_entries)),
            side_len: 0,
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

    #[inline(always)]
    fn entry(&self, i: u32) -> &Entry<K, V> {
        match &self.slab[i as usize].0 {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    #[inline]
    fn entry_mut(&mut self, i: u32) -> &mut Entry<K, V> {
        match &mut self.slab[i as usize].0 {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    #[inline]
    fn weight_of(&self, i: u32) -> u64 {
        if self.weighted {
            u64::from(self.weights[i as usize])
        } else {
            1
        }
    }

    /// The slab index of `key`, if present (live or expired).
    #[inline(always)]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table
            .find(hash, |&i| match &slab[i as usize].0 {
                Slot::Full(e) => e.key.borrow() == key,
                Slot::Free(_) => false,
            })
            .copied()
    }

    #[inline(always)]
    fn is_expired(&self, i: u32, now: &mut LazyTick<'_>) -> bool {
        let d = self.entry(i).deadline;
        if d != NEVER && now.get() >= d {
            return true;
        }
        self.tti != 0 && now.get() >= self.idle[i as usize].load(Relaxed)
    }

    /// Marks a read of entry `i` under the shared lock.
    #[inline(always)]
    fn touch_shared(&self, i: u32, now: &mut LazyTick<'_>) {
        self.entry(i).bump_shared();
        if self.tti != 0 {
            self.idle[i as usize].store(crate::time::deadline(now.get(), self.tti), Relaxed);
        }
    }

    /// A read under the shared lock (S3-FIFO only).
    #[inline(always)]
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

    #[inline]
    fn list_mut(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// Appends entry `i` (not on any list) at the tail of `q`.
    fn push_back(&mut self, i: u32, q: Queue) {
        let tail = self.list_mut(q).tail;
        let weight = self.weight_of(i);
        {
            let e = self.entry_mut(i);
            e.set_queue(q);
            e.set_prev(tail);
            e.set_next(NIL);
        }
        if tail != NIL {
            self.entry_mut(tail).set_next(i);
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
        let weight = self.weight_of(i);
        let (prev, next, q) = {
            let e = self.entry(i);
            (e.prev(), e.next(), e.queue())
        };
        if prev != NIL {
            self.entry_mut(prev).set_next(next);
        }
        if next != NIL {
            self.entry_mut(next).set_prev(prev);
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

    fn alloc(&mut self, entry: Entry<K, V>, weight: u32, idle: i64) -> u32 {
        if entry.deadline != NEVER {
            self.expiring += 1;
        }
        if self.free != NIL {
            let i = self.free;
            let Slot::Free(next) = self.slab[i as usize].0 else {
                unreachable!("free list points at an entry")
            };
            self.free = next;
            self.slab[i as usize] = Aligned(Slot::Full(entry));
            if self.weighted {
                self.weights[i as usize] = weight;
            }
            if self.tti != 0 {
                self.idle[i as usize].store(idle, Relaxed);
            }
            i
        } else {
            let i = self.slab.len() as u32;
            if self.slab.len() == self.slab.capacity() {
                // Double, but never past the most entries the shard can
                // hold (no slack in a full cache).
                let want = (self.slab.len() * 2).max(4).min(self.max_entries);
                self.slab
                    .reserve_exact(want.saturating_sub(self.slab.len()).max(1));
            }
            self.slab.push(Aligned(Slot::Full(entry)));
            if self.weighted {
                self.weights.push(weight);
            }
            if self.tti != 0 {
                self.idle.push(AtomicI64::new(idle));
            }
            i
        }
    }

    /// Unlinks, unindexes and frees entry `i`, returning its key and value.
    fn take(&mut self, hash: u64, i: u32) -> (K, V) {
        self.unlink(i);
        let w = self.weight_of(i);
        match self.table.find_entry(hash, |&j| j == i) {
            Ok(slot) => {
                slot.remove();
            }
            Err(_) => unreachable!("entry {i} missing from the table"),
        }
        let slot = std::mem::replace(&mut self.slab[i as usize], Aligned(Slot::Free(self.free)));
        self.free = i;
        let Slot::Full(e) = slot.0 else {
            unreachable!("took a free slot")
        };
        if e.deadline != NEVER {
            self.expiring -= 1;
        }
        self.len -= 1;
        self.weight -= w;
        (e.key, e.value)
    }

    // ----- eviction ----------------------------------------------------

    /// Whether the sketch admits the entry of hash `h` and weight `w` into
    /// `main` (always without admission, or while `main` has room).
    fn admit<S: BuildHasher>(&self, h: u64, w: u64, hasher: &S) -> bool {
        let Some(sk) = &self.sketch else { return true };
        if self.main.weight.saturating_add(w) <= self.capacity - self.small_target
            || self.main.head == NIL
        {
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
            if self.is_expired(i, now) {
                let h = hasher.hash_one(&self.entry(i).key);
                let (k, v) = self.take(h, i);
                out.push(k, v, EvictionCause::Expired);
                return true;
            }
            let f = self.entry(i).freq();
            if !from_small && f > 0 {
                // CLOCK: a second chance, one frequency point cheaper.
                self.unlink(i);
                self.entry_mut(i).set_freq(f - 1);
                self.push_back(i, Queue::Main);
                continue;
            }
            let h = hasher.hash_one(&self.entry(i).key);
            if from_small {
                if f > 0 && self.admit(h, self.weight_of(i), hasher) {
                    self.unlink(i);
                    self.entry_mut(i).set_freq(0);
                    self.push_back(i, Queue::Main);
                    continue;
                }
                self.ghost.insert(h);
            }
            let (k, v) = self.take(h, i);
            out.push(k, v, EvictionCause::Capacity);
            return true;
        }
    }

    /// Amortised expiry (S3-FIFO): each write inspects the next `step`
    /// slab slots and reclaims the expired ones, so expired entries are
    /// reclaimed within `slab / step` writes even in a cache that never
    /// fills. (Exact LRU skips it: its evictions must match an LRU's.)
    fn sweep<S: BuildHasher>(
        &mut self,
        step: usize,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        let n = self.slab.len() as u32;
        for _ in 0..step.min(n as usize) {
            let i = if self.sweep < n { self.sweep } else { 0 };
            self.sweep = i + 1;
            if matches!(self.slab[i as usize].0, Slot::Full(_)) && self.is_expired(i, now) {
                let h = hasher.hash_one(&self.entry(i).key);
                let (k, v) = self.take(h, i);
                out.push(k, v, EvictionCause::Expired);
            }
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
        while (self.weight.saturating_add(extra) > self.capacity || self.len >= self.max_entries)
            && self.evict_one(now, hasher, out)
        {}
    }

    // ----- writes ------------------------------------------------------

    /// Inserts or replaces `key`. `weight <= capacity` is the caller's
    /// check; the entry is present on return and the weight is within the
    /// capacity.
    #[expect(
        clippy::too_many_arguments,
        reason = "a hot insert path: the entry's parts, its deadline, the clock, the hasher and the eviction sink, without building a struct per call"
    )]
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
        let weight = if self.weighted { weight } else { 1 };
        debug_assert!(u64::from(weight) <= self.capacity);
        // A write supersedes an in-flight load (its result must not land
        // after this value) and a remembered failure.
        self.forget_side(&key);
        if self.policy == Policy::S3Fifo && (self.expiring > 0 || self.tti != 0) {
            self.sweep(SWEEP_STEP, now, hasher, out);
        }
        let idle = if self.tti != 0 {
            crate::time::deadline(now.get(), self.tti)
        } else {
            NEVER
        };
        if let Some(i) = self.find(hash, &key) {
            if self.is_expired(i, now) {
                let (k, v) = self.take(hash, i);
                out.push(k, v, EvictionCause::Expired);
            } else {
                self.replace(i, value, weight, deadline, idle, now, hasher, out, key);
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
                prev: NonZeroU32::MIN,
                link: AtomicU32::new(0),
            },
            weight,
            idle,
        );
        self.push_back(i, queue);
        self.len += 1;
        self.weight += u64::from(weight);
        let slab = &self.slab;
        self.table
            .insert_unique(hash, i, |&j| rehash(slab, hasher, j));
    }

    /// Replaces the value of live entry `i` (S3-FIFO: in place, one
    /// frequency point; LRU: moved to the most recent end).
    #[expect(
        clippy::too_many_arguments,
        reason = "a hot insert path: the entry's parts, its deadline, the clock, the hasher and the eviction sink, without building a struct per call"
    )]
    #[inline]
    fn replace<S: BuildHasher>(
        &mut self,
        i: u32,
        value: V,
        weight: u32,
        deadline: i64,
        idle: i64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
        key: K,
    ) {
        let old_weight = self.weight_of(i);
        let new_weight = u64::from(weight);
        let q = self.entry(i).queue();
        if self.policy == Policy::Lru
            || (self.weighted
                && (self.weight - old_weight).saturating_add(new_weight) > self.capacity)
        {
            // Off its list while making room, so the entry itself is never
            // the victim (`len` is lowered meanwhile: it keeps its slot).
            self.unlink(i);
            self.weight -= old_weight;
            self.len -= 1;
            self.make_room(new_weight, now, hasher, out);
            self.len += 1;
            if self.weighted {
                self.weights[i as usize] = weight;
            }
            self.weight += new_weight;
            self.push_back(i, q);
        } else if self.weighted {
            self.weights[i as usize] = weight;
            self.weight = self.weight - old_weight + new_weight;
            let l = self.list_mut(q);
            l.weight = l.weight - old_weight + new_weight;
        }
        let e = self.entry_mut(i);
        let old = std::mem::replace(&mut e.value, value);
        let was = e.deadline != NEVER;
        e.deadline = deadline;
        let f = e.freq();
        e.set_freq(f + 1);
        if self.tti != 0 {
            self.idle[i as usize].store(idle, Relaxed);
        }
        match (was, deadline != NEVER) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
        out.push(key, old, EvictionCause::Replaced);
    }

    /// Removes `key`. Returns its key and value when it was live (cause
    /// `Explicit`, not recorded in `out`: the caller reports it), records
    /// it as `Expired` otherwise. Cancels an in-flight load's fill and
    /// forgets a negatively cached failure.
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
        self.forget_side(key);
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
            if matches!(self.slab[i as usize].0, Slot::Full(_)) && self.is_expired(i, now) {
                let h = hasher.hash_one(&self.entry(i).key);
                let (k, v) = self.take(h, i);
                out.push(k, v, EvictionCause::Expired);
            }
        }
        let t = now.get();
        self.negatives.retain(|_, n| n.deadline > t);
        self.side_len = self.flights.len() + self.negatives.len();
    }

    /// Removes everything (cause `Explicit`); keeps the allocations.
    pub(crate) fn clear(&mut self, out: &mut Removed<K, V>) {
        self.table.clear();
        self.small = List::EMPTY;
        self.main = List::EMPTY;
        self.free = NIL;
        self.len = 0;
        self.weight = 0;
        self.expiring = 0;
        self.sweep = 0;
        for s in self.slab.drain(..) {
            if let Slot::Full(e) = s.0 {
                out.push(e.key, e.value, EvictionCause::Explicit);
            }
        }
        self.weights.clear();
        self.idle.clear();
        self.ghost.clear();
        if let Some(sk) = &mut self.sketch {
            sk.clear();
        }
        self.flights.clear();
        self.negatives.clear();
        self.side_len = 0;
    }

    // ----- single-flight and negative caching --------------------------

    /// Cancels the fill of an in-flight load of `key` and forgets its
    /// negatively cached failure (a write or remove supersedes both).
    #[inline]
    fn forget_side<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.side_len != 0 {
            self.flights.remove(key);
            self.negatives.remove(key);
            self.side_len = self.flights.len() + self.negatives.len();
        }
    }

    /// The in-flight load of `key`, if any.
    pub(crate) fn flight(&self, key: &K) -> Option<&Arc<Flight<V>>> {
        if self.side_len == 0 {
            return None;
        }
        self.flights.get(key)
    }

    /// Registers `flight` as the load of `key`.
    pub(crate) fn start_flight(&mut self, key: K, flight: Arc<Flight<V>>) {
        self.flights.insert(key, flight);
        self.side_len = self.flights.len() + self.negatives.len();
    }

    /// Unregisters `flight` if it is still the load of `key`; returns
    /// whether it was (false: a write or remove superseded it).
    pub(crate) fn end_flight(&mut self, key: &K, flight: &Arc<Flight<V>>) -> bool {
        let current = self
            .flights
            .get(key)
            .is_some_and(|f| Arc::ptr_eq(f, flight));
        if current {
            self.flights.remove(key);
            self.side_len = self.flights.len() + self.negatives.len();
        }
        current
    }

    /// The remembered failure of `key`, if any and still fresh.
    pub(crate) fn negative<Q>(&self, key: &Q, now: &mut LazyTick<'_>) -> Option<&Negative>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.side_len == 0 {
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
        self.side_len = self.flights.len() + self.negatives.len();
    }

    /// Heap bytes held (slab, table, weights, idle deadlines, ghost, sketch).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Aligned<K, V>>()
            + self.table.allocation_size()
            + self.weights.capacity() * 4
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
                assert_eq!(e.queue(), q, "entry {i} on the wrong list");
                assert_eq!(e.prev(), prev, "entry {i} has a broken back link");
                assert!(e.freq() <= MAX_FREQ, "entry {i} freq over cap");
                let h = hasher.hash_one(&e.key);
                assert_eq!(self.find(h, &e.key), Some(i), "entry {i} not indexed");
                let ew = self.weight_of(i);
                assert!(ew >= 1, "entry {i} weighs 0");
                n += 1;
                w += ew;
                assert!(n <= self.slab.len(), "cycle in list {q:?}");
                prev = i;
                i = e.next();
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
            .filter(|s| matches!(s.0, Slot::Full(_)))
            .count();
        assert_eq!(full, seen, "slab entries not on a list");
        assert_eq!(self.len, seen, "len mismatch");
        let expiring = self
            .slab
            .iter()
            .filter(|s| matches!(&s.0, Slot::Full(e) if e.deadline != NEVER))
            .count();
        assert_eq!(self.expiring, expiring, "expiring count mismatch");
        assert!(self.len <= self.max_entries, "more entries than slots");
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
            let Slot::Free(next) = self.slab[f as usize].0 else {
                panic!("free list reaches entry {f}");
            };
            free += 1;
            assert!(free <= self.slab.len(), "cycle in the free list");
            f = next;
        }
        assert_eq!(free + seen, self.slab.len(), "leaked slab slots");
        if self.weighted {
            assert_eq!(self.weights.len(), self.slab.len(), "weights out of step");
        }
        if self.tti != 0 {
            assert_eq!(
                self.idle.len(),
                self.slab.len(),
                "idle deadlines out of step"
            );
        }
        assert!(self.negatives.len() <= self.negative_cap.max(1));
        assert_eq!(self.side_len, self.flights.len() + self.negatives.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_entries_are_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Aligned<u64, u64>>(), 32);
        assert_eq!(std::mem::align_of::<Aligned<u64, u64>>(), 32);
    }
}
