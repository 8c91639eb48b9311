//! The naive twin of an LRU cache, shared by the hit-ratio tests: exact
//! recency (stamps in a `BTreeMap`), demand fill.

use std::collections::{BTreeMap, HashMap};

/// The naive twin: an exact LRU (recency stamps in a `BTreeMap`).
pub struct NaiveLru {
    cap: usize,
    stamp_of: HashMap<u64, u64>,
    by_stamp: BTreeMap<u64, u64>,
    clock: u64,
}

impl NaiveLru {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            stamp_of: HashMap::new(),
            by_stamp: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Demand access: true on a hit; inserts (evicting the LRU) on a miss.
    pub fn access(&mut self, k: u64) -> bool {
        self.clock += 1;
        if let Some(old) = self.stamp_of.insert(k, self.clock) {
            self.by_stamp.remove(&old);
            self.by_stamp.insert(self.clock, k);
            return true;
        }
        self.by_stamp.insert(self.clock, k);
        if self.stamp_of.len() > self.cap
            && let Some((_, victim)) = self.by_stamp.pop_first()
        {
            self.stamp_of.remove(&victim);
        }
        false
    }
}
