//! The directory: driver id → packed slot location.
//!
//! An open-addressing table with linear probing and
//! backward-shift deletion, 16 bytes a driver at up to 90 % load (a
//! `HashMap` would round its buckets up to a power of two and sit at 48 %
//! load at one million drivers, 35 bytes a driver). Its bucket address is
//! computable from the id, so a batch can prefetch its buckets ahead and
//! let the memory system fetch them in parallel.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use crate::shard::{Loc, TOMB};

/// An empty bucket (`u64::MAX` is not a valid driver id).
const EMPTY: u64 = TOMB;

#[derive(Debug)]
struct Entry {
    key: u64,
    loc: AtomicU64,
}

/// One directory shard.
pub(crate) struct Table {
    entries: Vec<Entry>,
    len: usize,
    seed: u64,
}

impl Table {
    fn new(seed: u64) -> Self {
        Table {
            entries: Vec::new(),
            len: 0,
            seed,
        }
    }

    #[inline]
    fn home(&self, id: u64) -> usize {
        let x = (id ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h = x ^ (x >> 29);
        // Lemire's fast range: uniform over any capacity, no power of two.
        ((u128::from(h) * self.entries.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.entries.len() {
            0
        } else {
            i + 1
        }
    }

    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mut i = self.home(id);
        loop {
            let k = self.entries[i].key;
            if k == id {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = self.next(i);
        }
    }

    /// Prefetches the home bucket of `id` so a later lookup hits the cache.
    #[inline]
    pub(crate) fn prefetch(&self, id: u64) {
        if !self.entries.is_empty() {
            crate::prefetch::prefetch_to(
                self.entries.as_ptr().wrapping_add(self.home(id)),
                crate::prefetch::Level::L2,
            );
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<Loc> {
        self.get_packed(id).map(Loc::unpack)
    }

    /// [`Table::get`] without unpacking the location.
    #[inline]
    pub(crate) fn get_packed(&self, id: u64) -> Option<u64> {
        self.find(id).map(|i| self.entries[i].loc.load(Relaxed))
    }

    /// Publishes a new location for a present id; false if absent.
    #[inline]
    pub(crate) fn set(&self, id: u64, loc: Loc) -> bool {
        match self.find(id) {
            Some(i) => {
                self.entries[i].loc.store(loc.pack(), Relaxed);
                true
            }
            None => false,
        }
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.find(id).is_some()
    }

    /// Inserts an id that is not present.
    pub(crate) fn insert(&mut self, id: u64, loc: Loc) {
        debug_assert!(id != EMPTY && !self.contains(id));
        if (self.len + 1) * 10 > self.entries.len() * 9 {
            self.grow();
        }
        let mut i = self.home(id);
        while self.entries[i].key != EMPTY {
            i = self.next(i);
        }
        self.entries[i] = Entry {
            key: id,
            loc: AtomicU64::new(loc.pack()),
        };
        self.len += 1;
    }

    fn grow(&mut self) {
        let cap = (self.entries.len() * 3 / 2).max(16);
        let mut fresh: Vec<Entry> = Vec::with_capacity(cap);
        crate::prefetch::advise_huge_pages(&mut fresh);
        fresh.extend((0..cap).map(|_| Entry {
            key: EMPTY,
            loc: AtomicU64::new(0),
        }));
        let old = std::mem::replace(&mut self.entries, fresh);
        self.len = 0;
        for e in old.into_iter().filter(|e| e.key != EMPTY) {
            self.insert(e.key, Loc::unpack(e.loc.into_inner()));
        }
    }

    /// Removes `id` if present (backward-shift deletion: no tombstones).
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(mut hole) = self.find(id) else {
            return false;
        };
        let mut j = hole;
        loop {
            j = self.next(j);
            let k = self.entries[j].key;
            if k == EMPTY {
                break;
            }
            let h = self.home(k);
            // Entry j may move into the hole unless its home lies
            // cyclically in (hole, j].
            let stays = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !stays {
                self.entries.swap(hole, j);
                hole = j;
            }
        }
        self.entries[hole].key = EMPTY;
        self.len -= 1;
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Checks that every key is reachable from its home bucket.
    pub(crate) fn check_invariants(&self) {
        let mut n = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.key != EMPTY {
                n += 1;
                assert_eq!(
                    self.find(e.key),
                    Some(i),
                    "directory key {} unreachable",
                    e.key
                );
            }
        }
        assert_eq!(n, self.len, "directory length out of step");
    }
}

/// The directory: one table behind one lock. A batch takes the read lock
/// once for all its lookups; inserts and removals (new drivers, expiry)
/// take the write lock briefly; location changes are atomic stores under
/// the read lock.
pub(crate) struct Directory {
    table: RwLock<Table>,
}

impl Directory {
    pub(crate) fn new() -> Self {
        Directory {
            table: RwLock::new(Table::new(RandomState::default().hash_one(0x5EED_u64))),
        }
    }

    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, Table> {
        self.table.read()
    }

    pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, Table> {
        self.table.write()
    }

    pub(crate) fn get(&self, id: u64) -> Option<Loc> {
        self.table.read().get(id)
    }

    /// Publishes a new location; the caller holds the slot's shard lock.
    pub(crate) fn set(&self, id: u64, loc: Loc) {
        let found = self.table.read().set(id, loc);
        debug_assert!(found, "moving driver {id} has no directory entry");
    }

    /// Publishes many new locations under one read lock, prefetching every
    /// bucket first so that the misses overlap; the caller holds the shard
    /// lock of every slot.
    pub(crate) fn set_many(&self, moves: &[(u64, Loc)]) {
        if moves.is_empty() {
            return;
        }
        let table = self.table.read();
        for &(id, _) in moves {
            table.prefetch(id);
        }
        for &(id, loc) in moves {
            let found = table.set(id, loc);
            debug_assert!(found, "moving driver {id} has no directory entry");
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        self.table.write().remove(id);
    }

    pub(crate) fn len(&self) -> usize {
        self.table.read().len()
    }

    pub(crate) fn check_invariants(&self) {
        self.table.read().check_invariants();
    }
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(i: u64) -> Loc {
        Loc {
            shard: (i % 7) as u32,
            cell: (i % 1000) as u32,
            slot: (i % 13) as u32,
        }
    }

    #[test]
    fn table_agrees_with_a_hashmap_through_inserts_and_removals() {
        let mut t = Table::new(12345);
        let mut model = std::collections::HashMap::new();
        let mut x: u64 = 1;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 3000;
            if step % 3 == 0 {
                assert_eq!(t.remove(id), model.remove(&id).is_some());
            } else {
                let fresh = model.insert(id, loc(step)).is_none();
                if fresh {
                    t.insert(id, loc(step));
                } else {
                    assert!(t.set(id, loc(step)));
                }
            }
            if step % 997 == 0 {
                t.check_invariants();
            }
        }
        t.check_invariants();
        assert_eq!(t.len(), model.len());
        for id in 0..3000 {
            assert_eq!(t.get(id), model.get(&id).copied());
        }
    }
}
