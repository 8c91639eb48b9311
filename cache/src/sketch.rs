//! TinyLFU's frequency sketch: a count-min sketch of 4-bit counters with
//! periodic halving ("aging"), so it tracks recent popularity.
//!
//! Only the write path (inserts and loads, under the shard's write lock)
//! increments it, so reads stay free of shared writes; a resident entry's
//! own popularity is its S3-FIFO frequency counter, and the sketch answers
//! for keys that are not resident (the admission candidate).

/// Counters per 64-bit word.
const PER_WORD: u64 = 16;

#[derive(Debug, Clone)]
pub(crate) struct Sketch {
    words: Box<[u64]>,
    mask: u64,
    additions: u64,
    sample: u64,
}

impl Sketch {
    /// A sketch sized for `entries` resident entries: 4 counters per entry
    /// (rounded up to a power of two of words), halved every `10 × entries`
    /// additions.
    pub(crate) fn new(entries: usize) -> Self {
        // At most 2^22 entries' worth (8 MiB) per shard.
        let entries = entries.clamp(16, 1 << 22);
        let counters = (entries as u64) * 4;
        let words = (counters / PER_WORD).next_power_of_two().max(4);
        Self {
            words: vec![0; words as usize].into_boxed_slice(),
            mask: words - 1,
            additions: 0,
            sample: (entries as u64) * 10,
        }
    }

    /// The four (word, shift) positions of `hash`.
    #[inline]
    fn positions(&self, hash: u64) -> [(usize, u32); 4] {
        let mut out = [(0, 0); 4];
        let mut h = hash;
        for (i, o) in out.iter_mut().enumerate() {
            // Re-mix per row (splitmix64 finaliser of a row-salted hash).
            h = h.wrapping_add(0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(i as u64 + 1));
            let mut z = h;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            *o = ((z & self.mask) as usize, (((z >> 60) & 15) * 4) as u32);
        }
        out
    }

    /// Counts one occurrence of `hash`; O(1) amortised (a halving pass over
    /// the table every `sample` additions).
    pub(crate) fn increment(&mut self, hash: u64) {
        let mut added = false;
        for (w, s) in self.positions(hash) {
            let c = (self.words[w] >> s) & 15;
            if c < 15 {
                self.words[w] += 1 << s;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample {
                self.halve();
            }
        }
    }

    /// The estimated recent frequency of `hash` (0..=15).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        self.positions(hash)
            .iter()
            .map(|&(w, s)| ((self.words[w] >> s) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    fn halve(&mut self) {
        for w in self.words.iter_mut() {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.additions = 0;
    }

    /// Heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_age() {
        let mut s = Sketch::new(64);
        for _ in 0..20 {
            s.increment(42);
        }
        assert_eq!(s.estimate(42), 15);
        assert!(s.estimate(7) <= 1);
        s.halve();
        assert_eq!(s.estimate(42), 7);
    }

    #[test]
    fn frequent_beats_rare() {
        let mut s = Sketch::new(1024);
        for i in 0..5_000u64 {
            s.increment(i % 512);
            if i % 10 == 0 {
                s.increment(1_000_000 + i);
            }
        }
        assert!(s.estimate(3) > s.estimate(1_000_010));
    }
}
