//! An intrusive doubly linked list threaded through the slab's `prev` /
//! `next` links: the queues the eviction policies are made of. Head is the
//! eviction end (oldest / least recently used), tail the newest.

use super::slab::{MAX_FREQ, NIL, Queue, Slab};

/// A list's ends, length and total weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) len: usize,
    pub(crate) weight: u64,
}

impl List {
    pub(crate) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
        weight: 0,
    };

    /// Appends entry `i` (on no list) at the tail, marked as on `q`.
    #[inline]
    pub(crate) fn push_back<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32, q: Queue) {
        let tail = self.tail;
        let weight = slab.weight_of(i);
        {
            let e = slab.entry_mut(i);
            e.set_queue(q);
            e.set_prev(tail);
            e.set_next(NIL);
        }
        if tail != NIL {
            slab.entry_mut(tail).set_next(i);
        }
        if self.head == NIL {
            self.head = i;
        }
        self.tail = i;
        self.len += 1;
        self.weight += weight;
    }

    /// An entry on this list changed weight in place from `old` to `new`.
    #[inline]
    pub(crate) fn reweigh(&mut self, old: u64, new: u64) {
        self.weight = self.weight - old + new;
    }

    /// Removes entry `i`, which is on this list.
    #[inline]
    pub(crate) fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, i: u32) {
        let weight = slab.weight_of(i);
        let (prev, next) = {
            let e = slab.entry(i);
            (e.prev(), e.next())
        };
        if prev != NIL {
            slab.entry_mut(prev).set_next(next);
        }
        if next != NIL {
            slab.entry_mut(next).set_prev(prev);
        }
        if self.head == i {
            self.head = next;
        }
        if self.tail == i {
            self.tail = prev;
        }
        self.len -= 1;
        self.weight -= weight;
    }

    /// Walks the list checking its links, queue marks, length and weight;
    /// calls `each` on every entry. Panics on a violation.
    pub(crate) fn check_invariants<K, V>(
        &self,
        slab: &Slab<K, V>,
        q: Queue,
        mut each: impl FnMut(u32),
    ) {
        let mut n = 0usize;
        let mut w = 0u64;
        let mut prev = NIL;
        let mut i = self.head;
        while i != NIL {
            let e = slab.entry(i);
            assert_eq!(e.queue(), q, "entry {i} on the wrong list");
            assert!(e.freq() <= MAX_FREQ, "entry {i} freq over cap");
            assert_eq!(e.prev(), prev, "entry {i} has a broken back link");
            let ew = slab.weight_of(i);
            assert!(ew >= 1, "entry {i} weighs 0");
            n += 1;
            w += ew;
            assert!(n <= slab.slots() as usize, "cycle in list {q:?}");
            each(i);
            prev = i;
            i = e.next();
        }
        assert_eq!(self.tail, prev, "{q:?} tail mismatch");
        assert_eq!(self.len, n, "{q:?} length mismatch");
        assert_eq!(self.weight, w, "{q:?} weight mismatch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::slab::Entry;
    use crate::time::NEVER;

    #[test]
    fn push_and_unlink_keep_the_ends_and_totals() {
        let mut slab: Slab<u32, ()> = Slab::new(false, None, 16);
        let mut l = List::EMPTY;
        let ids: Vec<u32> = (0..4)
            .map(|k| slab.alloc(Entry::new(k, (), NEVER), 1, NEVER))
            .collect();
        for &i in &ids {
            l.push_back(&mut slab, i, Queue::Main);
        }
        l.unlink(&mut slab, ids[0]);
        l.unlink(&mut slab, ids[2]);
        let mut order = Vec::new();
        l.check_invariants(&slab, Queue::Main, |i| order.push(i));
        assert_eq!(order, [ids[1], ids[3]]);
        assert_eq!((l.head, l.tail, l.len, l.weight), (ids[1], ids[3], 2, 2));
    }
}
