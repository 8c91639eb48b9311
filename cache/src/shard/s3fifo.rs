//! S3-FIFO (Yang et al., SOSP 2023), with optional TinyLFU admission.
//!
//! New keys enter `small` (10 % of the shard's weight); a key evicted from
//! `small` that was read since insertion moves to `main`, otherwise its
//! fingerprint goes to the ghost table; a key found in the ghost on
//! insertion goes straight to `main`. `main` is a CLOCK: its head is
//! reinserted at the tail with `freq - 1` while `freq > 0`, evicted
//! otherwise. A read only stores `freq + 1` when `freq < 3`
//! ([`Slab::touch_shared`]), so hot entries are read under the shared lock
//! without writing anything shared. With admission, a count-min sketch of
//! insert frequency gates every move into a full `main`: the candidate
//! must be at least as frequent as `main`'s next victim.

use std::hash::{BuildHasher, Hash};

use super::evict::{Evict, Victim};
use super::list::List;
use super::slab::{NIL, Queue, Slab};
use crate::ghost::Ghost;
use crate::sketch::Sketch;
use crate::stats::EvictionCause;
use crate::time::LazyTick;

/// The two queues and the history.
pub(crate) struct S3Fifo {
    small: List,
    main: List,
    /// The weight `small` may hold before it is evicted from first.
    small_target: u64,
    /// The weight `main` may hold without admission being asked.
    main_target: u64,
    ghost: Ghost,
    sketch: Option<Sketch>,
}

impl S3Fifo {
    /// A policy for a shard of `capacity` weight and about `est_entries`
    /// entries (sizes the ghost and the sketch).
    pub(crate) fn new(capacity: u64, est_entries: usize, admission: bool) -> Self {
        // 10 % of the weight for the small queue (S3-FIFO's default).
        let small_target = capacity / 10;
        Self {
            small: List::EMPTY,
            main: List::EMPTY,
            small_target,
            main_target: capacity - small_target,
            ghost: Ghost::new(est_entries),
            sketch: admission.then(|| Sketch::new(est_entries, 4, 10)),
        }
    }

    fn list_mut(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Small => &mut self.small,
            // S3-FIFO links entries on small and main only.
            Queue::Main | Queue::Protected => &mut self.main,
        }
    }

    /// Whether the sketch admits the entry of hash `h` and weight `w` into
    /// `main` (always without admission, or while `main` has room).
    fn admit<K: Hash, V, S: BuildHasher>(
        &self,
        slab: &Slab<K, V>,
        h: u64,
        w: u64,
        hasher: &S,
    ) -> bool {
        let Some(sk) = &self.sketch else { return true };
        if self.main.weight.saturating_add(w) <= self.main_target || self.main.head == NIL {
            return true;
        }
        let victim = hasher.hash_one(&slab.entry(self.main.head).key);
        sk.estimate(h) >= sk.estimate(victim)
    }

    /// Moves entry `i` from wherever it is to the tail of `main`.
    fn requeue<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, freq: u32) {
        self.unlink(slab, i);
        slab.entry_mut(i).set_freq(freq);
        self.main.push_back(slab, i, Queue::Main);
    }
}

impl Evict for S3Fifo {
    #[inline]
    fn place<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        hash: u64,
        weight: u64,
        hasher: &S,
    ) -> Queue {
        if let Some(sk) = &mut self.sketch {
            sk.increment(hash);
        }
        if self.ghost.take(hash) && self.admit(slab, hash, weight, hasher) {
            Queue::Main
        } else {
            Queue::Small
        }
    }
    #[inline]
    fn link<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        self.list_mut(q).push_back(slab, i, q);
    }
    #[inline]
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        let q = slab.entry(i).queue();
        self.list_mut(q).unlink(slab, i);
    }
    #[inline]
    fn reweigh(&mut self, q: Queue, old: u64, new: u64) {
        self.list_mut(q).reweigh(old, new);
    }
    fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Slab<K, V>,
        now: &mut LazyTick<'_>,
        hasher: &S,
    ) -> Option<Victim> {
        loop {
            let from_small = self.small.head != NIL
                && (self.small.weight > self.small_target || self.main.head == NIL);
            let i = if from_small {
                self.small.head
            } else {
                self.main.head
            };
            if i == NIL {
                return None;
            }
            if slab.is_expired(i, now) {
                let hash = hasher.hash_one(&slab.entry(i).key);
                return Some(Victim {
                    index: i,
                    hash,
                    cause: EvictionCause::Expired,
                });
            }
            let f = slab.entry(i).freq();
            if !from_small && f > 0 {
                // CLOCK: a second chance, one frequency point cheaper.
                self.requeue(slab, i, f - 1);
                continue;
            }
            let hash = hasher.hash_one(&slab.entry(i).key);
            if from_small {
                if f > 0 && self.admit(slab, hash, slab.weight_of(i), hasher) {
                    self.requeue(slab, i, 0);
                    continue;
                }
                self.ghost.insert(hash);
            }
            return Some(Victim {
                index: i,
                hash,
                cause: EvictionCause::Capacity,
            });
        }
    }
    #[inline]
    fn sweeps(&self) -> bool {
        true
    }
    fn clear(&mut self) {
        self.small = List::EMPTY;
        self.main = List::EMPTY;
        self.ghost.clear();
        if let Some(sk) = &mut self.sketch {
            sk.clear();
        }
    }
    fn heap_bytes(&self) -> usize {
        self.ghost.heap_bytes() + self.sketch.as_ref().map_or(0, Sketch::heap_bytes)
    }
    fn check_invariants<K, V>(&self, slab: &Slab<K, V>, mut each: impl FnMut(u32)) {
        self.small.check_invariants(slab, Queue::Small, &mut each);
        self.main.check_invariants(slab, Queue::Main, &mut each);
    }
}
