//! One shard: a slab of entries indexed by a `hashbrown::HashTable<u32>`,
//! and the replacement policy over them.
//!
//! # Where things live
//! - [`slab`]: the entries (key, value, TTL deadline, list links, a 2-bit
//!   frequency), the free list, weights and idle deadlines beside them.
//! - [`list`]: the intrusive doubly linked lists policies are made of.
//! - [`evict`]: the [`Evict`] trait a policy implements, and the
//!   [`Eviction`] enum the shard dispatches on.
//! - [`wtinylfu`], [`s3fifo`], [`lru`]: one file per policy.
//! - this module: the hash table, the totals, lookups, writes, expiry,
//!   and the single-flight / negative-caching side tables.
//!
//! # Expiry
//! An expired entry is never returned. It is reclaimed (cause
//! `Expired`) when it is read, written, reaches the eviction end of its
//! queue, is met by the write sweep (policies that allow it: two slab slots
//! per write), or on `purge_expired`; it counts against the capacity until
//! then.

mod evict;
mod list;
mod lru;
mod s3fifo;
mod slab;
mod wtinylfu;

use std::any::Any;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;

use self::evict::{Evict, Eviction, Victim};
use self::lru::Lru;
use self::s3fifo::S3Fifo;
use self::slab::{Entry, NIL, Slab};
use self::wtinylfu::WTinyLfu;
use crate::load::Flight;
use crate::policy::Policy;
use crate::stats::{EvictionCause, Removed};
use crate::time::{LazyTick, NEVER};

/// Slab slots the amortised expiry sweep inspects per write.
const SWEEP_STEP: usize = 2;

/// What one eviction step did.
enum Room {
    Made,
    /// Nothing left to evict.
    Gone,
    /// The policy refused the entry being inserted.
    Refused,
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

/// What [`Shard::replace_in_place`] did.
pub(crate) enum Fast<K, V> {
    /// Replaced; the old value.
    Replaced(V),
    /// The key is absent (and the shard fits the fast path's conditions).
    Absent(K, V),
    /// Not tried: the general path decides.
    General(K, V),
}

/// Fixed parameters of a shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardParams {
    pub(crate) capacity: u64,
    pub(crate) est_entries: usize,
    pub(crate) policy: Policy,
    pub(crate) admission: bool,
    /// The W-TinyLFU window's share of the capacity.
    pub(crate) window: f64,
    /// Seeds the shard's random choices (W-TinyLFU's duel jitter).
    pub(crate) seed: u64,
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
/// the rest the write path.
#[repr(C)]
pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Slab<K, V>,
    capacity: u64,
    negative_cap: usize,
    /// `flights.len() + negatives.len()`: writes skip both maps when 0.
    side_len: usize,
    len: usize,
    weight: u64,
    /// The amortised expiry sweep's position in the slab.
    sweep: u32,
    policy: Eviction,
    /// In-flight loads (single-flight), by key.
    flights: HashMap<K, Arc<Flight<V>>, foldhash::fast::RandomState>,
    /// Negatively cached load failures, by key (at most `negative_cap`).
    negatives: HashMap<K, Negative, foldhash::fast::RandomState>,
}

#[inline]
fn rehash<K: Hash, V, S: BuildHasher>(slab: &Slab<K, V>, hasher: &S, i: u32) -> u64 {
    slab.get(i).map_or(0, |e| hasher.hash_one(&e.key))
}

impl<K: Hash + Eq, V> Shard<K, V> {
    pub(crate) fn new(p: ShardParams) -> Self {
        Self {
            table: HashTable::new(),
            slab: Slab::new(p.weighted, p.tti, p.max_entries),
            capacity: p.capacity,
            negative_cap: p.negative_cap,
            side_len: 0,
            len: 0,
            weight: 0,
            sweep: 0,
            policy: match p.policy {
                Policy::WTinyLfu => {
                    Eviction::WTinyLfu(WTinyLfu::new(p.capacity, p.est_entries, p.window, p.seed))
                }
                Policy::S3Fifo => {
                    Eviction::S3Fifo(S3Fifo::new(p.capacity, p.est_entries, p.admission))
                }
                Policy::Lru => Eviction::Lru(Lru::new()),
            },
            flights: HashMap::default(),
            negatives: HashMap::default(),
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

    /// The slab index of `key`, if present (live or expired).
    #[inline(always)]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_entry(hash, key).map(|(i, _)| i)
    }

    /// [`Self::find`], with the entry it found.
    #[inline(always)]
    pub(crate) fn find_entry<Q>(&self, hash: u64, key: &Q) -> Option<(u32, &Entry<K, V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slab = &self.slab;
        let mut found = None;
        let &i = self.table.find(hash, |&i| match slab.get(i) {
            Some(e) if e.key.borrow() == key => {
                found = Some(e);
                true
            }
            _ => false,
        })?;
        found.map(|e| (i, e))
    }

    /// Sets the W-TinyLFU window's share of the capacity (other policies
    /// have no window).
    pub(crate) fn set_window<S: BuildHasher>(&mut self, share: f64, hasher: &S) {
        if let Eviction::WTinyLfu(p) = &mut self.policy {
            p.resize(share, &mut self.slab, hasher);
        }
    }

    /// Switches W-TinyLFU's sketch to its scan memory or back (other
    /// policies: nothing).
    pub(crate) fn set_scan_memory(&mut self, scan: bool) {
        if let Eviction::WTinyLfu(p) = &mut self.policy {
            p.set_scan_memory(scan);
        }
    }

    /// A read under the shared lock (policies whose reads write nothing
    /// but the entry's own read mark: W-TinyLFU, S3-FIFO).
    #[inline(always)]
    pub(crate) fn get_shared<Q>(&self, hash: u64, key: &Q, now: LazyTick<'_>) -> Lookup<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert!(!matches!(self.policy, Eviction::Lru(_)));
        match self.find_entry(hash, key) {
            None => Lookup::Miss,
            Some((i, e)) if self.slab.read_live(i, e, now) => Lookup::Hit(&e.value),
            Some(_) => Lookup::Expired,
        }
    }

    /// A read under the exclusive lock (LRU moves the entry to the newest
    /// end); an expired entry is reclaimed into `out` and reported as a
    /// miss.
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
        if self.slab.is_expired(i, now) {
            self.take_into(hash, i, EvictionCause::Expired, out);
            return None;
        }
        self.slab.touch_shared(i, now);
        self.policy.on_read(&mut self.slab, i);
        Some(&self.slab.entry(i).value)
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
            && self.slab.is_expired(i, now)
        {
            self.take_into(hash, i, EvictionCause::Expired, out);
        }
    }

    /// Unlinks, unindexes and frees entry `i`, returning its key and value.
    fn take(&mut self, hash: u64, i: u32) -> (K, V) {
        self.policy.unlink(&mut self.slab, i);
        let w = self.slab.weight_of(i);
        match self.table.find_entry(hash, |&j| j == i) {
            Ok(slot) => {
                slot.remove();
            }
            Err(_) => unreachable!("entry {i} missing from the table"),
        }
        let e = self.slab.free(i);
        self.len -= 1;
        self.weight -= w;
        (e.key, e.value)
    }

    /// [`Self::take`], recording the entry in `out` with `cause`.
    fn take_into(&mut self, hash: u64, i: u32, cause: EvictionCause, out: &mut Removed<K, V>) {
        let (k, v) = self.take(hash, i);
        out.push(k, v, cause);
    }

    /// [`Self::take_into`] for an entry whose hash the caller lacks.
    fn rehash_take_into<S: BuildHasher>(
        &mut self,
        i: u32,
        cause: EvictionCause,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        let h = hasher.hash_one(&self.slab.entry(i).key);
        self.take_into(h, i, cause, out);
    }

    // ----- eviction ----------------------------------------------------

    /// Removes one entry by policy. `Gone` when the shard is empty,
    /// `Refused` when the policy turns away the entry being inserted.
    fn evict_one<S: BuildHasher>(
        &mut self,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) -> Room {
        match self.policy.victim(&mut self.slab, now, hasher) {
            Some(Victim { index: NIL, .. }) => Room::Refused,
            Some(Victim { index, hash, cause }) => {
                self.take_into(hash, index, cause, out);
                Room::Made
            }
            None => Room::Gone,
        }
    }

    /// Amortised expiry: each write inspects the next `step` slab slots
    /// and reclaims the expired ones, so expired entries are reclaimed
    /// within `slab / step` writes even in a cache that never fills.
    fn sweep<S: BuildHasher>(
        &mut self,
        step: usize,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        let n = self.slab.slots();
        for _ in 0..step.min(n as usize) {
            let i = if self.sweep < n { self.sweep } else { 0 };
            self.sweep = i + 1;
            if self.slab.is_full(i) && self.slab.is_expired(i, now) {
                self.rehash_take_into(i, EvictionCause::Expired, hasher, out);
            }
        }
    }

    /// Evicts until `extra` more weight fits and a slot is free; false
    /// when the policy refused the entry being inserted instead.
    fn make_room<S: BuildHasher>(
        &mut self,
        extra: u64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) -> bool {
        while self.weight.saturating_add(extra) > self.capacity
            || self.len >= self.slab.max_entries()
        {
            match self.evict_one(now, hasher, out) {
                Room::Made => {}
                Room::Gone => break,
                Room::Refused => return false,
            }
        }
        true
    }

    // ----- writes ------------------------------------------------------

    /// The common write, with nothing to report but the count: `key` is
    /// live and gets `value` in place, in a shard where nothing can expire
    /// (the new value has no deadline either), with no weigher, no load in
    /// flight or remembered failure, under a policy that keeps a replaced
    /// entry where it is. Otherwise hands the key and value back, saying
    /// whether the key was found absent (the new-key path then skips the
    /// lookup).
    #[inline]
    pub(crate) fn replace_in_place(&mut self, hash: u64, key: K, value: V) -> Fast<K, V> {
        if self.side_len != 0
            || !self.slab.untimed()
            || self.slab.weighted()
            || self.policy.relinks_on_replace()
        {
            return Fast::General(key, value);
        }
        match self.find(hash, &key) {
            Some(i) => Fast::Replaced(self.overwrite_in_place(i, value, NEVER, NEVER)),
            None => Fast::Absent(key, value),
        }
    }

    /// Inserts or replaces `key`. `weight <= capacity` is the caller's
    /// check; the entry is present on return (unless W-TinyLFU refused a
    /// new entry heavier than its window: then it is in `out` with cause
    /// `Capacity`) and the weight is within the capacity.
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
        let weight = if self.slab.weighted() { weight } else { 1 };
        debug_assert!(u64::from(weight) <= self.capacity);
        // A write supersedes an in-flight load (its result must not land
        // after this value) and a remembered failure.
        self.forget_side(&key);
        if self.policy.sweeps() && (self.slab.expiring() > 0 || self.slab.has_tti()) {
            self.sweep(SWEEP_STEP, now, hasher, out);
        }
        let idle = self.slab.idle_deadline(now);
        if let Some(i) = self.find(hash, &key) {
            if self.slab.is_expired(i, now) {
                self.take_into(hash, i, EvictionCause::Expired, out);
            } else if !self.slab.weighted() && !self.policy.relinks_on_replace() {
                // The common replace: same weight, same place.
                let old = self.overwrite_in_place(i, value, deadline, idle);
                out.push(key, old, EvictionCause::Replaced);
                return;
            } else {
                self.replace(i, key, value, weight, deadline, idle, now, hasher, out);
                return;
            }
        }
        self.insert_new(hash, key, value, weight, deadline, idle, now, hasher, out);
    }

    /// Gives live entry `i` a new value (and deadlines) where it is, marks
    /// the write for the policy; returns the old value.
    #[inline]
    fn overwrite_in_place(&mut self, i: u32, value: V, deadline: i64, idle: i64) -> V {
        let old = self.slab.overwrite(i, value, deadline, idle);
        self.policy.on_write(&mut self.slab, i);
        old
    }

    /// [`Self::insert`] of a key known to be absent (`weight` already 1
    /// without a weigher; `idle` its idle deadline).
    #[expect(
        clippy::too_many_arguments,
        reason = "a hot insert path: the entry's parts, its deadlines, the clock, the hasher and the eviction sink, without building a struct per call"
    )]
    pub(crate) fn insert_new<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        deadline: i64,
        idle: i64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        let queue = self
            .policy
            .place(&mut self.slab, hash, u64::from(weight), hasher);
        if !self.make_room(u64::from(weight), now, hasher, out) {
            out.push(key, value, EvictionCause::Capacity);
            return;
        }
        let i = self
            .slab
            .alloc(Entry::new(key, value, deadline), weight, idle);
        self.policy.link(&mut self.slab, i, queue);
        self.len += 1;
        self.weight += u64::from(weight);
        let slab = &self.slab;
        self.table
            .insert_unique(hash, i, |&j| rehash(slab, hasher, j));
    }

    /// Replaces the value of live entry `i`: in place, or (policies that
    /// relink, and an entry whose new weight needs room) off its list while
    /// room is made, then at the newest end.
    #[expect(
        clippy::too_many_arguments,
        reason = "a hot insert path: the entry's parts, its deadline, the clock, the hasher and the eviction sink, without building a struct per call"
    )]
    #[inline]
    fn replace<S: BuildHasher>(
        &mut self,
        i: u32,
        key: K,
        value: V,
        weight: u32,
        deadline: i64,
        idle: i64,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        let old_weight = self.slab.weight_of(i);
        let new_weight = u64::from(weight);
        let q = self.slab.entry(i).queue();
        let weighted = self.slab.weighted();
        if self.policy.relinks_on_replace()
            || (weighted && (self.weight - old_weight).saturating_add(new_weight) > self.capacity)
        {
            // Off its list while making room, so the entry itself is never
            // the victim (`len` is lowered meanwhile: it keeps its slot).
            self.policy.unlink(&mut self.slab, i);
            self.weight -= old_weight;
            self.len -= 1;
            // No entry is being placed, so no policy refuses one.
            let made = self.make_room(new_weight, now, hasher, out);
            debug_assert!(made);
            self.len += 1;
            self.slab.set_weight(i, weight);
            self.weight += new_weight;
            self.policy.link(&mut self.slab, i, q);
        } else if weighted {
            self.slab.set_weight(i, weight);
            self.weight = self.weight - old_weight + new_weight;
            self.policy.reweigh(q, old_weight, new_weight);
        }
        let old = self.overwrite_in_place(i, value, deadline, idle);
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
        if self.slab.is_expired(i, now) {
            self.take_into(hash, i, EvictionCause::Expired, out);
            None
        } else {
            Some(self.take(hash, i))
        }
    }

    /// Reclaims every expired entry; O(slab).
    pub(crate) fn purge_expired<S: BuildHasher>(
        &mut self,
        now: &mut LazyTick<'_>,
        hasher: &S,
        out: &mut Removed<K, V>,
    ) {
        for i in 0..self.slab.slots() {
            if self.slab.is_full(i) && self.slab.is_expired(i, now) {
                self.rehash_take_into(i, EvictionCause::Expired, hasher, out);
            }
        }
        let t = now.get();
        self.negatives.retain(|_, n| n.deadline > t);
        self.side_len = self.flights.len() + self.negatives.len();
    }

    /// Removes everything (cause `Explicit`); keeps the allocations.
    pub(crate) fn clear(&mut self, out: &mut Removed<K, V>) {
        self.table.clear();
        self.policy.clear();
        self.len = 0;
        self.weight = 0;
        self.sweep = 0;
        self.slab
            .drain(|e| out.push(e.key, e.value, EvictionCause::Explicit));
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

    /// Heap bytes held (slab, table, weights, idle deadlines, the policy's
    /// history).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.heap_bytes() + self.table.allocation_size() + self.policy.heap_bytes()
    }

    /// Checks every structural invariant; panics with a description on the
    /// first violation. O(slab).
    pub(crate) fn check_invariants<S: BuildHasher>(&self, hasher: &S) {
        let mut linked = 0usize;
        let mut total_weight = 0u64;
        self.policy.check_invariants(&self.slab, |i| {
            let e = self.slab.entry(i);
            let h = hasher.hash_one(&e.key);
            assert_eq!(self.find(h, &e.key), Some(i), "entry {i} not indexed");
            linked += 1;
            total_weight += self.slab.weight_of(i);
        });
        let full = self.slab.check_invariants();
        assert_eq!(full, linked, "slab entries not on a list");
        assert_eq!(self.len, linked, "len mismatch");
        assert_eq!(self.table.len(), linked, "table size mismatch");
        assert_eq!(self.weight, total_weight, "weight mismatch");
        assert!(
            self.weight <= self.capacity,
            "weight {} over capacity {}",
            self.weight,
            self.capacity
        );
        assert!(self.negatives.len() <= self.negative_cap.max(1));
        assert_eq!(self.side_len, self.flights.len() + self.negatives.len());
    }
}
