//! The interface between a shard and its replacement policy.
//!
//! The shard owns the slab, the hash table and the totals; a policy owns
//! its lists (threaded through the slab) and whatever history it keeps
//! (S3-FIFO's ghost, W-TinyLFU's sketch), and decides three things: which queue a
//! new entry joins, what a read or write does to an entry's place, and
//! which entry goes next when the shard is full. A new policy is a new
//! file implementing [`Evict`] and a variant of [`Eviction`].

use std::hash::{BuildHasher, Hash};

use super::lru::Lru;
use super::s3fifo::S3Fifo;
use super::slab::{Queue, Slab};
use super::wtinylfu::WTinyLfu;
use crate::stats::EvictionCause;
use crate::time::LazyTick;

/// The entry a policy gives up: its slab index, its key's hash and why.
/// Index `NIL`: the policy refuses the entry being inserted instead
/// (W-TinyLFU, an entry heavier than its window that lost its duel).
pub(crate) struct Victim {
    pub(crate) index: u32,
    pub(crate) hash: u64,
    pub(crate) cause: EvictionCause,
}

/// A replacement policy over one shard's slab.
pub(crate) trait Evict {
    /// The queue a new entry of hash `hash` and weight `weight` joins;
    /// asked before room is made for it (the policy may move entries
    /// between its own lists meanwhile).
    fn place<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hash: u64,
        weight: u64,
        hasher: &S,
    ) -> Queue;
    /// Links entry `i` (on no list) at the newest end of `q`.
    fn link<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue);
    /// Takes entry `i` off its list.
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32);
    /// A read of live entry `i` under the exclusive lock (the shared-lock
    /// mark, [`Slab::touch_shared`], has been made). Nothing by default:
    /// the mark is the policies' read signal.
    #[inline]
    fn on_read<K, V>(&mut self, _slab: &mut Slab<K, V>, _i: u32) {}
    /// A write replaced live entry `i`'s value in place. By default it
    /// counts as one use ([`Entry::mark_write`](super::slab::Entry::mark_write)).
    #[inline]
    fn on_write<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        slab.entry_mut(i).mark_write();
    }
    /// Whether a replaced entry is taken off its list while room is made
    /// and relinked at the newest end (else it keeps its place, the
    /// default).
    #[inline]
    fn relinks_on_replace(&self) -> bool {
        false
    }
    /// An entry on `q` changed weight in place from `old` to `new`.
    fn reweigh(&mut self, q: Queue, old: u64, new: u64);
    /// The next entry to remove (`Expired` when the one found at the
    /// eviction end has expired); `None` when the lists are empty. May
    /// reorder entries on the way (second chances, promotions).
    fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        now: &mut LazyTick<'_>,
        hasher: &S,
    ) -> Option<Victim>;
    /// Whether each write runs the amortised expiry sweep (a policy whose
    /// evictions must match a reference model's does not).
    fn sweeps(&self) -> bool;
    /// Forgets every entry and all history.
    fn clear(&mut self);
    /// Heap bytes held by the policy's history.
    fn heap_bytes(&self) -> usize;
    /// Checks the lists; calls `each` on every linked entry. Panics on a
    /// violation.
    fn check_invariants<K, V>(&self, slab: &Slab<K, V>, each: impl FnMut(u32));
}

/// The policies a shard can run (static dispatch over [`Evict`]).
pub(crate) enum Eviction {
    WTinyLfu(WTinyLfu),
    S3Fifo(S3Fifo),
    Lru(Lru),
}

macro_rules! each_policy {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Eviction::WTinyLfu($p) => $e,
            Eviction::S3Fifo($p) => $e,
            Eviction::Lru($p) => $e,
        }
    };
}

impl Evict for Eviction {
    #[inline]
    fn place<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hash: u64,
        weight: u64,
        hasher: &S,
    ) -> Queue {
        each_policy!(self, p => p.place(slab, hash, weight, hasher))
    }
    #[inline]
    fn link<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        each_policy!(self, p => p.link(slab, i, q))
    }
    #[inline]
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        each_policy!(self, p => p.unlink(slab, i))
    }
    #[inline]
    fn on_read<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        each_policy!(self, p => p.on_read(slab, i))
    }
    #[inline]
    fn on_write<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        each_policy!(self, p => p.on_write(slab, i))
    }
    #[inline]
    fn relinks_on_replace(&self) -> bool {
        each_policy!(self, p => p.relinks_on_replace())
    }
    #[inline]
    fn reweigh(&mut self, q: Queue, old: u64, new: u64) {
        each_policy!(self, p => p.reweigh(q, old, new))
    }
    #[inline]
    fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        now: &mut LazyTick<'_>,
        hasher: &S,
    ) -> Option<Victim> {
        each_policy!(self, p => p.victim(slab, now, hasher))
    }
    #[inline]
    fn sweeps(&self) -> bool {
        each_policy!(self, p => p.sweeps())
    }
    fn clear(&mut self) {
        each_policy!(self, p => p.clear())
    }
    fn heap_bytes(&self) -> usize {
        each_policy!(self, p => p.heap_bytes())
    }
    fn check_invariants<K, V>(&self, slab: &Slab<K, V>, each: impl FnMut(u32)) {
        each_policy!(self, p => p.check_invariants(slab, each))
    }
}
