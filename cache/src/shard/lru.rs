//! Exact LRU: one list in recency order. Every read moves the entry to
//! the newest end (so reads need the shard's write lock); eviction takes
//! the oldest. With one shard the cache is exactly an LRU of its capacity,
//! the reference the property tests compare against.

use std::hash::{BuildHasher, Hash};

use super::evict::{Evict, Victim};
use super::list::List;
use super::slab::{Queue, Slab};
use crate::stats::EvictionCause;
use crate::time::LazyTick;

/// The recency list (head = least recently used).
pub(crate) struct Lru {
    list: List,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Self { list: List::EMPTY }
    }
}

impl Evict for Lru {
    #[inline]
    fn place<K: Hash, V, S: BuildHasher>(
        &mut self,
        _: &mut Slab<K, V>,
        _: u64,
        _: u64,
        _: &S,
    ) -> Queue {
        Queue::Main
    }
    #[inline]
    fn link<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        self.list.push_back(slab, i, q);
    }
    #[inline]
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        self.list.unlink(slab, i);
    }
    #[inline]
    fn on_read<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        self.list.unlink(slab, i);
        self.list.push_back(slab, i, Queue::Main);
    }
    #[inline]
    fn on_write<K, V>(&mut self, _: &mut Slab<K, V>, _: u32) {}
    #[inline]
    fn relinks_on_replace(&self) -> bool {
        true
    }
    #[inline]
    fn reweigh(&mut self, _: Queue, old: u64, new: u64) {
        self.list.reweigh(old, new);
    }
    fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        now: &mut LazyTick<'_>,
        hasher: &S,
    ) -> Option<Victim> {
        let i = self.list.head;
        if i == super::slab::NIL {
            return None;
        }
        let cause = if slab.is_expired(i, now) {
            EvictionCause::Expired
        } else {
            EvictionCause::Capacity
        };
        Some(Victim {
            index: i,
            hash: hasher.hash_one(&slab.entry(i).key),
            cause,
        })
    }
    #[inline]
    fn sweeps(&self) -> bool {
        // Its evictions must match an exact LRU's, expired or not.
        false
    }
    fn clear(&mut self) {
        self.list = List::EMPTY;
    }
    fn heap_bytes(&self) -> usize {
        0
    }
    fn check_invariants<K, V>(&self, slab: &Slab<K, V>, each: impl FnMut(u32)) {
        self.list.check_invariants(slab, Queue::Main, each);
    }
}
