//! The S3-FIFO ghost queue, as a direct-mapped table of 32-bit fingerprints.
//!
//! S3-FIFO remembers keys recently evicted from its small queue; a key that
//! comes back while remembered goes straight to the main queue. An exact
//! ghost FIFO costs a hash-set entry per remembered key; this table costs 4
//! bytes per slot (at most one slot per entry of capacity): a key's slot is
//! `hash & mask`, a newer eviction overwrites an older one in the same slot
//! (random replacement instead of FIFO), and a 32-bit fingerprint makes a
//! false "remembered" rare (≈ 2⁻³²). On the OLTP trace this loses under
//! 0.3 points of hit ratio against an exact ghost of the same size.

/// Most slots per shard (4 MiB): beyond that, hit ratio gains are nil.
const MAX_SLOTS: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Ghost {
    slots: Box<[u32]>,
    mask: usize,
}

impl Ghost {
    /// A ghost of the largest power of two ≤ `entries` slots (16 ..= 2²⁰),
    /// or an empty one when `entries == 0`.
    pub(crate) fn new(entries: usize) -> Self {
        if entries == 0 {
            return Self {
                slots: Box::new([]),
                mask: 0,
            };
        }
        let n = crate::builder::prev_pow2(entries).clamp(16, MAX_SLOTS);
        Self {
            slots: vec![0; n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    #[inline]
    fn split(hash: u64) -> (usize, u32) {
        // The table index uses the low bits, the fingerprint the bits the
        // index does not (| 1: 0 marks an empty slot).
        ((hash as usize), ((hash >> 32) as u32) | 1)
    }

    /// Remembers `hash`.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let (i, fp) = Self::split(hash);
        self.slots[i & self.mask] = fp;
    }

    /// Whether `hash` is remembered; forgets it if so.
    #[inline]
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let (i, fp) = Self::split(hash);
        let slot = &mut self.slots[i & self.mask];
        if *slot == fp {
            *slot = 0;
            true
        } else {
            false
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(0);
    }

    /// Heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * 4
    }
}
