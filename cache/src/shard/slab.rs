//! The entries of one shard: a slab of 32-byte-aligned slots with a free
//! list, and the per-entry state that lives beside it (weights when a
//! weigher is set, idle deadlines with time-to-idle).
//!
//! An entry is its key, value, TTL deadline, a `prev` link and one atomic
//! `link` word packing `next` (28 bits), a 2-bit queue and a 2-bit
//! frequency, so a read under the shared lock can bump the frequency. For
//! `u64 → u64` an entry is 32 bytes: half a cache line. The links are the
//! eviction policy's lists ([`super::list`]); what the queue bit and the
//! frequency mean is the policy's business.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};

use crate::time::{LazyTick, NEVER};

/// Bits of the `link` word holding `next`.
const NEXT_BITS: u32 = 28;
const NEXT_MASK: u32 = (1 << NEXT_BITS) - 1;
/// The queue field of the `link` word (two bits).
const QUEUE_SHIFT: u32 = NEXT_BITS;
const QUEUE_MASK: u32 = 3 << QUEUE_SHIFT;
/// The frequency field of the `link` word.
const FREQ_SHIFT: u32 = NEXT_BITS + 2;
/// End of a list / of the free list.
pub(crate) const NIL: u32 = NEXT_MASK;
/// Most entries one shard can index (NIL is reserved).
pub(crate) const MAX_SLOTS: usize = NIL as usize;
/// Frequency saturation (two bits).
pub(crate) const MAX_FREQ: u32 = 3;

/// Which of a policy's lists an entry is on (S3-FIFO: small / main;
/// W-TinyLFU: window / probation / protected; LRU: main).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Queue {
    Small = 0,
    Main = 1,
    Protected = 2,
}

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// TTL deadline tick, `NEVER` for none.
    pub(crate) deadline: i64,
    /// `prev + 1` (the zero niche makes `Slot` no larger than `Entry`).
    prev: NonZeroU32,
    /// `next | queue << 28 | freq << 30`; `freq` is stored under the read
    /// lock (lossy between concurrent readers, which is harmless), the rest
    /// only under the write lock.
    link: AtomicU32,
}

impl<K, V> Entry<K, V> {
    /// A new entry, on no list, frequency 0.
    pub(crate) fn new(key: K, value: V, deadline: i64) -> Self {
        Self {
            key,
            value,
            deadline,
            prev: NonZeroU32::MIN,
            link: AtomicU32::new(0),
        }
    }
    #[inline]
    pub(crate) fn prev(&self) -> u32 {
        self.prev.get() - 1
    }
    #[inline]
    pub(crate) fn set_prev(&mut self, p: u32) {
        // p <= NIL < u32::MAX, so p + 1 is non-zero.
        self.prev = NonZeroU32::new(p + 1).unwrap_or(NonZeroU32::MIN);
    }
    #[inline]
    pub(crate) fn next(&self) -> u32 {
        self.link.load(Relaxed) & NEXT_MASK
    }
    #[inline]
    pub(crate) fn set_next(&mut self, n: u32) {
        let l = self.link.get_mut();
        *l = (*l & !NEXT_MASK) | n;
    }
    #[inline]
    pub(crate) fn queue(&self) -> Queue {
        match (self.link.load(Relaxed) & QUEUE_MASK) >> QUEUE_SHIFT {
            0 => Queue::Small,
            1 => Queue::Main,
            _ => Queue::Protected,
        }
    }
    #[inline]
    pub(crate) fn set_queue(&mut self, q: Queue) {
        let l = self.link.get_mut();
        *l = (*l & !QUEUE_MASK) | ((q as u32) << QUEUE_SHIFT);
    }
    #[inline]
    pub(crate) fn freq(&self) -> u32 {
        self.link.load(Relaxed) >> FREQ_SHIFT
    }
    #[inline]
    pub(crate) fn set_freq(&mut self, f: u32) {
        let l = self.link.get_mut();
        *l = (*l & !(3 << FREQ_SHIFT)) | (f.min(MAX_FREQ) << FREQ_SHIFT);
    }
    /// Counts a write as one more use (saturating at the cap).
    #[inline]
    pub(crate) fn mark_write(&mut self) {
        let f = self.freq();
        self.set_freq(f + 1);
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
pub(crate) struct Aligned<K, V>(pub(crate) Slot<K, V>);

/// The slab and its parallel vectors. `repr(C)`: what a read needs (the
/// slots, time-to-idle) comes first, beside the shard's table.
#[repr(C)]
pub(crate) struct Slab<K, V> {
    slots: Vec<Aligned<K, V>>,
    /// Time-to-idle in nanoseconds, 0 for none.
    tti: i64,
    /// Entries with a TTL deadline (beside `tti`: a read tests both at
    /// once).
    expiring: usize,
    /// Whether entries have their own weights (a weigher is set).
    weighted: bool,
    /// Most entries the shard can ever hold: the slab never grows past it.
    max_entries: usize,
    /// Head of the free list.
    free: u32,
    /// Entry weights, parallel to `slots`; empty without a weigher.
    weights: Vec<u32>,
    /// Idle deadlines (time-to-idle), parallel to `slots`; empty without TTI.
    idle: Vec<AtomicI64>,
}

impl<K, V> Slab<K, V> {
    pub(crate) fn new(weighted: bool, tti: Option<i64>, max_entries: usize) -> Self {
        Self {
            slots: Vec::new(),
            tti: tti.unwrap_or(0),
            weighted,
            max_entries: max_entries.clamp(1, MAX_SLOTS),
            free: NIL,
            expiring: 0,
            weights: Vec::new(),
            idle: Vec::new(),
        }
    }

    /// Slots allocated (entries and free slots).
    #[inline]
    pub(crate) fn slots(&self) -> u32 {
        self.slots.len() as u32
    }

    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub(crate) fn weighted(&self) -> bool {
        self.weighted
    }

    pub(crate) fn has_tti(&self) -> bool {
        self.tti != 0
    }

    /// No entry has a deadline and there is no time-to-idle: nothing here
    /// can expire.
    #[inline(always)]
    pub(crate) fn untimed(&self) -> bool {
        (self.tti as u64 | self.expiring as u64) == 0
    }

    /// Entries with a TTL deadline.
    pub(crate) fn expiring(&self) -> usize {
        self.expiring
    }

    #[inline(always)]
    pub(crate) fn is_full(&self, i: u32) -> bool {
        matches!(self.slots[i as usize].0, Slot::Full(_))
    }

    /// The entry in slot `i`, if it holds one.
    #[inline(always)]
    pub(crate) fn get(&self, i: u32) -> Option<&Entry<K, V>> {
        match &self.slots[i as usize].0 {
            Slot::Full(e) => Some(e),
            Slot::Free(_) => None,
        }
    }

    #[inline(always)]
    pub(crate) fn entry(&self, i: u32) -> &Entry<K, V> {
        match &self.slots[i as usize].0 {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    #[inline]
    pub(crate) fn entry_mut(&mut self, i: u32) -> &mut Entry<K, V> {
        match &mut self.slots[i as usize].0 {
            Slot::Full(e) => e,
            Slot::Free(_) => unreachable!("slab index {i} is not an entry"),
        }
    }

    #[inline]
    pub(crate) fn weight_of(&self, i: u32) -> u64 {
        if self.weighted {
            u64::from(self.weights[i as usize])
        } else {
            1
        }
    }

    pub(crate) fn set_weight(&mut self, i: u32, w: u32) {
        if self.weighted {
            self.weights[i as usize] = w;
        }
    }

    /// The idle deadline of an entry touched at `now` (`NEVER` without TTI).
    pub(crate) fn idle_deadline(&self, now: &mut LazyTick<'_>) -> i64 {
        if self.tti != 0 {
            crate::time::deadline(now.get(), self.tti)
        } else {
            NEVER
        }
    }

    pub(crate) fn set_idle(&self, i: u32, idle: i64) {
        if self.tti != 0 {
            self.idle[i as usize].store(idle, Relaxed);
        }
    }

    /// Overwrites live entry `i` in place (its weight and place on its
    /// list unchanged): the new value, TTL deadline (keeping the
    /// `expiring` count) and idle deadline; returns the old value.
    #[inline]
    pub(crate) fn overwrite(&mut self, i: u32, value: V, deadline: i64, idle: i64) -> V {
        let e = self.entry_mut(i);
        let was = e.deadline != NEVER;
        e.deadline = deadline;
        let old = std::mem::replace(&mut e.value, value);
        match (was, deadline != NEVER) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
        self.set_idle(i, idle);
        old
    }

    #[inline(always)]
    pub(crate) fn is_expired(&self, i: u32, now: &mut LazyTick<'_>) -> bool {
        let d = self.entry(i).deadline;
        if d != NEVER && now.get() >= d {
            return true;
        }
        self.tti != 0 && now.get() >= self.idle[i as usize].load(Relaxed)
    }

    /// Marks a read of entry `i` (under the shared lock): one frequency
    /// point and a new idle deadline.
    #[inline(always)]
    pub(crate) fn touch_shared(&self, i: u32, now: &mut LazyTick<'_>) {
        self.entry(i).bump_shared();
        if self.tti != 0 {
            self.idle[i as usize].store(crate::time::deadline(now.get(), self.tti), Relaxed);
        }
    }

    /// A read under the shared lock of entry `e`, found in slot `i`: when
    /// it is live, marks the read ([`Self::touch_shared`]) and returns
    /// `true`; `false` when it has expired. The hit path of every lookup:
    /// a shard with no deadline and no time-to-idle answers after one test
    /// (the rest is out of line, so the hit path keeps its registers).
    #[inline(always)]
    pub(crate) fn read_live(&self, i: u32, e: &Entry<K, V>, now: LazyTick<'_>) -> bool {
        if self.untimed() {
            e.bump_shared();
            return true;
        }
        self.read_live_timed(i, e, now)
    }

    /// [`Self::read_live`] in a shard with deadlines or a time-to-idle.
    #[inline(never)]
    fn read_live_timed(&self, i: u32, e: &Entry<K, V>, mut now: LazyTick<'_>) -> bool {
        let d = e.deadline;
        if d != NEVER && now.get() >= d {
            return false;
        }
        if self.tti != 0 {
            let t = now.get();
            if t >= self.idle[i as usize].load(Relaxed) {
                return false;
            }
            self.idle[i as usize].store(crate::time::deadline(t, self.tti), Relaxed);
        }
        e.bump_shared();
        true
    }

    /// Stores `entry` in a free slot (growing the slab if none) and returns
    /// its index.
    pub(crate) fn alloc(&mut self, entry: Entry<K, V>, weight: u32, idle: i64) -> u32 {
        if entry.deadline != NEVER {
            self.expiring += 1;
        }
        if self.free != NIL {
            let i = self.free;
            let Slot::Free(next) = self.slots[i as usize].0 else {
                unreachable!("free list points at an entry")
            };
            self.free = next;
            self.slots[i as usize] = Aligned(Slot::Full(entry));
            if self.weighted {
                self.weights[i as usize] = weight;
            }
            if self.tti != 0 {
                self.idle[i as usize].store(idle, Relaxed);
            }
            i
        } else {
            let i = self.slots.len() as u32;
            if self.slots.len() == self.slots.capacity() {
                // Double, but never past the most entries the shard can
                // hold (no slack in a full cache).
                let want = (self.slots.len() * 2).max(4).min(self.max_entries);
                self.slots
                    .reserve_exact(want.saturating_sub(self.slots.len()).max(1));
            }
            self.slots.push(Aligned(Slot::Full(entry)));
            if self.weighted {
                self.weights.push(weight);
            }
            if self.tti != 0 {
                self.idle.push(AtomicI64::new(idle));
            }
            i
        }
    }

    /// Frees slot `i` (an entry no list links to) and returns its entry.
    pub(crate) fn free(&mut self, i: u32) -> Entry<K, V> {
        let slot = std::mem::replace(&mut self.slots[i as usize], Aligned(Slot::Free(self.free)));
        self.free = i;
        let Slot::Full(e) = slot.0 else {
            unreachable!("freed a free slot")
        };
        if e.deadline != NEVER {
            self.expiring -= 1;
        }
        e
    }

    /// Empties the slab, handing every entry to `each`; keeps the
    /// allocations.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(Entry<K, V>)) {
        self.free = NIL;
        self.expiring = 0;
        for s in self.slots.drain(..) {
            if let Slot::Full(e) = s.0 {
                each(e);
            }
        }
        self.weights.clear();
        self.idle.clear();
    }

    /// Heap bytes held (slots, weights, idle deadlines).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Aligned<K, V>>()
            + self.weights.capacity() * 4
            + self.idle.capacity() * 8
    }

    /// Checks the free list, the `expiring` count and the parallel
    /// vectors; returns the number of entries. Panics on a violation.
    pub(crate) fn check_invariants(&self) -> usize {
        let full = self
            .slots
            .iter()
            .filter(|s| matches!(s.0, Slot::Full(_)))
            .count();
        let expiring = self
            .slots
            .iter()
            .filter(|s| matches!(&s.0, Slot::Full(e) if e.deadline != NEVER))
            .count();
        assert_eq!(self.expiring, expiring, "expiring count mismatch");
        assert!(full <= self.max_entries, "more entries than slots");
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            let Slot::Free(next) = self.slots[f as usize].0 else {
                panic!("free list reaches entry {f}");
            };
            free += 1;
            assert!(free <= self.slots.len(), "cycle in the free list");
            f = next;
        }
        assert_eq!(free + full, self.slots.len(), "leaked slab slots");
        if self.weighted {
            assert_eq!(self.weights.len(), self.slots.len(), "weights out of step");
        }
        if self.tti != 0 {
            assert_eq!(
                self.idle.len(),
                self.slots.len(),
                "idle deadlines out of step"
            );
        }
        full
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

    #[test]
    fn freed_slots_are_reused_before_the_slab_grows() {
        let mut s: Slab<u64, u64> = Slab::new(false, None, 8);
        let a = s.alloc(Entry::new(1, 1, NEVER), 1, NEVER);
        let b = s.alloc(Entry::new(2, 2, 5), 1, NEVER);
        assert_eq!(s.expiring(), 1);
        assert_eq!(s.free(b).key, 2);
        assert_eq!(s.expiring(), 0);
        let c = s.alloc(Entry::new(3, 3, NEVER), 1, NEVER);
        assert_eq!(c, b);
        assert_ne!(a, c);
        assert_eq!(s.slots(), 2);
        assert_eq!(s.check_invariants(), 2);
    }
}
